//! `xent loss` (`--loss cross-entropy`, the default): softmax cross-entropy
//! of `.npy` inputs over a class axis, its files read and checked, computed
//! on the GPU (checked against the CPU unless `--no-check`) or on the CPU
//! path alone.

use std::borrow::Cow;

use xent::{cpu, CrossEntropyOptions, InputKind, Layout, Reduction, Targets, Tolerance, Weights};

use crate::compute::{self, Computed, Mode};
use crate::inputs::{self, Floats};
use crate::loss::{self, InputArg, LossArgs};
use crate::npy::{self, Array};
use crate::precision::PrecisionArg;
use crate::report;
use crate::{usage, BackendArg, Failure};

/// Targets as read: class ids in their dtype, or probabilities.
enum TargetData {
    I64(Vec<i64>),
    I32(Vec<i32>),
    U8(Vec<u8>),
    Probs(Floats),
}

impl TargetData {
    fn probs(&self) -> Option<&Floats> {
        match self {
            TargetData::Probs(p) => Some(p),
            _ => None,
        }
    }

    /// As the library's targets; `probs` is `self.probs()` in the precision wanted.
    fn as_targets<'a, P>(&'a self, probs: Option<&'a [P]>) -> Targets<'a, P> {
        match self {
            TargetData::I64(t) => Targets::I64(t),
            TargetData::I32(t) => Targets::I32(t),
            TargetData::U8(t) => Targets::U8(t),
            TargetData::Probs(_) => Targets::Probs(probs.unwrap_or_default()),
        }
    }
}

/// A loss to compute: the inputs, read and checked, and the options.
struct Problem {
    input: Floats,
    dims: Vec<usize>,
    layout: Layout,
    targets: TargetData,
    weights: Option<Floats>,
    opts: CrossEntropyOptions,
}

pub fn run(args: &LossArgs) -> Result<(), Failure> {
    compute::check_shards(args.vocab_shards)?;
    loss::check_outputs(args)?;
    let problem = read_problem(args)?;
    let mode = Mode::of(args);
    let computed = if problem.opts.input != InputKind::Logits || problem.targets.probs().is_some() {
        run_soft_or_kind(&problem, mode)?
    } else {
        compute(&problem, mode)?
    };
    let loss_dims = match problem.opts.reduction {
        Reduction::None => problem.layout.target_dims(),
        _ => Vec::new(),
    };
    let row_dims = problem.layout.target_dims();
    let dims = [&loss_dims[..], &problem.dims, &row_dims];
    report::report(&computed, problem.opts.reduction, dims, args)
}

/// Probability targets (float32/float64 of the input's shape) and inputs
/// that are not logits (`--input log-probs|probs`): the one place their
/// handling lives. The library's host API takes both (`Targets::Probs`,
/// `CrossEntropyOptions::input`, `Context::cross_entropy_with`), so they run
/// through the same path as class-id targets on logits.
fn run_soft_or_kind(problem: &Problem, mode: Mode) -> Result<Computed, Failure> {
    compute(problem, mode)
}

/// Reads and checks the files and options, before any adapter is opened:
/// everything but the range of class ids and the sign of probabilities,
/// which the library checks (the GPU path in its kernel).
fn read_problem(args: &LossArgs) -> Result<Problem, Failure> {
    let (input, dims) = inputs::read_floats("logits", &args.logits)?;
    let layout = Layout::from_dims(&dims)?;
    let targets = read_targets(args, &dims, &layout)?;
    let weights = read_weights(args, &layout)?;
    let opts = options(args);
    logits_only(args, &opts)?;
    opts.validate()?;
    Ok(Problem {
        input,
        dims,
        layout,
        targets,
        weights,
        opts,
    })
}

/// The targets file: class ids of the input's shape without the class
/// axis, or probabilities of the input's shape.
fn read_targets(args: &LossArgs, dims: &[usize], layout: &Layout) -> Result<TargetData, Failure> {
    let t = npy::read("targets", &args.targets)?;
    let target_dims = layout.target_dims();
    let targets = match t.array {
        Array::I64(v) => TargetData::I64(v),
        Array::I32(v) => TargetData::I32(v),
        Array::U8(v) => TargetData::U8(v),
        Array::F16(v) => TargetData::Probs(Floats::from_f16(&v)),
        Array::F32(v) => TargetData::Probs(Floats::F32(v)),
        Array::F64(v) => TargetData::Probs(Floats::F64(v)),
    };
    if targets.probs().is_some() && t.shape != dims {
        return Err(usage(format!(
            "probability targets have shape {:?} but they need the input's shape {dims:?} \
             ({} targets are probabilities; class ids must be int64, int32 or uint8 of shape {target_dims:?})",
            t.shape, t.dtype
        )));
    }
    if targets.probs().is_none() && t.shape != target_dims {
        return Err(usage(format!(
            "class targets have shape {:?} but an input of shape {dims:?} needs shape \
             {target_dims:?} (the input's shape without the class axis)",
            t.shape
        )));
    }
    Ok(targets)
}

/// The flags that act on logits, refused for another `--input`, naming the flag.
fn logits_only(args: &LossArgs, opts: &CrossEntropyOptions) -> Result<(), Failure> {
    if opts.input == InputKind::Logits {
        return Ok(());
    }
    let flags = [
        ("--z-loss", args.z_loss.is_some()),
        ("--softcap", args.softcap.is_some()),
        ("--temperature", args.temperature.is_some()),
        ("--lse-out", args.lse_out.is_some()),
        ("--argmax-out", args.argmax_out.is_some()),
        ("--entropy-out", args.entropy_out.is_some()),
    ];
    match flags.iter().find(|(_, given)| *given) {
        Some((flag, _)) => Err(usage(format!(
            "{flag} acts on logits: it does not apply to --input {}",
            match opts.input {
                InputKind::LogProbs => "log-probs",
                _ => "probs",
            }
        ))),
        None => Ok(()),
    }
}

/// The `--weights` file, if given: one weight per class.
fn read_weights(args: &LossArgs, layout: &Layout) -> Result<Option<Floats>, Failure> {
    let Some(path) = &args.weights else {
        return Ok(None);
    };
    let w = npy::read("weights", path)?;
    let n: usize = w.shape.iter().product();
    if w.shape.len() != 1 {
        return Err(usage(format!(
            "weights have shape {:?} ({n} elements); expected shape ({},), one per class",
            w.shape, layout.classes
        )));
    }
    if n != layout.classes {
        return Err(xent::Error::WeightsLength {
            classes: layout.classes,
            actual: n,
        }
        .into());
    }
    Ok(Some(inputs::floats("weights", path, w.array, w.dtype)?))
}

/// The options given, the others `CrossEntropyOptions::default()`'s.
fn options(args: &LossArgs) -> CrossEntropyOptions {
    let defaults = CrossEntropyOptions::default();
    CrossEntropyOptions {
        reduction: args.reduction.reduction(),
        ignore_index: args.ignore_index.unwrap_or(defaults.ignore_index),
        label_smoothing: args.label_smoothing.unwrap_or(defaults.label_smoothing),
        z_loss: args.z_loss.unwrap_or(defaults.z_loss),
        softcap: args.softcap,
        temperature: args.temperature.unwrap_or(defaults.temperature),
        input: match args.input {
            None => defaults.input,
            Some(InputArg::Logits) => InputKind::Logits,
            Some(InputArg::LogProbs) => InputKind::LogProbs,
            Some(InputArg::Probs) => InputKind::Probs,
        },
        ..defaults
    }
}

/// Runs the problem: on the CPU path alone in f64 (`--backend cpu`), or on
/// the GPU in f32, then (unless `--no-check`) the CPU path on the same f32
/// values.
fn compute(p: &Problem, mode: Mode) -> Result<Computed, Failure> {
    if mode.backend == BackendArg::Cpu {
        compute_cpu(p, mode)
    } else {
        compute_gpu(p, mode)
    }
}

/// The CPU path alone, in f64 (`--backend cpu`).
fn compute_cpu(p: &Problem, mode: Mode) -> Result<Computed, Failure> {
    let precision = mode.precision;
    // On the inputs the GPU would store (f64 as read, for f32).
    let input: Cow<'_, [f64]> = match precision {
        PrecisionArg::F32 => p.input.f64(),
        precision => Cow::Owned(
            precision
                .round(&p.input.f32())
                .iter()
                .map(|&v| f64::from(v))
                .collect(),
        ),
    };
    let weights = p.weights.as_ref().map(Floats::f64);
    let probs = p.targets.probs().map(Floats::f64);
    let targets = p.targets.as_targets(probs.as_deref());
    let class = Weights {
        class: weights.as_deref(),
        sample: None,
    };
    let out = cpu::cross_entropy_with(&input[..], &p.dims, targets, class, &p.opts)?;
    let computed = Computed::cpu(
        &out.loss,
        out.grad.as_deref(),
        "none: the f64 CPU path (--backend cpu), results rounded to float32",
    );
    let returns = mode.returns;
    Ok(Computed {
        lse: out
            .lse
            .filter(|_| returns.lse)
            .as_deref()
            .map(compute::narrow),
        argmax: out.argmax.filter(|_| returns.argmax),
        entropy: out
            .entropy
            .filter(|_| returns.entropy)
            .as_deref()
            .map(compute::narrow),
        ..computed
    })
}

/// The GPU in f32, then (unless `--no-check`) the CPU path on the same values.
fn compute_gpu(p: &Problem, mode: Mode) -> Result<Computed, Failure> {
    let input = mode.precision.round(&p.input.f32());
    let weights = p.weights.as_ref().map(Floats::f32);
    let probs = p.targets.probs().map(Floats::f32);
    let targets = p.targets.as_targets(probs.as_deref());
    let class = Weights {
        class: weights.as_deref(),
        sample: None,
    };
    let ctx = compute::context()?;
    let (out, gpu_ms) = compute::timed(|| {
        mode.precision
            .cross_entropy(&ctx, &input, &p.dims, (targets, class), &p.opts, mode)
    })?;
    let want = if mode.check {
        Some(cpu::cross_entropy_with(
            &input[..],
            &p.dims,
            targets,
            class,
            &p.opts,
        )?)
    } else {
        None
    };
    let tol = Tolerance::default();
    let grad_tol = mode.precision.grad_tolerance();
    let verdict = want
        .as_ref()
        .map(|w| tol.compare_cross_entropy(&out, w, &grad_tol));
    let cpu = want
        .as_ref()
        .zip(verdict)
        .map(|(w, v)| (&w.loss[..], w.grad.as_deref(), v));
    Ok(Computed {
        lse: out.lse,
        argmax: out.argmax,
        entropy: out.entropy,
        ..Computed::gpu(&ctx, gpu_ms, (out.loss, out.grad), cpu)
    })
}
