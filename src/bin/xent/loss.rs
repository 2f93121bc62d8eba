//! `xent loss`: loss and gradient of `.npy` inputs, on the GPU (checked
//! against the CPU unless `--no-check`) or on the CPU path alone. This file
//! holds the options, the output checks, the report and cross-entropy's
//! path; `elementwise.rs` the path of the elementwise losses (`--loss
//! bce-with-logits|bce|mse|l1|smooth-l1|huber`).

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::ValueEnum;
use xent::{cpu, CrossEntropyOptions, InputKind, Layout, Reduction, Targets, Tolerance, Weights};

use crate::elementwise::{self, ElementwiseArgs, LossKind};
use crate::npy::{self, Array};
use crate::precision::PrecisionArg;
use crate::{usage, BackendArg, Failure};

// The cross-entropy-only options are `Option`s, so that one given with an
// elementwise loss is refused (`elementwise::check_applies`); their
// defaults are `CrossEntropyOptions::default()`'s.
#[derive(clap::Args)]
pub struct LossArgs {
    /// The loss: softmax cross-entropy over a class axis, or an elementwise
    /// loss of an input and a target of the same shape.
    #[arg(long, value_enum, default_value_t = LossKind::CrossEntropy)]
    pub(crate) loss: LossKind,
    /// Input .npy (float16, float32 or float64), the input of every loss: logits for
    /// cross-entropy and bce-with-logits, probabilities in [0, 1] for bce,
    /// predictions for mse, l1, smooth-l1 and huber. Cross-entropy: (C),
    /// (N, C) or (N, C, d1, ..., dK), class axis 1; the elementwise losses:
    /// any shape.
    #[arg(long, value_name = "PATH")]
    pub(crate) logits: PathBuf,
    /// Targets .npy. Cross-entropy: int64, int32 or uint8 class ids with the
    /// input's shape without the class axis, or float16/32/64 probabilities
    /// with the input's shape. The elementwise losses: float16/32/64 with
    /// the input's shape.
    #[arg(long, value_name = "PATH")]
    pub(crate) targets: PathBuf,
    /// Weights .npy (float16, float32 or float64). Cross-entropy: class weights, shape
    /// (C). bce and bce-with-logits: per-element weights, the input's shape or
    /// its last axis.
    #[arg(long, value_name = "PATH")]
    pub(crate) weights: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) elementwise: ElementwiseArgs,
    /// Cross-entropy: class-id targets equal to this are ignored (no loss, no
    /// gradient, not counted by mean) [default: -100]
    #[arg(long, value_name = "INT", allow_negative_numbers = true)]
    pub(crate) ignore_index: Option<i64>,
    /// How the per-target (per-element) losses are combined.
    #[arg(long, value_enum, default_value_t = ReductionArg::Mean)]
    pub(crate) reduction: ReductionArg,
    /// Cross-entropy: label smoothing in [0, 1] [default: 0]
    #[arg(long, value_name = "FLOAT", allow_negative_numbers = true)]
    pub(crate) label_smoothing: Option<f64>,
    /// Cross-entropy: z-loss scale z >= 0, adding w[t]·z·lse² per non-ignored
    /// row, normalised like the loss (logits only) [default: 0]
    #[arg(long, value_name = "FLOAT", allow_negative_numbers = true)]
    pub(crate) z_loss: Option<f64>,
    /// Cross-entropy: logit soft-capping cap > 0, each logit x becoming
    /// cap·tanh(x / cap) before everything else (logits only) [default: none]
    #[arg(long, value_name = "FLOAT", allow_negative_numbers = true)]
    pub(crate) softcap: Option<f64>,
    /// Cross-entropy: what the input holds [default: logits]
    #[arg(long, value_enum)]
    pub(crate) input: Option<InputArg>,
    /// Write the loss as float32 .npy: shape () for mean and sum; for none,
    /// the target's shape without the class axis (cross-entropy) or the
    /// input's shape (elementwise losses). Written even when the GPU and
    /// CPU disagree (exit status 1), to inspect.
    #[arg(long, value_name = "PATH")]
    pub(crate) loss_out: Option<PathBuf>,
    /// Write d loss / d input as float32 .npy with the input's shape (for none,
    /// of the sum of the per-target losses). Written even when the GPU and CPU
    /// disagree (exit status 1), to inspect.
    #[arg(long, value_name = "PATH")]
    pub(crate) grad_out: Option<PathBuf>,
    /// The wgpu backend to run on (sets WGPU_BACKEND), or `cpu` for the f64 CPU path alone.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
    /// Do not check the GPU result against the CPU path.
    #[arg(long)]
    pub(crate) no_check: bool,
    /// The storage of the input (and an elementwise loss's target) and the
    /// gradient on the GPU (sums stay f32). They are rounded to it on load;
    /// the outputs are float32 .npy of exactly what the GPU wrote; the
    /// check runs on the rounded values. f16 needs an adapter with SHADER_F16.
    #[arg(long, value_enum, default_value_t = PrecisionArg::F32)]
    pub(crate) precision: PrecisionArg,
    /// Cross-entropy: split the classes into K vocabulary shards (K >= 1,
    /// may exceed C: the extra shards are empty) run on the one device
    /// through partial, merge and finish, as a model-parallel run does
    /// across devices; the outputs are the unsharded call's (within the
    /// check's tolerance). The CPU path (--backend cpu) has no shards.
    #[arg(long, value_name = "K")]
    pub(crate) vocab_shards: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReductionArg {
    Mean,
    Sum,
    None,
}

impl ReductionArg {
    pub(crate) fn reduction(self) -> Reduction {
        match self {
            ReductionArg::Mean => Reduction::Mean,
            ReductionArg::Sum => Reduction::Sum,
            ReductionArg::None => Reduction::None,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum InputArg {
    Logits,
    LogProbs,
    Probs,
}

/// Float values as read: float32 or float64 (float16 widened to float32,
/// exactly, so `--precision f16` stores a float16 file's values as they are).
pub(crate) enum Floats {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Floats {
    pub(crate) fn from_f16(v: &[half::f16]) -> Self {
        Floats::F32(v.iter().map(|x| x.to_f32()).collect())
    }

    pub(crate) fn f32(&self) -> Cow<'_, [f32]> {
        match self {
            Floats::F32(v) => Cow::Borrowed(v),
            Floats::F64(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
        }
    }

    fn f64(&self) -> Cow<'_, [f64]> {
        match self {
            Floats::F32(v) => Cow::Owned(v.iter().map(|&x| f64::from(x)).collect()),
            Floats::F64(v) => Cow::Borrowed(v),
        }
    }
}

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

/// Where to compute and whether to check.
#[derive(Clone, Copy)]
pub(crate) struct Mode {
    pub(crate) backend: BackendArg,
    pub(crate) check: bool,
    pub(crate) precision: PrecisionArg,
    /// Vocabulary shards of a cross-entropy (`--vocab-shards`).
    pub(crate) shards: Option<usize>,
}

impl Mode {
    pub(crate) fn of(args: &LossArgs) -> Self {
        Mode {
            backend: args.backend,
            check: !args.no_check,
            precision: args.precision,
            shards: args.vocab_shards,
        }
    }
}

/// A result, in float32, with where it came from.
pub(crate) struct Computed {
    pub(crate) loss: Vec<f32>,
    pub(crate) grad: Vec<f32>,
    pub(crate) adapter: String,
    pub(crate) gpu_ms: Option<f64>,
    pub(crate) check: Option<Check>,
}

/// The GPU result held against the CPU path.
pub(crate) struct Check {
    pub(crate) loss_diff: f64,
    pub(crate) grad_diff: f64,
    pub(crate) verdict: Result<(), xent::Error>,
}

pub fn run(args: &LossArgs) -> Result<(), Failure> {
    // Options that do not apply to the loss, before anything is read.
    elementwise::check_applies(args)?;
    if let Some(loss) = args.loss.elementwise(&args.elementwise) {
        return elementwise::run(args, loss);
    }
    if args.vocab_shards == Some(0) {
        return Err(usage("--vocab-shards must be at least 1"));
    }
    check_outputs(args)?;
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
    report(
        &computed,
        problem.opts.reduction,
        &loss_dims,
        &problem.dims,
        args,
    )
}

/// Probability targets (float32/float64 of the input's shape) and inputs
/// that are not logits (`--input log-probs|probs`): the one place their
/// handling lives. The library's host API takes both (`Targets::Probs`,
/// `CrossEntropyOptions::input`, `Context::cross_entropy_with`), so they run
/// through the same path as class-id targets on logits.
fn run_soft_or_kind(problem: &Problem, mode: Mode) -> Result<Computed, Failure> {
    compute(problem, mode)
}

/// Checks the output paths before any input is read: each must name a file
/// (not a directory) in a directory that exists, the two outputs must be
/// different files, and neither may be one of the inputs. Writing can still
/// fail afterwards (permissions, a full disk); these are the failures known
/// before any work is done.
pub(crate) fn check_outputs(args: &LossArgs) -> Result<(), Failure> {
    check_output_paths(
        &[
            ("--loss-out", args.loss_out.as_deref()),
            ("--grad-out", args.grad_out.as_deref()),
        ],
        &[
            ("--logits", Some(args.logits.as_path())),
            ("--targets", Some(args.targets.as_path())),
            ("--weights", args.weights.as_deref()),
            ("--pos-weight", args.elementwise.pos_weight.as_deref()),
        ],
    )
}

/// [`check_outputs`] for any command: the output paths given (flag, path)
/// against each other and against the input paths given.
pub(crate) fn check_output_paths(
    outputs: &[(&str, Option<&Path>)],
    inputs: &[(&str, Option<&Path>)],
) -> Result<(), Failure> {
    let inputs: Vec<(&str, &Path)> = inputs
        .iter()
        .filter_map(|&(flag, path)| Some((flag, path?)))
        .collect();
    let mut seen: Vec<(&str, &Path, PathBuf)> = Vec::new();
    for &(flag, path) in outputs {
        let Some(path) = path else { continue };
        let file = output_file(flag, path)?;
        if let Some((other, other_path, _)) = seen.iter().find(|(_, _, f)| *f == file) {
            return Err(usage(format!(
                "{other} {} and {flag} {} are the same file; give each output its own path",
                other_path.display(),
                path.display()
            )));
        }
        for (input, input_path) in &inputs {
            if same_file(&file, input_path) {
                return Err(usage(format!(
                    "cannot write {flag} {}: it is the {input} file {}, which would be overwritten; \
                     give the output its own path",
                    path.display(),
                    input_path.display()
                )));
            }
        }
        seen.push((flag, path, file));
    }
    Ok(())
}

/// The file an output path names, as an absolute path with its directory's
/// symbolic links and `..` resolved (and the file's own link, if it is one),
/// after checking it can be created: its directory exists and it is not a
/// directory itself.
fn output_file(flag: &str, path: &Path) -> Result<PathBuf, Failure> {
    let shown = path.display();
    let fail = |why: String| usage(format!("cannot write {flag} {shown}: {why}"));
    if path.is_dir() {
        return Err(fail("it is a directory; give a file name".into()));
    }
    let spelt = path.as_os_str().to_string_lossy();
    let (Some(name), false) = (path.file_name(), spelt.ends_with(std::path::is_separator)) else {
        return Err(fail("it names no file; give a file name".into()));
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.exists() {
        return Err(fail(format!(
            "its directory {} does not exist",
            dir.display()
        )));
    }
    if !dir.is_dir() {
        return Err(fail(format!("{} is not a directory", dir.display())));
    }
    // An existing file (or a link to one) is resolved whole, so a link to an
    // input is caught.
    if let Ok(file) = std::fs::canonicalize(path) {
        return Ok(file);
    }
    let dir = std::fs::canonicalize(dir).map_err(|e| {
        fail(format!(
            "cannot resolve its directory {}: {e}",
            dir.display()
        ))
    })?;
    Ok(dir.join(name))
}

/// Whether `input` (which may not exist) is the file `output` names, as
/// resolved by `output_file`.
fn same_file(output: &Path, input: &Path) -> bool {
    std::fs::canonicalize(input).is_ok_and(|i| i == output)
}

/// Reads and checks the files and options, before any adapter is opened:
/// everything but the range of class ids and the sign of probabilities,
/// which the library checks (the GPU path in its kernel).
fn read_problem(args: &LossArgs) -> Result<Problem, Failure> {
    let logits = npy::read("logits", &args.logits)?;
    let input = floats("logits", &args.logits, logits.array, logits.dtype)?;
    let dims = logits.shape;
    let layout = Layout::from_dims(&dims)?;

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

    let weights = match &args.weights {
        None => None,
        Some(path) => {
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
            Some(floats("weights", path, w.array, w.dtype)?)
        }
    };

    let defaults = CrossEntropyOptions::default();
    let opts = CrossEntropyOptions {
        reduction: args.reduction.reduction(),
        ignore_index: args.ignore_index.unwrap_or(defaults.ignore_index),
        label_smoothing: args.label_smoothing.unwrap_or(defaults.label_smoothing),
        z_loss: args.z_loss.unwrap_or(defaults.z_loss),
        softcap: args.softcap,
        input: match args.input {
            None => defaults.input,
            Some(InputArg::Logits) => InputKind::Logits,
            Some(InputArg::LogProbs) => InputKind::LogProbs,
            Some(InputArg::Probs) => InputKind::Probs,
        },
        ..defaults
    };
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

pub(crate) fn floats(
    what: &str,
    path: &std::path::Path,
    array: Array,
    dtype: &str,
) -> Result<Floats, Failure> {
    match array {
        Array::F16(v) => Ok(Floats::from_f16(&v)),
        Array::F32(v) => Ok(Floats::F32(v)),
        Array::F64(v) => Ok(Floats::F64(v)),
        _ => Err(usage(format!(
            "{what} file {} has dtype {dtype}, which xent does not take: {}",
            path.display(),
            npy::expected_dtypes(what)
        ))),
    }
}

/// Runs the problem: on the CPU path alone in f64 (`--backend cpu`), or on
/// the GPU in f32, then (unless `--no-check`) the CPU path on the same f32
/// values.
fn compute(p: &Problem, mode: Mode) -> Result<Computed, Failure> {
    if mode.backend == BackendArg::Cpu {
        // On the inputs the GPU would store (f64 as read, for f32).
        let input: Cow<'_, [f64]> = match mode.precision {
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
        let narrow = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        return Ok(Computed {
            loss: narrow(&out.loss),
            grad: narrow(out.grad.as_deref().unwrap_or_default()),
            adapter: "none: the f64 CPU path (--backend cpu), results rounded to float32".into(),
            gpu_ms: None,
            check: None,
        });
    }

    let input = mode.precision.round(&p.input.f32());
    let weights = p.weights.as_ref().map(Floats::f32);
    let probs = p.targets.probs().map(Floats::f32);
    let targets = p.targets.as_targets(probs.as_deref());
    let class = Weights {
        class: weights.as_deref(),
        sample: None,
    };
    let ctx = context()?;
    let start = Instant::now();
    let out = mode.precision.cross_entropy(
        &ctx,
        &input,
        &p.dims,
        targets,
        class,
        &p.opts,
        mode.shards,
    )?;
    let gpu_ms = start.elapsed().as_secs_f64() * 1e3;
    let grad = out.grad.clone().unwrap_or_default();
    let check = if mode.check {
        let want = cpu::cross_entropy_with(&input[..], &p.dims, targets, class, &p.opts)?;
        let want_grad = want.grad.as_deref().unwrap_or_default();
        let tol = Tolerance::default();
        Some(Check {
            loss_diff: xent::max_abs_diff(&out.loss, &want.loss),
            grad_diff: xent::max_abs_diff(&grad, want_grad),
            verdict: tol.compare_cross_entropy(&out, &want, &mode.precision.grad_tolerance()),
        })
    } else {
        None
    };
    Ok(Computed {
        loss: out.loss,
        grad,
        adapter: ctx.adapter_summary(),
        gpu_ms: Some(gpu_ms),
        check,
    })
}

/// The GPU context of `xent loss`, from the environment.
pub(crate) fn context() -> Result<xent::Context, Failure> {
    let mut ctx = xent::Context::from_env()?;
    // Mutation tests of the check (tests/verify_mode.rs): the GPU's gradient
    // corrupted on purpose, which the check must report.
    if let Ok(name) = std::env::var("XENT_INJECT_FAULT") {
        let fault = xent::Fault::from_name(&name).ok_or_else(|| {
            usage(format!(
                "XENT_INJECT_FAULT={name}: expected zero-tail or swap-classes"
            ))
        })?;
        eprintln!("warning: XENT_INJECT_FAULT={name} corrupts the GPU's gradient (mutation tests)");
        ctx = ctx.with_fault(fault);
    }
    Ok(ctx)
}

/// Prints the loss, the adapter and the check, writes the outputs asked for
/// (the loss of shape `loss_dims`, the gradient of the input's shape
/// `dims`), and turns a disagreement into exit status 1 (after writing).
pub(crate) fn report(
    c: &Computed,
    reduction: Reduction,
    loss_dims: &[usize],
    dims: &[usize],
    args: &LossArgs,
) -> Result<(), Failure> {
    let scalar = c.loss.first().copied().unwrap_or(f32::NAN);
    match reduction {
        Reduction::None => say!("loss (none): {}", summary(&c.loss)),
        Reduction::Sum => say!("loss (sum): {scalar}"),
        _ => say!("loss (mean): {scalar}"),
    }
    say!("adapter: {}", c.adapter);
    if let Some(ms) = c.gpu_ms {
        say!("GPU call: {ms:.2} ms");
    }
    match (&c.check, mode_name(args)) {
        (Some(check), _) => {
            let (tol, grad) = (Tolerance::default(), args.precision.grad_tolerance());
            say!(
                "largest |GPU - CPU|: loss {:.3e}, gradient {:.3e} ({}; tolerance |gpu - cpu| <= rel x max(|gpu|, |cpu|, magnitude of the terms) + abs, rel {:e} and abs {:e} for the loss, {:e} and {:e} for the gradient)",
                check.loss_diff,
                check.grad_diff,
                if check.verdict.is_ok() { "agree" } else { "DISAGREE" },
                tol.rel,
                tol.abs,
                grad.rel,
                grad.abs
            );
        }
        (None, name) => say!("largest |GPU - CPU|: not checked ({name})"),
    }
    if let Some(path) = &args.loss_out {
        npy::write_f32(path, loss_dims, &c.loss)?;
        say!("wrote loss, float32 {loss_dims:?}, to {}", path.display());
    }
    if let Some(path) = &args.grad_out {
        npy::write_f32(path, dims, &c.grad)?;
        say!("wrote gradient, float32 {dims:?}, to {}", path.display());
    }
    match c.check.as_ref().map(|check| &check.verdict) {
        Some(Err(e)) => Err(e.clone().into()),
        _ => Ok(()),
    }
}

fn mode_name(args: &LossArgs) -> &'static str {
    if args.backend == BackendArg::Cpu {
        "--backend cpu"
    } else {
        "--no-check"
    }
}

/// count, sum, mean, min, max of a `none` loss (in f64; NaN propagates to
/// sum and mean, min and max skip it).
fn summary(loss: &[f32]) -> String {
    if loss.is_empty() {
        return "count 0 (an empty batch)".into();
    }
    let sum: f64 = loss.iter().map(|&v| f64::from(v)).sum();
    let min = loss.iter().copied().fold(f32::INFINITY, f32::min);
    let max = loss.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let nan = loss.iter().filter(|v| v.is_nan()).count();
    format!(
        "count {}, sum {sum}, mean {}, min {min}, max {max}{}",
        loss.len(),
        sum / loss.len() as f64,
        if nan > 0 {
            format!(" ({nan} NaN)")
        } else {
            String::new()
        }
    )
}
