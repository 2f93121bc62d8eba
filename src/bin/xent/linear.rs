//! `xent linear-loss`: the fused linear cross-entropy of `.npy` inputs
//! (hidden states `(…, H)`, a classifier's weight and bias, class-id or
//! probability targets), on
//! the GPU (checked against the CPU twin unless `--no-check`) or on the CPU
//! twin alone.

use std::path::{Path, PathBuf};

use xent::{
    cpu, CrossEntropyOptions, LinearCrossEntropyOptions, LinearDims, LinearOutput, Reduction,
    Targets, Tolerance,
};

use crate::compute::{self, narrow};
use crate::inputs::{self, Floats};
use crate::kernel::ProductKernelArg;
use crate::loss::ReductionArg;
use crate::npy::{self, Array};
use crate::outputs;
use crate::precision::{LinearInputs, PrecisionArg};
use crate::report;
use crate::{usage, BackendArg, Failure};

#[derive(clap::Args)]
pub struct LinearArgs {
    /// Hidden states .npy, float16/float32/float64 of shape (..., H): any
    /// number of leading dimensions, e.g. (N, H), (B, T, H), or (H) for one
    /// unbatched row. Each leading index is a row.
    #[arg(long, value_name = "PATH")]
    hidden: PathBuf,
    /// Classifier weight .npy, float16/float32/float64 of shape (V, H).
    #[arg(long, value_name = "PATH")]
    weight: PathBuf,
    /// Targets .npy: int64 or int32 class ids of the hidden's leading shape
    /// (...) (0-d for an unbatched hidden), or float16/32/64 probabilities
    /// of shape (..., V).
    #[arg(long, value_name = "PATH")]
    targets: PathBuf,
    /// Classifier bias .npy, float of shape (V).
    #[arg(long, value_name = "PATH")]
    bias: Option<PathBuf>,
    /// Class weights .npy, float of shape (V).
    #[arg(long, value_name = "PATH")]
    weights: Option<PathBuf>,
    /// Class ids equal to this are ignored (no loss, no gradient, not counted by mean).
    #[arg(long, value_name = "INT", allow_negative_numbers = true, default_value_t = -100)]
    ignore_index: i64,
    /// How the per-row losses are combined.
    #[arg(long, value_enum, default_value_t = ReductionArg::Mean)]
    reduction: ReductionArg,
    /// Label smoothing in [0, 1].
    #[arg(
        long,
        value_name = "FLOAT",
        allow_negative_numbers = true,
        default_value_t = 0.0
    )]
    label_smoothing: f64,
    /// z-loss scale z >= 0: adds w[t]·z·lse² per non-ignored row, normalised like the loss.
    #[arg(
        long,
        value_name = "FLOAT",
        allow_negative_numbers = true,
        default_value_t = 0.0
    )]
    z_loss: f64,
    /// Logit soft-capping cap > 0: each logit x becomes cap·tanh(x / cap) before everything else.
    #[arg(long, value_name = "FLOAT", allow_negative_numbers = true)]
    softcap: Option<f64>,
    /// Temperature T > 0: each logit x becomes x / T before everything else,
    /// the soft-cap included; the gradient carries the 1/T.
    #[arg(
        long,
        value_name = "FLOAT",
        allow_negative_numbers = true,
        default_value_t = 1.0
    )]
    temperature: f64,
    /// Storage of hidden, weight and bias on the GPU (rounded to it on load;
    /// the check runs on the rounded values). The logits, gradients and sums are f32.
    #[arg(long, value_enum, default_value_t = PrecisionArg::F32)]
    precision: PrecisionArg,
    /// Most bytes of device scratch (the window of logits and per-row
    /// scratch; default: the larger of 16 MiB and 1/8 of the f32 logits).
    #[arg(long, value_name = "BYTES")]
    scratch_budget: Option<u64>,
    /// The products' kernel (coop: tensor cores for the logits' product).
    #[arg(long, value_enum, default_value_t = ProductKernelArg::Auto)]
    product_kernel: ProductKernelArg,
    /// How the products cut k: auto, or LEN or LENxP (slices of LEN of k, a
    /// multiple of 16, at most P at once within --scratch-budget). The cut
    /// fixes the bits; P only the speed.
    #[arg(long, value_parser = crate::kernel::parse_split_k, default_value = "auto")]
    split_k: xent::SplitK,
    /// Gradient filtering: the products of the gradients skip steps of the
    /// logits' gradient below FLOAT (relative to a row of weight 1, as
    /// softmax - one-hot; Cut Cross-Entropy's filter_eps). The check
    /// against the CPU allows for what it skips.
    #[arg(long, value_name = "FLOAT")]
    filter_eps: Option<f64>,
    /// Write the loss as float32 .npy: shape () for mean and sum, the
    /// hidden's leading shape (...) for none.
    #[arg(long, value_name = "PATH")]
    loss_out: Option<PathBuf>,
    /// Write d loss / d hidden as float32 .npy, the hidden's shape (..., H).
    #[arg(long, value_name = "PATH")]
    grad_hidden_out: Option<PathBuf>,
    /// Write d loss / d weight as float32 .npy, (V, H).
    #[arg(long, value_name = "PATH")]
    grad_weight_out: Option<PathBuf>,
    /// Write d loss / d bias as float32 .npy, (V) (needs --bias).
    #[arg(long, value_name = "PATH")]
    grad_bias_out: Option<PathBuf>,
    /// Write each row's log-sum-exp of the logits as the loss sees them
    /// (after --temperature and --softcap) as float32 .npy, the hidden's
    /// leading shape; every row, ignored ones included.
    #[arg(long, value_name = "PATH")]
    lse_out: Option<PathBuf>,
    /// Write each row's predicted class, the first index of its largest
    /// logit as the loss sees it (a NaN is the largest, as torch.argmax),
    /// as int64 .npy, the hidden's leading shape; every row, ignored ones
    /// included.
    #[arg(long, value_name = "PATH")]
    argmax_out: Option<PathBuf>,
    /// Write each row's entropy -sum p log p of the softmax of its logits as
    /// the loss sees them as float32 .npy, the hidden's leading shape; every
    /// row, ignored ones included.
    #[arg(long, value_name = "PATH")]
    entropy_out: Option<PathBuf>,
    /// The wgpu backend to run on (sets WGPU_BACKEND), or `cpu` for the f64 CPU twin alone.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
    /// Do not check the GPU result against the CPU twin.
    #[arg(long)]
    no_check: bool,
    /// Split the vocabulary (the rows of weight and bias) into K shards
    /// (K >= 1, may exceed V: the extra shards are empty) run on the one
    /// device through partial, merge and finish, as a model-parallel run
    /// does across devices; d loss / d hidden is the sum of the shards'
    /// parts. The outputs are the unsharded call's (within the check's
    /// tolerance). The CPU twin (--backend cpu) has no shards.
    #[arg(long, value_name = "K")]
    vocab_shards: Option<usize>,
}

/// Targets as read: class ids, or probabilities (f32, as the GPU reads them).
enum TargetData {
    Ids(Vec<i64>),
    Probs(Vec<f32>),
}

impl TargetData {
    fn as_targets(&self) -> Targets<'_> {
        match self {
            TargetData::Ids(t) => Targets::I64(t),
            TargetData::Probs(p) => Targets::Probs(p),
        }
    }
}

/// The fused op's inputs, read and checked, and its options.
struct Problem {
    hidden: Floats,
    /// The hidden's shape, (..., H).
    hidden_dims: Vec<usize>,
    weight: Floats,
    dims: LinearDims,
    targets: TargetData,
    bias: Option<Vec<f32>>,
    class_weights: Option<Vec<f32>>,
    opts: LinearCrossEntropyOptions,
}

/// A result, in float32, with where it came from and, on the GPU, its
/// largest differences from the CPU twin (loss, grad hidden, grad weight,
/// grad bias) and the verdict.
struct Computed {
    out: LinearOutput<f32>,
    adapter: String,
    gpu_ms: Option<f64>,
    check: Option<([f64; 4], Result<(), xent::Error>)>,
}

pub fn run(args: &LinearArgs) -> Result<(), Failure> {
    compute::check_shards(args.vocab_shards)?;
    check_outputs(args)?;
    let problem = read_problem(args)?;
    let computed = compute(args, &problem)?;
    report(args, &problem, &computed)
}

/// The output paths, checked before any input is read
/// (`outputs::check_output_paths`).
fn check_outputs(args: &LinearArgs) -> Result<(), Failure> {
    outputs::check_output_paths(
        &[
            ("--loss-out", args.loss_out.as_deref()),
            ("--grad-hidden-out", args.grad_hidden_out.as_deref()),
            ("--grad-weight-out", args.grad_weight_out.as_deref()),
            ("--grad-bias-out", args.grad_bias_out.as_deref()),
            ("--lse-out", args.lse_out.as_deref()),
            ("--argmax-out", args.argmax_out.as_deref()),
            ("--entropy-out", args.entropy_out.as_deref()),
        ],
        &[
            ("--hidden", Some(args.hidden.as_path())),
            ("--weight", Some(args.weight.as_path())),
            ("--targets", Some(args.targets.as_path())),
            ("--bias", args.bias.as_deref()),
            ("--weights", args.weights.as_deref()),
        ],
    )
}

/// Reads and checks the files and options, before any adapter is opened.
fn read_problem(args: &LinearArgs) -> Result<Problem, Failure> {
    let (hidden, hs) = inputs::read_floats("hidden", &args.hidden)?;
    let (weight, ws) = inputs::read_floats("weight", &args.weight)?;
    let dims = linear_dims(&hs, &ws)?;
    let targets = read_targets(&args.targets, &hs, dims)?;
    if args.vocab_shards.is_some() && matches!(targets, TargetData::Probs(_)) {
        return Err(usage(
            "--vocab-shards takes int64 or int32 class-id targets, not probabilities",
        ));
    }
    let bias = inputs::read_vector("bias", args.bias.as_deref(), &ws, dims.v)?;
    let class_weights = inputs::read_vector("weights", args.weights.as_deref(), &ws, dims.v)?;
    if args.grad_bias_out.is_some() && bias.is_none() {
        return Err(usage("--grad-bias-out needs --bias"));
    }
    let opts = LinearCrossEntropyOptions {
        loss: CrossEntropyOptions {
            reduction: args.reduction.reduction(),
            ignore_index: args.ignore_index,
            label_smoothing: args.label_smoothing,
            z_loss: args.z_loss,
            softcap: args.softcap,
            temperature: args.temperature,
            ..Default::default()
        },
        scratch_budget: args.scratch_budget,
        product_kernel: args.product_kernel.kernel(),
        split_k: args.split_k,
        filter_eps: args.filter_eps,
    };
    opts.validate()?;
    Ok(Problem {
        hidden,
        hidden_dims: hs,
        weight,
        dims,
        targets,
        bias,
        class_weights,
        opts,
    })
}

/// The sizes of hidden (`hs`, (..., H)) and weight (`ws`, (V, H)).
fn linear_dims(hs: &[usize], ws: &[usize]) -> Result<LinearDims, Failure> {
    LinearDims::from_shapes(hs, ws).map_err(|e| match e {
        xent::Error::InvalidShape { shape, reason } if shape == ws => {
            usage(format!("weight has shape {ws:?}: {reason}"))
        }
        xent::Error::InvalidShape { reason, .. } => {
            usage(format!("hidden has shape {hs:?}: {reason}"))
        }
        e => e.into(),
    })
}

/// The targets: int64 or int32 class ids of the hidden's leading shape, or
/// float probabilities of shape (..., V).
fn read_targets(path: &Path, hs: &[usize], dims: LinearDims) -> Result<TargetData, Failure> {
    let t = npy::read("targets", path)?;
    let leading = &hs[..hs.len() - 1];
    let probs_dims: Vec<usize> = leading.iter().copied().chain([dims.v]).collect();
    let (targets, want) = match t.array {
        Array::I64(v) => (TargetData::Ids(v), leading.to_vec()),
        Array::I32(v) => (
            TargetData::Ids(v.into_iter().map(i64::from).collect()),
            leading.to_vec(),
        ),
        Array::F16(v) => (
            TargetData::Probs(Floats::from_f16(&v).f32().into_owned()),
            probs_dims,
        ),
        Array::F32(v) => (TargetData::Probs(v), probs_dims),
        Array::F64(v) => (
            TargetData::Probs(Floats::F64(v).f32().into_owned()),
            probs_dims,
        ),
        Array::U8(_) => {
            return Err(usage(format!(
                "targets file {} has dtype {}: expected int64 or int32 class ids or \
                 float16/32/64 probabilities",
                path.display(),
                t.dtype
            )))
        }
    };
    if t.shape != want {
        let kind = match targets {
            TargetData::Ids(_) => "class ids need the hidden's leading shape",
            TargetData::Probs(_) => "probabilities need the hidden's leading shape and V",
        };
        return Err(usage(format!(
            "targets have shape {:?} ({}) but hidden {hs:?} and weight (V = {}): {kind}, {want:?}",
            t.shape, t.dtype, dims.v
        )));
    }
    Ok(targets)
}

/// hidden, weight and bias as the GPU stores them; the twin runs on them.
struct Stored {
    hidden: Vec<f32>,
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
}

impl Stored {
    fn of(p: &Problem, precision: PrecisionArg) -> Self {
        Stored {
            hidden: precision.round(&p.hidden.f32()),
            weight: precision.round(&p.weight.f32()),
            bias: p.bias.as_deref().map(|b| precision.round(b)),
        }
    }

    /// The CPU twin on these values.
    fn twin(&self, p: &Problem) -> xent::Result<LinearOutput<f64>> {
        cpu::linear_cross_entropy_with(
            &self.hidden,
            &self.weight,
            self.bias.as_deref(),
            p.targets.as_targets(),
            p.class_weights.as_deref(),
            &p.dims,
            &p.opts,
        )
    }
}

/// Runs the problem: on the CPU twin alone (`--backend cpu`), or on the GPU,
/// then (unless `--no-check`) the CPU twin on the same values.
fn compute(args: &LinearArgs, p: &Problem) -> Result<Computed, Failure> {
    // The values the GPU stores; the twin runs on them.
    let stored = Stored::of(p, args.precision);
    if args.backend == BackendArg::Cpu {
        let t = stored.twin(p)?;
        let out = LinearOutput {
            loss: narrow(&t.loss),
            grad_hidden: t.grad_hidden.as_deref().map(narrow),
            grad_weight: t.grad_weight.as_deref().map(narrow),
            grad_bias: t.grad_bias.as_deref().map(narrow),
            lse: t
                .lse
                .as_deref()
                .map(narrow)
                .filter(|_| args.lse_out.is_some()),
            correct: None,
            argmax: t.argmax.filter(|_| args.argmax_out.is_some()),
            entropy: t
                .entropy
                .as_deref()
                .map(narrow)
                .filter(|_| args.entropy_out.is_some()),
            magnitude: None,
        };
        let adapter = "none: the f64 CPU twin (--backend cpu), results rounded to float32";
        return Ok(Computed {
            out,
            adapter: adapter.to_string(),
            gpu_ms: None,
            check: None,
        });
    }
    let ctx = compute::context()?;
    args.product_kernel.check_device(&ctx)?;
    let (out, ms) = compute::timed(|| {
        let inputs = LinearInputs {
            hidden: &stored.hidden,
            weight: &stored.weight,
            bias: p.bias.as_deref(),
            targets: p.targets.as_targets(),
            class_weights: p.class_weights.as_deref(),
        };
        let returns = xent::Returns {
            lse: args.lse_out.is_some(),
            argmax: args.argmax_out.is_some(),
            entropy: args.entropy_out.is_some(),
            ..Default::default()
        };
        let split = (args.vocab_shards, &returns);
        args.precision
            .linear_cross_entropy(&ctx, &inputs, &p.dims, &p.opts, split)
    })?;
    let check = if args.no_check {
        None
    } else {
        Some(check(&out, &stored.twin(p)?))
    };
    Ok(Computed {
        out,
        adapter: ctx.adapter_summary(),
        gpu_ms: Some(ms),
        check,
    })
}

/// The GPU's result held against the twin's: the largest differences of
/// the loss and each gradient, and the verdict.
fn check(out: &LinearOutput<f32>, t: &LinearOutput<f64>) -> ([f64; 4], Result<(), xent::Error>) {
    let diff = |g: &Option<Vec<f32>>, c: &Option<Vec<f64>>| match (g, c) {
        (Some(g), Some(c)) => xent::max_abs_diff(g, c),
        _ => 0.0,
    };
    let diffs = [
        xent::max_abs_diff(&out.loss, &t.loss),
        diff(&out.grad_hidden, &t.grad_hidden),
        diff(&out.grad_weight, &t.grad_weight),
        diff(&out.grad_bias, &t.grad_bias),
    ];
    (diffs, Tolerance::default().compare_linear(out, t))
}

/// Prints the loss, the adapter and the check, writes the outputs asked
/// for, and turns a disagreement into exit status 1 (after writing).
fn report(args: &LinearArgs, p: &Problem, c: &Computed) -> Result<(), Failure> {
    let (out, dims) = (&c.out, &p.dims);
    let reduction = p.opts.loss.reduction;
    report::say_loss(reduction, &out.loss, |loss| format!("{} rows", loss.len()));
    say!("adapter: {}", c.adapter);
    if let Some(ms) = c.gpu_ms {
        say!("GPU call: {ms:.2} ms (with uploads and readback)");
    }
    match &c.check {
        Some((d, verdict)) => say!(
            "largest |GPU - CPU|: loss {:.3e}, grad hidden {:.3e}, grad weight {:.3e}, grad bias {:.3e} ({})",
            d[0],
            d[1],
            d[2],
            d[3],
            report::agree(verdict)
        ),
        None => report::say_unchecked(args.backend),
    }
    let leading = p.hidden_dims[..p.hidden_dims.len() - 1].to_vec();
    let loss_dims = if reduction == Reduction::None {
        leading.clone()
    } else {
        Vec::new()
    };
    let writes = [
        ("loss", &args.loss_out, Some(&out.loss), loss_dims),
        (
            "grad hidden",
            &args.grad_hidden_out,
            out.grad_hidden.as_ref(),
            p.hidden_dims.clone(),
        ),
        (
            "grad weight",
            &args.grad_weight_out,
            out.grad_weight.as_ref(),
            vec![dims.v, dims.h],
        ),
        (
            "grad bias",
            &args.grad_bias_out,
            out.grad_bias.as_ref(),
            vec![dims.v],
        ),
        (
            "log-sum-exp",
            &args.lse_out,
            out.lse.as_ref(),
            leading.clone(),
        ),
        (
            "entropy",
            &args.entropy_out,
            out.entropy.as_ref(),
            leading.clone(),
        ),
    ];
    for (what, path, values, shape) in writes {
        if let (Some(path), Some(values)) = (path, values) {
            outputs::write(what, path, &shape, values)?;
        }
    }
    if let (Some(path), Some(argmax)) = (&args.argmax_out, &out.argmax) {
        outputs::write("predicted classes", path, &leading, argmax)?;
    }
    report::verdict(c.check.as_ref().map(|(_, verdict)| verdict))
}
