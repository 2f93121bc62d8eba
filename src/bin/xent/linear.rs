//! `xent linear-loss`: the fused linear cross-entropy of `.npy` inputs
//! (hidden states, a classifier's weight and bias, class-id targets), on
//! the GPU (checked against the CPU twin unless `--no-check`) or on the CPU
//! twin alone.

use std::path::{Path, PathBuf};
use std::time::Instant;

use xent::{
    cpu, CrossEntropyOptions, LinearCrossEntropyOptions, LinearDims, LinearOutput, Reduction,
    Tolerance,
};

use crate::compute::context;
use crate::inputs::{floats, Floats};
use crate::loss::ReductionArg;
use crate::npy::{self, Array};
use crate::outputs::check_output_paths;
use crate::precision::{LinearInputs, PrecisionArg};
use crate::{usage, BackendArg, Failure};

#[derive(clap::Args)]
pub struct LinearArgs {
    /// Hidden states .npy, float16/float32/float64 of shape (N, H).
    #[arg(long, value_name = "PATH")]
    hidden: PathBuf,
    /// Classifier weight .npy, float16/float32/float64 of shape (V, H).
    #[arg(long, value_name = "PATH")]
    weight: PathBuf,
    /// Class ids .npy, int64 or int32 of shape (N).
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
    /// Storage of hidden, weight and bias on the GPU (rounded to it on load;
    /// the check runs on the rounded values). The logits, gradients and sums are f32.
    #[arg(long, value_enum, default_value_t = PrecisionArg::F32)]
    precision: PrecisionArg,
    /// Most bytes of device scratch (the window of logits and per-row scratch).
    #[arg(long, value_name = "BYTES", default_value_t = xent::DEFAULT_SCRATCH_BUDGET)]
    scratch_budget: u64,
    /// Write the loss as float32 .npy: shape () for mean and sum, (N) for none.
    #[arg(long, value_name = "PATH")]
    loss_out: Option<PathBuf>,
    /// Write d loss / d hidden as float32 .npy, (N, H).
    #[arg(long, value_name = "PATH")]
    grad_hidden_out: Option<PathBuf>,
    /// Write d loss / d weight as float32 .npy, (V, H).
    #[arg(long, value_name = "PATH")]
    grad_weight_out: Option<PathBuf>,
    /// Write d loss / d bias as float32 .npy, (V) (needs --bias).
    #[arg(long, value_name = "PATH")]
    grad_bias_out: Option<PathBuf>,
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

/// A matrix read from a file: its values and shape.
fn matrix(what: &str, path: &Path) -> Result<(Floats, Vec<usize>), Failure> {
    let a = npy::read(what, path)?;
    Ok((floats(what, path, a.array, a.dtype)?, a.shape))
}

pub fn run(args: &LinearArgs) -> Result<(), Failure> {
    if args.vocab_shards == Some(0) {
        return Err(usage("--vocab-shards must be at least 1"));
    }
    check_output_paths(
        &[
            ("--loss-out", args.loss_out.as_deref()),
            ("--grad-hidden-out", args.grad_hidden_out.as_deref()),
            ("--grad-weight-out", args.grad_weight_out.as_deref()),
            ("--grad-bias-out", args.grad_bias_out.as_deref()),
        ],
        &[
            ("--hidden", Some(args.hidden.as_path())),
            ("--weight", Some(args.weight.as_path())),
            ("--targets", Some(args.targets.as_path())),
            ("--bias", args.bias.as_deref()),
            ("--weights", args.weights.as_deref()),
        ],
    )?;
    let (hidden, hs) = matrix("hidden", &args.hidden)?;
    let (weight, ws) = matrix("weight", &args.weight)?;
    if hs.len() != 2 {
        return Err(usage(format!("hidden has shape {hs:?}; expected (N, H)")));
    }
    if ws.len() != 2 {
        return Err(usage(format!("weight has shape {ws:?}; expected (V, H)")));
    }
    let dims = LinearDims {
        n: hs[0],
        h: hs[1],
        v: ws[0],
    };
    if ws[1] != dims.h {
        return Err(usage(format!(
            "weight has shape {ws:?} but hidden {hs:?}: their H (last axes) differ"
        )));
    }
    let t = npy::read_as(
        "targets",
        &args.targets,
        "expected int64 or int32 class ids",
    )?;
    let targets: Vec<i64> = match t.array {
        Array::I64(v) => v,
        Array::I32(v) => v.into_iter().map(i64::from).collect(),
        _ => {
            return Err(usage(format!(
                "targets file {} has dtype {}: expected int64 or int32 class ids",
                args.targets.display(),
                t.dtype
            )))
        }
    };
    if t.shape != [dims.n] {
        return Err(usage(format!(
            "targets have shape {:?} but hidden {hs:?} needs ({},)",
            t.shape, dims.n
        )));
    }
    let vector = |what: &str, path: &Option<PathBuf>| -> Result<Option<Vec<f32>>, Failure> {
        let Some(path) = path else { return Ok(None) };
        let (values, shape) = matrix(what, path)?;
        if shape != [dims.v] {
            return Err(usage(format!(
                "{what} has shape {shape:?} but weight {ws:?} needs ({},)",
                dims.v
            )));
        }
        Ok(Some(values.f32().into_owned()))
    };
    let bias = vector("bias", &args.bias)?;
    let class_weights = vector("weights", &args.weights)?;
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
            ..Default::default()
        },
        scratch_budget: args.scratch_budget,
        ..Default::default()
    };
    opts.validate()?;
    // The values the GPU stores; the twin runs on them.
    let (h32, w32) = (
        args.precision.round(&hidden.f32()),
        args.precision.round(&weight.f32()),
    );
    let b32 = bias.as_deref().map(|b| args.precision.round(b));
    let twin = || {
        cpu::linear_cross_entropy(
            &h32,
            &w32,
            b32.as_deref(),
            &targets,
            class_weights.as_deref(),
            &dims,
            &opts,
        )
    };
    let narrow = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let (out, adapter, gpu_ms, check) = if args.backend == BackendArg::Cpu {
        let t = twin()?;
        let out = LinearOutput {
            loss: narrow(&t.loss),
            grad_hidden: t.grad_hidden.as_deref().map(narrow),
            grad_weight: t.grad_weight.as_deref().map(narrow),
            grad_bias: t.grad_bias.as_deref().map(narrow),
            lse: None,
            correct: None,
            magnitude: None,
        };
        let adapter = "none: the f64 CPU twin (--backend cpu), results rounded to float32";
        (out, adapter.to_string(), None, None)
    } else {
        let ctx = context()?;
        let start = Instant::now();
        let inputs = LinearInputs {
            hidden: &h32,
            weight: &w32,
            bias: bias.as_deref(),
            targets: &targets,
            class_weights: class_weights.as_deref(),
        };
        let out =
            args.precision
                .linear_cross_entropy(&ctx, &inputs, &dims, &opts, args.vocab_shards)?;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        let check = if args.no_check {
            None
        } else {
            let t = twin()?;
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
            Some((diffs, Tolerance::default().compare_linear(&out, &t)))
        };
        (out, ctx.adapter_summary(), Some(ms), check)
    };
    let reduction = opts.loss.reduction;
    let scalar = out.loss.first().copied().unwrap_or(f32::NAN);
    match reduction {
        Reduction::None => say!("loss (none): {} rows", out.loss.len()),
        Reduction::Sum => say!("loss (sum): {scalar}"),
        Reduction::Mean => say!("loss (mean): {scalar}"),
    }
    say!("adapter: {adapter}");
    if let Some(ms) = gpu_ms {
        say!("GPU call: {ms:.2} ms (with uploads and readback)");
    }
    match &check {
        Some((d, verdict)) => say!(
            "largest |GPU - CPU|: loss {:.3e}, grad hidden {:.3e}, grad weight {:.3e}, grad bias {:.3e} ({})",
            d[0],
            d[1],
            d[2],
            d[3],
            if verdict.is_ok() { "agree" } else { "DISAGREE" }
        ),
        None if args.backend == BackendArg::Cpu => {
            say!("largest |GPU - CPU|: not checked (--backend cpu)")
        }
        None => say!("largest |GPU - CPU|: not checked (--no-check)"),
    }
    let loss_dims = if reduction == Reduction::None {
        vec![dims.n]
    } else {
        Vec::new()
    };
    let writes = [
        ("loss", &args.loss_out, Some(&out.loss), loss_dims),
        (
            "grad hidden",
            &args.grad_hidden_out,
            out.grad_hidden.as_ref(),
            vec![dims.n, dims.h],
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
    ];
    for (what, path, values, shape) in writes {
        if let (Some(path), Some(values)) = (path, values) {
            npy::write_f32(path, &shape, values)?;
            say!("wrote {what}, float32 {shape:?}, to {}", path.display());
        }
    }
    match check.map(|(_, verdict)| verdict) {
        Some(Err(e)) => Err(e.into()),
        _ => Ok(()),
    }
}
