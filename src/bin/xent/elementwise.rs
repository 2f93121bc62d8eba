//! `xent loss --loss bce-with-logits|bce|mse|l1|smooth-l1|huber`: the
//! elementwise losses of an input and a target of the same shape (any
//! shape), with their options, and which options apply to which loss.
//! The output checks are `loss.rs`'s, the report `report.rs`'s.

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use xent::{cpu, ElementwiseLoss, ElementwiseOptions, LossWeights, Tolerance};

use crate::compute::{self, Computed, Mode};
use crate::inputs;
use crate::loss::{self, LossArgs};
use crate::npy::{self, Array};
use crate::report;
use crate::{usage, BackendArg, Failure};

/// `--loss`: its values are the library's names (`ElementwiseLoss::name`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LossKind {
    /// Softmax cross-entropy over the class axis (axis 1).
    #[value(name = "cross-entropy")]
    CrossEntropy,
    /// Binary cross-entropy of logits (multi-label), with --weights and --pos-weight.
    #[value(name = "bce-with-logits")]
    BceWithLogits,
    /// Binary cross-entropy of probabilities in [0, 1], with --weights.
    #[value(name = "bce")]
    Bce,
    /// Squared error.
    #[value(name = "mse")]
    Mse,
    /// Absolute error.
    #[value(name = "l1")]
    L1,
    /// Squared error below --beta, absolute error above.
    #[value(name = "smooth-l1")]
    SmoothL1,
    /// Squared error below --delta, --delta times absolute error above.
    #[value(name = "huber")]
    Huber,
}

impl LossKind {
    /// The name given to `--loss`.
    pub fn name(self) -> &'static str {
        match self {
            LossKind::CrossEntropy => "cross-entropy",
            LossKind::BceWithLogits => "bce-with-logits",
            LossKind::Bce => "bce",
            LossKind::Mse => "mse",
            LossKind::L1 => "l1",
            LossKind::SmoothL1 => "smooth-l1",
            LossKind::Huber => "huber",
        }
    }

    /// The library's elementwise loss, with `--beta` or `--delta` where
    /// given (else the library's default); `None` for cross-entropy.
    pub fn elementwise(self, args: &ElementwiseArgs) -> Option<ElementwiseLoss> {
        let loss: ElementwiseLoss = self.name().parse().ok()?;
        Some(match loss {
            ElementwiseLoss::SmoothL1 { beta } => ElementwiseLoss::SmoothL1 {
                beta: args.beta.unwrap_or(beta),
            },
            ElementwiseLoss::Huber { delta } => ElementwiseLoss::Huber {
                delta: args.delta.unwrap_or(delta),
            },
            other => other,
        })
    }
}

/// The options of the elementwise losses alone.
#[derive(clap::Args)]
pub struct ElementwiseArgs {
    /// bce-with-logits: pos_weight .npy (float32 or float64), shape (L), the
    /// input's last axis: scales the positive term of each label.
    #[arg(long, value_name = "PATH")]
    pub(crate) pos_weight: Option<PathBuf>,
    /// smooth-l1: where the loss turns from quadratic to linear, >= 0 [default: 1]
    #[arg(long, value_name = "FLOAT", allow_negative_numbers = true)]
    pub(crate) beta: Option<f64>,
    /// huber: where the loss turns from quadratic to linear, > 0 [default: 1]
    #[arg(long, value_name = "FLOAT", allow_negative_numbers = true)]
    pub(crate) delta: Option<f64>,
}

/// Refuses (exit status 2, naming the option) every option given that the
/// chosen loss does not take, before any file is read.
pub fn check_applies(args: &LossArgs) -> Result<(), Failure> {
    let kind = args.loss;
    let loss = kind.elementwise(&args.elementwise);
    let ce = loss.is_none();
    let e = &args.elementwise;
    let ce_only = "it is cross-entropy's";
    let options: [(&str, bool, bool, &str); 14] = [
        (
            "--weights",
            args.weights.is_some(),
            loss.is_none_or(ElementwiseLoss::takes_weight),
            "only cross-entropy, bce and bce-with-logits take weights",
        ),
        (
            "--pos-weight",
            e.pos_weight.is_some(),
            loss.is_some_and(ElementwiseLoss::takes_pos_weight),
            "only bce-with-logits takes a pos_weight",
        ),
        (
            "--beta",
            e.beta.is_some(),
            kind == LossKind::SmoothL1,
            "only smooth-l1 takes beta",
        ),
        (
            "--delta",
            e.delta.is_some(),
            kind == LossKind::Huber,
            "only huber takes delta",
        ),
        ("--ignore-index", args.ignore_index.is_some(), ce, ce_only),
        ("--vocab-shards", args.vocab_shards.is_some(), ce, ce_only),
        (
            "--label-smoothing",
            args.label_smoothing.is_some(),
            ce,
            ce_only,
        ),
        ("--input", args.input.is_some(), ce, ce_only),
        ("--z-loss", args.z_loss.is_some(), ce, ce_only),
        ("--softcap", args.softcap.is_some(), ce, ce_only),
        ("--temperature", args.temperature.is_some(), ce, ce_only),
        ("--lse-out", args.lse_out.is_some(), ce, ce_only),
        ("--argmax-out", args.argmax_out.is_some(), ce, ce_only),
        ("--entropy-out", args.entropy_out.is_some(), ce, ce_only),
    ];
    for (flag, given, applies, why) in options {
        if given && !applies {
            return Err(usage(format!(
                "{flag} does not apply to --loss {}: {why}",
                kind.name()
            )));
        }
    }
    Ok(())
}

/// An elementwise loss to compute, its inputs read and checked, in float32
/// (what both the GPU and the CPU twin take).
struct Problem {
    input: Vec<f32>,
    target: Vec<f32>,
    dims: Vec<usize>,
    weight: Option<Vec<f32>>,
    pos_weight: Option<Vec<f32>>,
    opts: ElementwiseOptions,
}

impl Problem {
    fn weights(&self) -> LossWeights<'_> {
        LossWeights {
            weight: self.weight.as_deref(),
            pos_weight: self.pos_weight.as_deref(),
        }
    }

    fn cpu(&self) -> Result<xent::ElementwiseOutput<f64>, xent::Error> {
        cpu::elementwise_loss(
            &self.input,
            &self.target,
            &self.dims,
            self.weights(),
            &self.opts,
        )
    }
}

pub fn run(args: &LossArgs, loss: ElementwiseLoss) -> Result<(), Failure> {
    let opts = ElementwiseOptions {
        reduction: args.reduction.reduction(),
        ..ElementwiseOptions::new(loss)
    };
    // The parameter (beta, delta) checked by the library on an empty call,
    // before anything is read: its own error, naming the value.
    cpu::elementwise_loss(&[], &[], &[0], LossWeights::default(), &opts)?;
    loss::check_outputs(args)?;
    let problem = read_problem(args, loss, opts)?;
    let computed = compute(&problem, Mode::of(args))?;
    let loss_dims = match opts.reduction {
        xent::Reduction::None => problem.dims.clone(),
        _ => Vec::new(),
    };
    let dims = [&loss_dims[..], &problem.dims, &[]];
    report::report(&computed, opts.reduction, dims, args)
}

/// Reads the files and checks their dtypes and shapes, before any adapter is
/// opened. The range of bce's input is the library's to check (the GPU path
/// in its kernel).
fn read_problem(
    args: &LossArgs,
    loss: ElementwiseLoss,
    opts: ElementwiseOptions,
) -> Result<Problem, Failure> {
    let name = loss.name();
    let (input, dims) = inputs::read_floats("logits", &args.logits)?;

    let expected = format!("expected float16, float32 or float64 of the input's shape {dims:?}");
    let t = npy::read_as("targets", &args.targets, &expected)?;
    let target = match t.array {
        Array::F16(v) => v.iter().map(|y| y.to_f32()).collect(),
        Array::F32(v) => v,
        Array::F64(v) => v.into_iter().map(|y| y as f32).collect(),
        _ => {
            return Err(usage(format!(
                "targets file {} has dtype {}, which --loss {name} does not take: expected \
                 float16, float32 or float64 of the input's shape {dims:?}",
                args.targets.display(),
                t.dtype
            )))
        }
    };
    if t.shape != dims {
        return Err(usage(format!(
            "targets file {} has shape {:?} but --loss {name} needs the input's shape {dims:?}",
            args.targets.display(),
            t.shape
        )));
    }

    // A weight of the input's shape or of its last axis (one per label);
    // a pos_weight of the last axis (or 0-d, for a 0-d input).
    let last = vec![dims.last().copied().unwrap_or(1)];
    let weight = read_weight(
        "--weights",
        "weights",
        args.weights.as_deref(),
        |shape| shape == dims || shape == last,
        &format!("of the input's shape {dims:?} or of its last axis, {last:?}"),
        name,
    )?;
    let pos_weight = read_weight(
        "--pos-weight",
        "pos_weight",
        args.elementwise.pos_weight.as_deref(),
        |shape| shape == last || (dims.is_empty() && shape.is_empty()),
        &format!("one per label, of the input's last axis, {last:?} (the input is {dims:?})"),
        name,
    )?;
    // As the GPU stores them (--precision), for the check and --backend cpu too.
    Ok(Problem {
        input: args.precision.round(&input.f32()),
        target: args.precision.round(&target),
        dims,
        weight,
        pos_weight,
        opts,
    })
}

/// Reads the `flag` file (`what` in npy's messages): a float dtype, and a
/// shape that `fits` (`expected` in words, for the message).
fn read_weight(
    flag: &str,
    what: &str,
    path: Option<&Path>,
    fits: impl Fn(&[usize]) -> bool,
    expected: &str,
    loss: &str,
) -> Result<Option<Vec<f32>>, Failure> {
    let Some(path) = path else { return Ok(None) };
    let w = npy::read(what, path)?;
    if !fits(&w.shape) {
        return Err(usage(format!(
            "{flag} {} has shape {:?} ({} elements), but --loss {loss} takes it {expected}",
            path.display(),
            w.shape,
            w.shape.iter().product::<usize>()
        )));
    }
    let values = inputs::floats(what, path, w.array, w.dtype)?;
    Ok(Some(values.f32().into_owned()))
}

/// Runs the problem: on the CPU twin alone (`--backend cpu`), or on the GPU,
/// then (unless `--no-check`) the CPU twin on the same values.
fn compute(p: &Problem, mode: Mode) -> Result<Computed, Failure> {
    if mode.backend == BackendArg::Cpu {
        let out = p.cpu()?;
        return Ok(Computed::cpu(
            &out.loss,
            out.grad.as_deref(),
            "none: the f64 CPU path (--backend cpu) on the inputs as float32, \
             results rounded to float32",
        ));
    }
    let ctx = compute::context()?;
    let (out, gpu_ms) = compute::timed(|| {
        mode.precision
            .elementwise_loss(&ctx, &p.input, &p.target, &p.dims, p.weights(), &p.opts)
    })?;
    let want = if mode.check { Some(p.cpu()?) } else { None };
    let tol = Tolerance::default();
    let grad_tol = mode.precision.grad_tolerance();
    let verdict = want
        .as_ref()
        .map(|w| tol.compare_elementwise(&out, w, &grad_tol));
    let cpu = want
        .as_ref()
        .zip(verdict)
        .map(|(w, v)| (&w.loss[..], w.grad.as_deref(), v));
    Ok(Computed::gpu(&ctx, gpu_ms, (out.loss, out.grad), cpu))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_library_loss_is_a_loss_value_of_its_name() {
        let none = ElementwiseArgs {
            pos_weight: None,
            beta: None,
            delta: None,
        };
        for loss in ElementwiseLoss::ALL {
            let kind = LossKind::from_str(loss.name(), false)
                .unwrap_or_else(|e| panic!("--loss {}: {e}", loss.name()));
            assert_eq!(kind.elementwise(&none), Some(loss));
        }
        for kind in LossKind::value_variants() {
            let value = kind.to_possible_value().unwrap();
            assert_eq!(value.get_name(), kind.name());
        }
        assert_eq!(LossKind::CrossEntropy.elementwise(&none), None);
    }
}
