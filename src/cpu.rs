//! The CPU twins of every GPU op: max-subtracted, accumulated in f64.
//!
//! These are the reference every GPU result is held against. They take the
//! same inputs as the GPU path (f32, or f64 for finite-difference checks) and
//! return f64. They share the input checks with the GPU path, so bad input
//! gives the same typed [`Error`](crate::Error) on both.

use crate::error::Result;
use crate::options::{CrossEntropyOptions, Reduction};
use crate::shape::Layout;
use crate::validate;

/// Loss and gradient of a cross-entropy call, in the precision of its path.
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// let out = xent::cpu::cross_entropy(&[0.0f32, 0.0], &[2], &[1], None, &Default::default())?;
/// assert!((out.scalar().unwrap() - std::f64::consts::LN_2).abs() < 1e-12);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CrossEntropyOutput<T> {
    /// One value for `mean` and `sum`; one per target, in the target's shape,
    /// for `none`.
    pub loss: Vec<T>,
    /// The shape of `loss`: `[]` for `mean` and `sum`, the target's shape for `none`.
    pub loss_dims: Vec<usize>,
    /// ∂loss/∂logits in the input's layout (for `none`, of the sum of the
    /// per-target losses); `None` when not asked for.
    pub grad: Option<Vec<T>>,
}

impl<T: Copy> CrossEntropyOutput<T> {
    /// The reduced loss for `mean` and `sum`; `None` for `none`.
    pub fn scalar(&self) -> Option<T> {
        if self.loss_dims.is_empty() {
            self.loss.first().copied()
        } else {
            None
        }
    }
}

/// Per-row (max, sum-exp) of `x` over the class axis, accumulated in f64.
fn row_stats(x: &[f64], layout: &Layout, row: usize) -> (f64, f64) {
    let m = (0..layout.classes)
        .map(|c| x[layout.element(row, c)])
        .fold(f64::NEG_INFINITY, f64::max);
    let s = (0..layout.classes)
        .map(|c| (x[layout.element(row, c)] - m).exp())
        .sum();
    (m, s)
}

fn widen<T: Copy + Into<f64>>(x: &[T]) -> Vec<f64> {
    x.iter().map(|&v| v.into()).collect()
}

/// Softmax along the class axis (axis 1; axis 0 for a one-axis input).
///
/// # Errors
/// [`Error::InvalidShape`](crate::Error::InvalidShape) or
/// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) when `x` does not fit `dims`.
///
/// ```
/// let p = xent::cpu::softmax(&[0.0f32, 0.0], &[1, 2]).unwrap();
/// assert_eq!(p, vec![0.5, 0.5]);
/// ```
pub fn softmax<T: Copy + Into<f64>>(x: &[T], dims: &[usize]) -> Result<Vec<f64>> {
    normalise(x, dims, false)
}

/// Log-softmax along the class axis: `x − max − log Σ exp(x − max)`.
///
/// # Errors
/// As [`softmax`].
///
/// ```
/// let y = xent::cpu::log_softmax(&[1.0f32, 1.0], &[2]).unwrap();
/// assert!((y[0] + std::f64::consts::LN_2).abs() < 1e-15);
/// ```
pub fn log_softmax<T: Copy + Into<f64>>(x: &[T], dims: &[usize]) -> Result<Vec<f64>> {
    normalise(x, dims, true)
}

fn normalise<T: Copy + Into<f64>>(x: &[T], dims: &[usize], log: bool) -> Result<Vec<f64>> {
    let layout = Layout::from_dims(dims)?;
    validate::length("input", dims, layout.len(), x.len())?;
    let x = widen(x);
    let mut y = vec![0.0; x.len()];
    for row in 0..layout.rows() {
        let (m, s) = row_stats(&x, &layout, row);
        let lse = m + s.ln();
        for c in 0..layout.classes {
            let i = layout.element(row, c);
            y[i] = if log {
                x[i] - lse
            } else {
                (x[i] - m).exp() / s
            };
        }
    }
    Ok(y)
}

/// Softmax cross-entropy with class-index targets, as PyTorch's `F.cross_entropy`.
///
/// `logits` has shape `dims` = `(C)`, `(N, C)` or `(N, C, d1, …, dK)`;
/// `targets` has the same shape without the class axis; `weights`, if given,
/// has length C. The formulas are those of [`CrossEntropyOptions`].
///
/// # Errors
/// Shape, weight-length and option errors as the GPU path, and
/// [`Error::TargetOutOfRange`](crate::Error::TargetOutOfRange) naming the first bad target.
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// let logits = [10.0f32, 2.0, 1.0, -2.0, -3.0, -1.0, -6.0, 0.0, -3.0, -5.0, -5.0, 4.0, 8.0, 2.0, 1.0];
/// let out = xent::cpu::cross_entropy(&logits, &[3, 5], &[1, 3, 2], None, &Default::default())?;
/// assert!((out.scalar().unwrap() - 3.7925).abs() < 5e-5);
/// # Ok(()) }
/// ```
pub fn cross_entropy<T: Copy + Into<f64>>(
    logits: &[T],
    dims: &[usize],
    targets: &[i64],
    weights: Option<&[T]>,
    opts: &CrossEntropyOptions,
) -> Result<CrossEntropyOutput<f64>> {
    let layout = Layout::from_dims(dims)?;
    let weights = weights.map(widen);
    validate::inputs(
        &layout,
        logits.len(),
        targets.len(),
        weights.as_deref(),
        opts,
    )?;
    validate::target_range(&layout, targets, opts.ignore_index)?;
    let x = widen(logits);
    let classes = layout.classes;
    let w = |c: usize| weights.as_ref().map_or(1.0, |w| w[c]);
    let weight_sum: f64 = (0..classes).map(w).sum();
    let eps = opts.label_smoothing;

    let mut denom = 0.0;
    for &t in targets {
        if t != opts.ignore_index {
            denom += w(t as usize);
        }
    }

    let rows = layout.rows();
    let mut row_loss = vec![0.0; rows];
    let mut grad = opts.compute_grad.then(|| vec![0.0; x.len()]);
    let scale = match opts.reduction {
        Reduction::Mean => 1.0 / denom,
        Reduction::None | Reduction::Sum => 1.0,
    };
    for (row, &t) in targets.iter().enumerate() {
        if t == opts.ignore_index {
            continue;
        }
        let t = t as usize;
        let (m, s) = row_stats(&x, &layout, row);
        let lse = m + s.ln();
        let logp = |c: usize| x[layout.element(row, c)] - lse;
        let mut loss = -(1.0 - eps) * w(t) * logp(t);
        if eps != 0.0 {
            let weighted: f64 = (0..classes).map(|c| w(c) * logp(c)).sum();
            loss -= eps / classes as f64 * weighted;
        }
        row_loss[row] = loss;
        if let Some(g) = grad.as_mut() {
            let nll_coef = (1.0 - eps) * w(t) * scale;
            let smooth_coef = eps / classes as f64 * scale;
            for c in 0..classes {
                let i = layout.element(row, c);
                let p = (x[i] - m).exp() / s;
                let onehot = if c == t { 1.0 } else { 0.0 };
                let mut v = nll_coef * (p - onehot);
                if eps != 0.0 {
                    v += smooth_coef * (weight_sum * p - w(c));
                }
                g[i] = v;
            }
        }
    }
    let (loss, loss_dims) = match opts.reduction {
        Reduction::None => (row_loss, layout.target_dims()),
        Reduction::Sum => (vec![row_loss.iter().sum()], Vec::new()),
        Reduction::Mean => (vec![row_loss.iter().sum::<f64>() / denom], Vec::new()),
    };
    Ok(CrossEntropyOutput {
        loss,
        loss_dims,
        grad,
    })
}
