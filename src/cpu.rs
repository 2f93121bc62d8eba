//! The CPU twins of every GPU op: max-subtracted, accumulated in f64.
//!
//! These are the reference every GPU result is held against. They take the
//! same inputs as the GPU path (f32, or f64 for finite-difference checks) and
//! return f64. They share the input checks with the GPU path, so bad input
//! gives the same typed [`Error`](crate::Error) on both.

use crate::error::Result;
use crate::options::{CrossEntropyOptions, EmptyMean, InputKind, Reduction};
use crate::shape::Layout;
use crate::targets::{Targets, Weights};
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
    /// ∂loss/∂input in the input's layout (for `none`, of the sum of the
    /// per-target losses); `None` when not asked for.
    pub grad: Option<Vec<T>>,
    /// Each row's log-sum-exp of the logits, in the target's shape, when asked for.
    pub lse: Option<Vec<T>>,
    /// Rows whose argmax equals the target (non-ignored rows; for probability
    /// targets, the target's argmax), when asked for.
    pub correct: Option<u64>,
    /// The magnitudes of the terms each value is made of, which the
    /// [`Tolerance`](crate::Tolerance) scales with (CPU results; `None` on GPU
    /// results).
    pub magnitude: Option<CrossEntropyMagnitude>,
}

/// The magnitude of the terms of each value of a [`CrossEntropyOutput`]: the
/// sum of their absolute values, a logarithm of a sum counting 0.1 more
/// (see [`Tolerance`](crate::Tolerance)). Same lengths as the values.
#[derive(Debug, Clone, PartialEq)]
pub struct CrossEntropyMagnitude {
    /// Of each loss value.
    pub loss: Vec<f64>,
    /// Of each gradient element.
    pub grad: Option<Vec<f64>>,
    /// Of each log-sum-exp.
    pub lse: Option<Vec<f64>>,
}

/// CPU values and the magnitude of the terms each is made of (the sum of
/// their absolute values), which the [`Tolerance`](crate::Tolerance) of a
/// GPU-vs-CPU comparison scales with.
///
/// ```
/// let r = xent::cpu::log_softmax_reference(&[0.0f32, 0.0], &[2]).unwrap();
/// assert!((r.value[0] + std::f64::consts::LN_2).abs() < 1e-15);
/// assert!(r.magnitude[0] > r.value[0].abs()); // ln 2 is a logarithm of a sum
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// The values, in f64.
    pub value: Vec<f64>,
    /// The magnitude of each value's terms (at least |value|).
    pub magnitude: Vec<f64>,
}

/// What a logarithm of an f32 sum adds to its magnitude: the sum's relative
/// error becomes an absolute error of its logarithm (see [`Tolerance`](crate::Tolerance)).
const LOG_TERM: f64 = 0.1;

/// Magnitude of `ln s` for a sum `s`.
fn log_magnitude(s: f64) -> f64 {
    s.ln().abs() + LOG_TERM
}

impl CrossEntropyOutput<f64> {
    /// The loss with its magnitudes (its own size where there are none), for
    /// [`Tolerance::check`](crate::Tolerance::check).
    pub fn loss_reference(&self) -> Reference {
        reference(&self.loss, self.magnitude.as_ref().map(|m| &m.loss[..]))
    }

    /// The gradient with its magnitudes, when there is one.
    pub fn grad_reference(&self) -> Option<Reference> {
        let m = self.magnitude.as_ref().and_then(|m| m.grad.as_deref());
        self.grad.as_deref().map(|g| reference(g, m))
    }

    /// The log-sum-exp with its magnitudes, when there is one.
    pub fn lse_reference(&self) -> Option<Reference> {
        let m = self.magnitude.as_ref().and_then(|m| m.lse.as_deref());
        self.lse.as_deref().map(|l| reference(l, m))
    }
}

fn reference(value: &[f64], magnitude: Option<&[f64]>) -> Reference {
    Reference {
        value: value.to_vec(),
        magnitude: magnitude
            .map_or_else(|| value.iter().map(|v| v.abs()).collect(), <[f64]>::to_vec),
    }
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
    Ok(normalise(x, dims, false)?.value)
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
    Ok(normalise(x, dims, true)?.value)
}

/// [`softmax`] with the magnitude of each value's terms (its own size: a
/// probability is computed without cancellation).
///
/// # Errors
/// As [`softmax`].
///
/// ```
/// let r = xent::cpu::softmax_reference(&[0.0f32, 0.0], &[2]).unwrap();
/// assert_eq!(r.value, r.magnitude);
/// ```
pub fn softmax_reference<T: Copy + Into<f64>>(x: &[T], dims: &[usize]) -> Result<Reference> {
    normalise(x, dims, false)
}

/// [`log_softmax`] with the magnitude of each value's terms:
/// `|x − max| + |ln Σ| + 0.1`.
///
/// # Errors
/// As [`softmax`].
///
/// ```
/// let r = xent::cpu::log_softmax_reference(&[0.0f32, 0.0], &[2]).unwrap();
/// assert!((r.magnitude[0] - (std::f64::consts::LN_2 + 0.1)).abs() < 1e-15);
/// ```
pub fn log_softmax_reference<T: Copy + Into<f64>>(x: &[T], dims: &[usize]) -> Result<Reference> {
    normalise(x, dims, true)
}

fn normalise<T: Copy + Into<f64>>(x: &[T], dims: &[usize], log: bool) -> Result<Reference> {
    let layout = Layout::from_dims(dims)?;
    validate::length("input", dims, layout.len(), x.len())?;
    let x = widen(x);
    let mut y = vec![0.0; x.len()];
    let mut magnitude = vec![0.0; x.len()];
    for row in 0..layout.rows() {
        let (m, s) = row_stats(&x, &layout, row);
        for c in 0..layout.classes {
            let i = layout.element(row, c);
            (y[i], magnitude[i]) = if log {
                ((x[i] - m) - s.ln(), (x[i] - m).abs() + log_magnitude(s))
            } else {
                let p = (x[i] - m).exp() / s;
                (p, p.abs())
            };
        }
    }
    Ok(Reference {
        value: y,
        magnitude,
    })
}

/// The backward of softmax: given the forward output `y` and the upstream
/// gradient `dy`, `dx = y ⊙ (dy − Σ_c dy_c·y_c)` per row (the vector-Jacobian
/// product with `diag(y) − y yᵀ`).
///
/// # Errors
/// As [`softmax`], for both inputs.
///
/// ```
/// let dx = xent::cpu::softmax_backward(&[0.5f32, 0.5], &[1.0, 0.0], &[2]).unwrap();
/// assert_eq!(dx, vec![0.25, -0.25]);
/// ```
pub fn softmax_backward<T: Copy + Into<f64>>(
    y: &[T],
    dy: &[T],
    dims: &[usize],
) -> Result<Vec<f64>> {
    Ok(softmax_backward_reference(y, dy, dims)?.value)
}

/// [`softmax_backward`] with the magnitude of each value's terms:
/// `|y|·(|dy| + Σ_c |dy_c·y_c|)`.
///
/// # Errors
/// As [`softmax`], for both inputs.
///
/// ```
/// let r = xent::cpu::softmax_backward_reference(&[0.5f32, 0.5], &[1.0, 1.0], &[2]).unwrap();
/// assert_eq!((r.value[0], r.magnitude[0]), (0.0, 1.0));
/// ```
pub fn softmax_backward_reference<T: Copy + Into<f64>>(
    y: &[T],
    dy: &[T],
    dims: &[usize],
) -> Result<Reference> {
    backward(
        y,
        dy,
        dims,
        |y, dy, total| y * (dy - total),
        |y, dy| y * dy,
        |y, dy, total| y.abs() * (dy.abs() + total),
    )
}

/// The backward of log-softmax: given the forward output `y` (log-probabilities)
/// and `dy`, `dx = dy − exp(y)·Σ_c dy_c` per row.
///
/// # Errors
/// As [`softmax`], for both inputs.
///
/// ```
/// let half = 0.5f64.ln();
/// let dx = xent::cpu::log_softmax_backward(&[half, half], &[1.0, 0.0], &[2]).unwrap();
/// assert!((dx[0] - 0.5).abs() < 1e-15 && (dx[1] + 0.5).abs() < 1e-15);
/// ```
pub fn log_softmax_backward<T: Copy + Into<f64>>(
    y: &[T],
    dy: &[T],
    dims: &[usize],
) -> Result<Vec<f64>> {
    Ok(log_softmax_backward_reference(y, dy, dims)?.value)
}

/// [`log_softmax_backward`] with the magnitude of each value's terms:
/// `|dy| + exp(y)·Σ_c |dy_c|`.
///
/// # Errors
/// As [`softmax`], for both inputs.
///
/// ```
/// let half = 0.5f64.ln();
/// let r = xent::cpu::log_softmax_backward_reference(&[half, half], &[1.0, 1.0], &[2]).unwrap();
/// assert!(r.value[0].abs() < 1e-15 && (r.magnitude[0] - 2.0).abs() < 1e-15);
/// ```
pub fn log_softmax_backward_reference<T: Copy + Into<f64>>(
    y: &[T],
    dy: &[T],
    dims: &[usize],
) -> Result<Reference> {
    backward(
        y,
        dy,
        dims,
        |y, dy, total| dy - y.exp() * total,
        |_, dy| dy,
        |y, dy, total| dy.abs() + y.exp() * total,
    )
}

/// `value(y, dy, Σ term)` per element, and `magnitude(y, dy, Σ |term|)`.
fn backward<T: Copy + Into<f64>>(
    y: &[T],
    dy: &[T],
    dims: &[usize],
    value: impl Fn(f64, f64, f64) -> f64,
    term: impl Fn(f64, f64) -> f64,
    magnitude: impl Fn(f64, f64, f64) -> f64,
) -> Result<Reference> {
    let layout = Layout::from_dims(dims)?;
    validate::length("output", dims, layout.len(), y.len())?;
    validate::length("grad_output", dims, layout.len(), dy.len())?;
    let (y, dy) = (widen(y), widen(dy));
    let mut dx = vec![0.0; y.len()];
    let mut mag = vec![0.0; y.len()];
    for row in 0..layout.rows() {
        let idx = |c| layout.element(row, c);
        let terms = || (0..layout.classes).map(|c| term(y[idx(c)], dy[idx(c)]));
        let total: f64 = terms().sum();
        let abs_total: f64 = terms().map(f64::abs).sum();
        for c in 0..layout.classes {
            dx[idx(c)] = value(y[idx(c)], dy[idx(c)], total);
            mag[idx(c)] = magnitude(y[idx(c)], dy[idx(c)], abs_total).max(dx[idx(c)].abs());
        }
    }
    Ok(Reference {
        value: dx,
        magnitude: mag,
    })
}

/// Largest class count [`softmax_jacobian`] builds (a C × C matrix).
pub const MAX_JACOBIAN_CLASSES: usize = 4096;

/// The full Jacobian of softmax for one row of probabilities `y`:
/// `J = diag(y) − y yᵀ`, `J[i][j] = ∂y_i/∂x_j`. For small C (at most
/// [`MAX_JACOBIAN_CLASSES`]); use [`softmax_backward`] for products with it.
///
/// # Errors
/// [`Error::InvalidShape`](crate::Error::InvalidShape) for an empty row or more
/// than [`MAX_JACOBIAN_CLASSES`] classes.
///
/// ```
/// let j = xent::cpu::softmax_jacobian(&[0.5f64, 0.5]).unwrap();
/// assert_eq!(j, vec![vec![0.25, -0.25], vec![-0.25, 0.25]]);
/// ```
pub fn softmax_jacobian<T: Copy + Into<f64>>(y: &[T]) -> Result<Vec<Vec<f64>>> {
    if y.is_empty() || y.len() > MAX_JACOBIAN_CLASSES {
        return Err(crate::Error::InvalidShape {
            shape: vec![y.len()],
            reason: format!("the Jacobian is built for 1 to {MAX_JACOBIAN_CLASSES} classes"),
        });
    }
    let y = widen(y);
    Ok((0..y.len())
        .map(|i| {
            (0..y.len())
                .map(|j| {
                    if i == j {
                        y[i] - y[i] * y[j]
                    } else {
                        -y[i] * y[j]
                    }
                })
                .collect()
        })
        .collect())
}

/// Softmax cross-entropy with class-index targets, as PyTorch's `F.cross_entropy`.
///
/// `logits` has shape `dims` = `(C)`, `(N, C)` or `(N, C, d1, …, dK)`;
/// `targets` has the same shape without the class axis; `weights`, if given,
/// has length C. The formulas are those of [`CrossEntropyOptions`]. This is
/// [`cross_entropy_with`] for i64 class indices and class weights only.
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
    cross_entropy_with(
        logits,
        dims,
        Targets::I64(targets),
        Weights {
            class: weights,
            sample: None,
        },
        opts,
    )
}

/// Cross-entropy with probability targets of the input's shape (soft labels;
/// one-hot is a special case), as PyTorch's `F.cross_entropy` with float targets.
///
/// # Errors
/// As [`cross_entropy_with`].
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// let out = xent::cpu::cross_entropy_soft(&[0.0f32, 0.0], &[1, 2], &[0.5, 0.5], None, &Default::default())?;
/// assert!((out.scalar().unwrap() - std::f64::consts::LN_2).abs() < 1e-12);
/// # Ok(()) }
/// ```
pub fn cross_entropy_soft<T: Copy + Into<f64>>(
    input: &[T],
    dims: &[usize],
    probs: &[T],
    weights: Option<&[T]>,
    opts: &CrossEntropyOptions,
) -> Result<CrossEntropyOutput<f64>> {
    cross_entropy_with(
        input,
        dims,
        Targets::Probs(probs),
        Weights {
            class: weights,
            sample: None,
        },
        opts,
    )
}

/// The whole loss family on the CPU: any target kind, class and sample
/// weights, every option of [`CrossEntropyOptions`] (input kinds, z-loss,
/// log-sum-exp, argmax count). The CPU twin of
/// [`Context::cross_entropy_with`](crate::Context::cross_entropy_with).
///
/// # Errors
/// [`Error::InvalidShape`](crate::Error::InvalidShape),
/// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) (targets, sample
/// weights), [`Error::WeightsLength`](crate::Error::WeightsLength),
/// [`Error::InvalidOption`](crate::Error::InvalidOption),
/// [`Error::TargetOutOfRange`](crate::Error::TargetOutOfRange),
/// [`Error::InvalidProbability`](crate::Error::InvalidProbability).
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// use xent::{cpu, CrossEntropyOptions, InputKind, Targets, Weights};
/// // NLL of log-probabilities: -(-0.5) = 0.5.
/// let opts = CrossEntropyOptions { input: InputKind::LogProbs, ..Default::default() };
/// let out = cpu::cross_entropy_with(&[-0.5f64, -1.0], &[2], Targets::U8(&[0]), Weights::none(), &opts)?;
/// assert_eq!(out.loss, vec![0.5]);
/// # Ok(()) }
/// ```
pub fn cross_entropy_with<T: Copy + Into<f64>>(
    input: &[T],
    dims: &[usize],
    targets: Targets<'_, T>,
    weights: Weights<'_, T>,
    opts: &CrossEntropyOptions,
) -> Result<CrossEntropyOutput<f64>> {
    let layout = Layout::from_dims(dims)?;
    let class_w = weights.class.map(widen);
    let sample_w = weights.sample.map(widen);
    validate::inputs(
        &layout,
        input.len(),
        &targets,
        class_w.as_deref(),
        sample_w.as_deref(),
        opts,
    )?;
    if let Some(t) = targets.class_indices() {
        validate::target_range(&layout, &t, opts.ignore_index)?;
    }
    let x = widen(input);
    let classes = layout.classes;
    let c_f = classes as f64;
    let w = |c: usize| class_w.as_ref().map_or(1.0, |w| w[c]);
    let sw = |row: usize| sample_w.as_ref().map_or(1.0, |s| s[row]);
    let weight_sum: f64 = (0..classes).map(w).sum();
    let eps = opts.label_smoothing;
    let z = opts.z_loss;

    // Targets as either a class per row (None = ignored) or probabilities.
    let class_of: Option<Vec<Option<usize>>> = targets.class_indices().map(|t| {
        t.iter()
            .map(|&t| (t != opts.ignore_index).then_some(t as usize))
            .collect()
    });
    let probs: Option<Vec<f64>> = match targets {
        Targets::Probs(y) => Some(widen(y)),
        _ => None,
    };
    let rows = layout.rows();
    let denom: f64 = match &class_of {
        Some(ts) => ts
            .iter()
            .enumerate()
            .filter_map(|(row, t)| t.map(|t| sw(row) * w(t)))
            .sum(),
        None => rows as f64,
    };
    // A zero denominator: 0 with EmptyMean::Zero; NaN for logits (PyTorch's
    // nll term is 0 / 0 and the softmax's backward spreads it over the row);
    // 1 / 0 otherwise, which meets the structural zeros below.
    let scale = match (opts.reduction, opts.empty_mean, opts.input) {
        (Reduction::Mean, EmptyMean::Zero, _) if denom == 0.0 => 0.0,
        (Reduction::Mean, EmptyMean::Nan, InputKind::Logits) if denom == 0.0 => f64::NAN,
        (Reduction::Mean, ..) => 1.0 / denom,
        (Reduction::None | Reduction::Sum, ..) => 1.0,
    };

    let mut row_loss = vec![0.0; rows];
    let mut row_mag = vec![0.0; rows];
    let mut lse_out = vec![0.0; rows];
    let mut lse_mag = vec![0.0; rows];
    let mut correct = 0u64;
    let mut grad = opts.compute_grad.then(|| vec![0.0; x.len()]);
    let mut grad_mag = opts.compute_grad.then(|| vec![0.0; x.len()]);
    for row in 0..rows {
        let at = |c: usize| x[layout.element(row, c)];
        let (m, s) = row_stats(&x, &layout, row);
        // log-sum-exp of an all -inf row is -inf (as torch.logsumexp), not
        // the NaN of -inf + ln(NaN); a row with a NaN stays NaN (`row_stats`'
        // max skips NaN, so m alone cannot tell).
        let lse = if m == f64::NEG_INFINITY && !(0..classes).any(|c| at(c).is_nan()) {
            f64::NEG_INFINITY
        } else {
            m + s.ln()
        };
        lse_out[row] = lse;
        lse_mag[row] = m.abs() + log_magnitude(s);
        let argmax = first_argmax((0..classes).map(at));
        let logp = |c: usize| match opts.input {
            InputKind::Logits => (at(c) - m) - s.ln(),
            InputKind::LogProbs => at(c),
            InputKind::Probs => at(c).ln(),
        };
        // The magnitude of logp's terms (see `Tolerance`).
        let logp_mag = |c: usize| match opts.input {
            InputKind::Logits => (at(c) - m).abs() + log_magnitude(s),
            InputKind::LogProbs => at(c).abs(),
            InputKind::Probs => at(c).ln().abs() + LOG_TERM,
        };
        // q: the target distribution; r: the row weight of the z-loss.
        let (q, r, q_sum, loss, loss_mag): RowTerms<'_> = match (&class_of, &probs) {
            (Some(ts), _) => {
                let Some(t) = ts[row] else { continue };
                if argmax == Some(t) {
                    correct += 1;
                }
                let mut loss = -(1.0 - eps) * w(t) * logp(t);
                let mut loss_mag = ((1.0 - eps) * w(t)).abs() * logp_mag(t);
                if eps != 0.0 {
                    loss -= eps / c_f * (0..classes).map(|c| w(c) * logp(c)).sum::<f64>();
                    loss_mag +=
                        eps / c_f * (0..classes).map(|c| w(c).abs() * logp_mag(c)).sum::<f64>();
                }
                let q = move |c: usize| (1.0 - eps) * f64::from(u8::from(c == t)) + eps / c_f;
                (
                    Box::new(q),
                    w(t),
                    (1.0 - eps) * w(t) + eps / c_f * weight_sum,
                    loss,
                    loss_mag,
                )
            }
            (None, Some(y)) => {
                let y_at = |c: usize| y[layout.element(row, c)];
                if argmax == first_argmax((0..classes).map(y_at)) {
                    correct += 1;
                }
                let y_row: Vec<f64> = (0..classes).map(y_at).collect();
                let q = move |c: usize| y_row[c] * (1.0 - eps) + eps / c_f;
                let q_sum = (0..classes).map(|c| w(c) * q(c)).sum();
                let loss = -(0..classes).map(|c| w(c) * q(c) * logp(c)).sum::<f64>();
                let loss_mag = (0..classes)
                    .map(|c| (w(c) * q(c)).abs() * logp_mag(c))
                    .sum::<f64>();
                (Box::new(q), 1.0, q_sum, loss, loss_mag)
            }
            (None, None) => unreachable!("targets are class indices or probabilities"),
        };
        row_loss[row] = sw(row) * (loss + r * z * lse * lse);
        row_mag[row] = (sw(row).abs() * (loss_mag + (r * z).abs() * lse_mag[row].powi(2)))
            .max(row_loss[row].abs());
        if let (Some(g), Some(gm)) = (grad.as_mut(), grad_mag.as_mut()) {
            let a = scale * sw(row);
            for c in 0..classes {
                let wq = w(c) * q(c);
                let (v, mag) = match opts.input {
                    InputKind::Logits => {
                        let p = (at(c) - m).exp() / s;
                        let zp = r * 2.0 * z * p;
                        (
                            p * q_sum - wq + zp * lse,
                            p * q_sum.abs() + wq.abs() + zp.abs() * lse_mag[row],
                        )
                    }
                    InputKind::LogProbs | InputKind::Probs => (-wq, wq.abs()),
                };
                let i = layout.element(row, c);
                g[i] = match opts.input {
                    InputKind::Logits => a * v,
                    // PyTorch's nll_loss writes only where q > 0: the others
                    // stay 0 whatever the scale (inf for a zero denominator).
                    InputKind::LogProbs if q(c) == 0.0 => 0.0,
                    InputKind::LogProbs => a * v,
                    // Divided by x after: NaN where x is 0 or NaN, as torch.log's backward.
                    InputKind::Probs if q(c) == 0.0 => 0.0 / at(c),
                    InputKind::Probs => a * v / at(c),
                };
                let mag = match opts.input {
                    InputKind::Probs => mag / at(c).abs(),
                    _ => mag,
                };
                gm[i] = (a.abs() * mag).max(g[i].abs());
            }
        }
    }
    let reduced = |total: f64| match (opts.reduction, opts.empty_mean) {
        (Reduction::Mean, EmptyMean::Zero) if denom == 0.0 => 0.0,
        // NaN even when smoothing makes the numerator positive: PyTorch's nll
        // term is 0 / 0.
        (Reduction::Mean, EmptyMean::Nan) if denom == 0.0 => f64::NAN,
        (Reduction::Mean, _) => total / denom,
        _ => total,
    };
    let (loss, loss_mag, loss_dims) = match opts.reduction {
        Reduction::None => (row_loss, row_mag, layout.target_dims()),
        _ => {
            let loss = reduced(row_loss.iter().sum());
            let mag = reduced(row_mag.iter().sum()).abs().max(loss.abs());
            (vec![loss], vec![mag], Vec::new())
        }
    };
    Ok(CrossEntropyOutput {
        loss,
        loss_dims,
        grad,
        lse: opts.return_lse.then_some(lse_out),
        correct: opts.count_correct.then_some(correct),
        magnitude: Some(CrossEntropyMagnitude {
            loss: loss_mag,
            grad: grad_mag,
            lse: opts.return_lse.then_some(lse_mag),
        }),
    })
}

/// A row's target distribution q, z-loss row weight r, Σ w·q, loss and the
/// loss's magnitude.
type RowTerms<'a> = (Box<dyn Fn(usize) -> f64 + 'a>, f64, f64, f64, f64);

/// Index of the first largest value that is not NaN, as `torch.argmax` on
/// rows without NaN (an all −∞ row gives 0); `None` for an all-NaN row. The
/// GPU kernels follow the same rule.
fn first_argmax(values: impl Iterator<Item = f64>) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, v) in values.enumerate() {
        if !v.is_nan() && best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}
