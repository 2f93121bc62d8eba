//! `xent loss`: loss and gradient of `.npy` inputs, on the GPU (checked
//! against the CPU unless `--no-check`) or on the CPU path alone. This file
//! holds the options and the output checks; `cross_entropy.rs` the path of
//! cross-entropy, `elementwise.rs` the path of the elementwise losses
//! (`--loss bce-with-logits|bce|mse|l1|smooth-l1|huber`), `report.rs` what
//! is printed.

use std::path::PathBuf;

use clap::ValueEnum;
use xent::Reduction;

use crate::cross_entropy;
use crate::elementwise::{self, ElementwiseArgs, LossKind};
use crate::outputs;
use crate::precision::PrecisionArg;
use crate::{BackendArg, Failure};

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
    /// Cross-entropy: temperature T > 0, each logit x becoming x / T before
    /// everything else, the soft-cap included (logits only); the gradient
    /// carries the 1/T [default: 1]
    #[arg(long, value_name = "FLOAT", allow_negative_numbers = true)]
    pub(crate) temperature: Option<f64>,
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
    /// Cross-entropy of logits: write each row's log-sum-exp of the logits
    /// as the loss sees them (after --temperature and --softcap) as float32
    /// .npy, of the targets' shape (class ids) or the logits' shape without
    /// the class axis (probabilities); every row, ignored ones included.
    #[arg(long, value_name = "PATH")]
    pub(crate) lse_out: Option<PathBuf>,
    /// Cross-entropy of logits: write each row's predicted class, the first
    /// index of its largest logit as the loss sees it (a NaN is the
    /// largest, as torch.argmax), as int64 .npy of --lse-out's shape; every
    /// row, ignored ones included.
    #[arg(long, value_name = "PATH")]
    pub(crate) argmax_out: Option<PathBuf>,
    /// Cross-entropy of logits: write each row's entropy -sum p log p of the
    /// softmax of its logits as the loss sees them, as float32 .npy of
    /// --lse-out's shape; every row, ignored ones included.
    #[arg(long, value_name = "PATH")]
    pub(crate) entropy_out: Option<PathBuf>,
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

pub fn run(args: &LossArgs) -> Result<(), Failure> {
    // Options that do not apply to the loss, before anything is read.
    elementwise::check_applies(args)?;
    match args.loss.elementwise(&args.elementwise) {
        Some(loss) => elementwise::run(args, loss),
        None => cross_entropy::run(args),
    }
}

/// Checks the output paths before any input is read: each must name a file
/// (not a directory) in a directory that exists, the two outputs must be
/// different files, and neither may be one of the inputs
/// (`outputs::check_output_paths`).
pub(crate) fn check_outputs(args: &LossArgs) -> Result<(), Failure> {
    outputs::check_output_paths(
        &[
            ("--loss-out", args.loss_out.as_deref()),
            ("--grad-out", args.grad_out.as_deref()),
            ("--lse-out", args.lse_out.as_deref()),
            ("--argmax-out", args.argmax_out.as_deref()),
            ("--entropy-out", args.entropy_out.as_deref()),
        ],
        &[
            ("--logits", Some(args.logits.as_path())),
            ("--targets", Some(args.targets.as_path())),
            ("--weights", args.weights.as_deref()),
            ("--pos-weight", args.elementwise.pos_weight.as_deref()),
        ],
    )
}
