//! What `xent loss` and `xent linear-loss` print of a result, and the exit
//! status a disagreement gives (after the outputs are written).

use xent::{Reduction, Tolerance};

use crate::compute::Computed;
use crate::loss::LossArgs;
use crate::outputs;
use crate::{BackendArg, Failure};

/// Prints the loss, the adapter and the check, writes the outputs asked for
/// (the loss of shape `loss_dims`, the gradient of the input's shape
/// `dims`, the per-row outputs of shape `row_dims`), and turns a
/// disagreement into exit status 1 (after writing).
pub(crate) fn report(
    c: &Computed,
    reduction: Reduction,
    [loss_dims, dims, row_dims]: [&[usize]; 3],
    args: &LossArgs,
) -> Result<(), Failure> {
    say_loss(reduction, &c.loss, summary);
    say!("adapter: {}", c.adapter);
    if let Some(ms) = c.gpu_ms {
        say!("GPU call: {ms:.2} ms");
    }
    match &c.check {
        Some(check) => {
            let (tol, grad) = (Tolerance::default(), args.precision.grad_tolerance());
            say!(
                "largest |GPU - CPU|: loss {:.3e}, gradient {:.3e} ({}; tolerance |gpu - cpu| <= rel x max(|gpu|, |cpu|, magnitude of the terms) + abs + flush factor x 2^-126, rel {:e} and abs {:e} for the loss, {:e} and {:e} for the gradient)",
                check.loss_diff,
                check.grad_diff,
                agree(&check.verdict),
                tol.rel,
                tol.abs,
                grad.rel,
                grad.abs
            );
        }
        None => say_unchecked(args.backend),
    }
    if let Some(path) = &args.loss_out {
        outputs::write("loss", path, loss_dims, &c.loss)?;
    }
    if let Some(path) = &args.grad_out {
        outputs::write("gradient", path, dims, &c.grad)?;
    }
    if let (Some(path), Some(lse)) = (&args.lse_out, &c.lse) {
        outputs::write("log-sum-exp", path, row_dims, lse)?;
    }
    if let (Some(path), Some(argmax)) = (&args.argmax_out, &c.argmax) {
        outputs::write("predicted classes", path, row_dims, argmax)?;
    }
    if let (Some(path), Some(entropy)) = (&args.entropy_out, &c.entropy) {
        outputs::write("entropy", path, row_dims, entropy)?;
    }
    verdict(c.check.as_ref().map(|check| &check.verdict))
}

/// The loss line: the scalar of mean and sum, `none(loss)` for none.
pub(crate) fn say_loss(reduction: Reduction, loss: &[f32], none: impl FnOnce(&[f32]) -> String) {
    let scalar = loss.first().copied().unwrap_or(f32::NAN);
    match reduction {
        Reduction::None => say!("loss (none): {}", none(loss)),
        Reduction::Sum => say!("loss (sum): {scalar}"),
        _ => say!("loss (mean): {scalar}"),
    }
}

/// The check's line when there was none, naming why.
pub(crate) fn say_unchecked(backend: BackendArg) {
    let why = if backend == BackendArg::Cpu {
        "--backend cpu"
    } else {
        "--no-check"
    };
    say!("largest |GPU - CPU|: not checked ({why})");
}

/// A verdict in words.
pub(crate) fn agree(verdict: &Result<(), xent::Error>) -> &'static str {
    if verdict.is_ok() {
        "agree"
    } else {
        "DISAGREE"
    }
}

/// The check's verdict as the command's result: a disagreement is exit status 1.
pub(crate) fn verdict(verdict: Option<&Result<(), xent::Error>>) -> Result<(), Failure> {
    match verdict {
        Some(Err(e)) => Err(e.clone().into()),
        _ => Ok(()),
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
