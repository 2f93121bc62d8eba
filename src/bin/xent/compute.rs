//! What the computing commands share: where to compute and whether to
//! check (`Mode`), the GPU context, the timed GPU call, and a result in
//! float32 with its check against the CPU.

use std::time::Instant;

use crate::loss::LossArgs;
use crate::precision::PrecisionArg;
use crate::{usage, BackendArg, Failure};

/// Where to compute and whether to check.
#[derive(Clone, Copy)]
pub(crate) struct Mode {
    pub(crate) backend: BackendArg,
    pub(crate) check: bool,
    pub(crate) precision: PrecisionArg,
    /// Vocabulary shards of a cross-entropy (`--vocab-shards`).
    pub(crate) shards: Option<usize>,
    /// What the call returns besides the loss and gradient (`--lse-out`,
    /// `--argmax-out`, `--entropy-out`).
    pub(crate) returns: xent::Returns,
}

impl Mode {
    pub(crate) fn of(args: &LossArgs) -> Self {
        Mode {
            backend: args.backend,
            check: !args.no_check,
            precision: args.precision,
            shards: args.vocab_shards,
            returns: xent::Returns {
                lse: args.lse_out.is_some(),
                argmax: args.argmax_out.is_some(),
                entropy: args.entropy_out.is_some(),
                ..Default::default()
            },
        }
    }
}

/// A result, in float32, with where it came from.
pub(crate) struct Computed {
    pub(crate) loss: Vec<f32>,
    pub(crate) grad: Vec<f32>,
    /// Each row's log-sum-exp, when asked for (cross-entropy of logits).
    pub(crate) lse: Option<Vec<f32>>,
    /// Each row's predicted class and entropy, when asked for (likewise).
    pub(crate) argmax: Option<Vec<i64>>,
    pub(crate) entropy: Option<Vec<f32>>,
    pub(crate) adapter: String,
    pub(crate) gpu_ms: Option<f64>,
    pub(crate) check: Option<Check>,
}

impl Computed {
    /// The CPU path's result alone (`--backend cpu`), rounded to float32.
    pub(crate) fn cpu(loss: &[f64], grad: Option<&[f64]>, adapter: &str) -> Self {
        Computed {
            loss: narrow(loss),
            grad: narrow(grad.unwrap_or_default()),
            lse: None,
            argmax: None,
            entropy: None,
            adapter: adapter.into(),
            gpu_ms: None,
            check: None,
        }
    }

    /// The GPU's result, timed, with its check against the CPU path's
    /// (`cpu`: its loss and gradient, and the tolerance's verdict) unless
    /// `--no-check`.
    pub(crate) fn gpu(
        ctx: &xent::Context,
        gpu_ms: f64,
        (loss, grad): (Vec<f32>, Option<Vec<f32>>),
        cpu: Option<CpuResult<'_>>,
    ) -> Self {
        let grad = grad.unwrap_or_default();
        let check = cpu.map(|(l, g, verdict)| Check::new(&loss, &grad, l, g, verdict));
        Computed {
            loss,
            grad,
            lse: None,
            argmax: None,
            entropy: None,
            adapter: ctx.adapter_summary(),
            gpu_ms: Some(gpu_ms),
            check,
        }
    }
}

/// The CPU path's loss and gradient, and the tolerance's verdict on the
/// GPU's.
pub(crate) type CpuResult<'a> = (&'a [f64], Option<&'a [f64]>, Result<(), xent::Error>);

/// The GPU result held against the CPU path.
pub(crate) struct Check {
    pub(crate) loss_diff: f64,
    pub(crate) grad_diff: f64,
    pub(crate) verdict: Result<(), xent::Error>,
}

impl Check {
    /// The largest differences of the GPU's loss and gradient from the
    /// CPU's, with the tolerance's verdict.
    pub(crate) fn new(
        loss: &[f32],
        grad: &[f32],
        want_loss: &[f64],
        want_grad: Option<&[f64]>,
        verdict: Result<(), xent::Error>,
    ) -> Self {
        Check {
            loss_diff: xent::max_abs_diff(loss, want_loss),
            grad_diff: xent::max_abs_diff(grad, want_grad.unwrap_or_default()),
            verdict,
        }
    }
}

/// The f64 values of the CPU path, rounded to float32.
pub(crate) fn narrow(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// `call`'s result with the milliseconds it took.
pub(crate) fn timed<T, E>(call: impl FnOnce() -> Result<T, E>) -> Result<(T, f64), E> {
    let start = Instant::now();
    let out = call()?;
    Ok((out, start.elapsed().as_secs_f64() * 1e3))
}

/// `--vocab-shards`, refused when 0.
pub(crate) fn check_shards(shards: Option<usize>) -> Result<(), Failure> {
    if shards == Some(0) {
        return Err(usage("--vocab-shards must be at least 1"));
    }
    Ok(())
}

/// The GPU context of `xent loss` and `xent linear-loss`, from the environment.
pub(crate) fn context() -> Result<xent::Context, Failure> {
    let mut ctx = xent::Context::from_env()?;
    // Mutation tests of the check (tests/cross_entropy/verify_mode.rs): the GPU's gradient
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
