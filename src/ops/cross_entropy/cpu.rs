//! The CPU twin of the cross-entropy family, in f64, with the magnitudes of
//! its terms.

use super::validate;
use crate::core::reference::{log_magnitude, row_stats, widen, Reference, LOG_TERM};
use crate::core::shape::Layout;
use crate::core::Reduction;
use crate::error::Result;
use crate::ops::cross_entropy::options::{CrossEntropyOptions, EmptyMean, InputKind};
use crate::ops::cross_entropy::targets::{Targets, Weights};

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
    /// per-target losses); `None` when not asked for ([`Returns`](crate::Returns);
    /// the CPU twin returns it always).
    pub grad: Option<Vec<T>>,
    /// Each row's log-sum-exp of the logits, in the target's shape, when
    /// asked for (the twin: always, for logits).
    pub lse: Option<Vec<T>>,
    /// Rows whose argmax equals the target (non-ignored rows; for probability
    /// targets, the target's argmax), when asked for (the twin: always).
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
    // Soft-capping acts before everything; the gradient takes its slope below.
    let x: Vec<f64> = match opts.softcap {
        Some(cap) => widen(input)
            .iter()
            .map(|&x| cap * (x / cap).tanh())
            .collect(),
        None => widen(input),
    };
    let slope = |xc: f64| opts.softcap.map_or(1.0, |cap| 1.0 - (xc / cap).powi(2));
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

    let logits = opts.input == InputKind::Logits;
    let mut row_loss = vec![0.0; rows];
    let mut row_mag = vec![0.0; rows];
    let mut lse_out = vec![0.0; rows];
    let mut lse_mag = vec![0.0; rows];
    let mut correct = 0u64;
    // Every output the host call can return: the twin returns them all.
    let mut grad = Some(vec![0.0; x.len()]);
    let mut grad_mag = Some(vec![0.0; x.len()]);
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
        // With a cap, of the capped logits as f32 holds them (saturated ones tie).
        let argmax = match opts.softcap {
            Some(_) => first_argmax((0..classes).map(|c| f64::from(at(c) as f32))),
            None => first_argmax((0..classes).map(at)),
        };
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
                    InputKind::Logits => a * v * slope(at(c)),
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
        lse: logits.then_some(lse_out),
        correct: Some(correct),
        magnitude: Some(CrossEntropyMagnitude {
            loss: loss_mag,
            grad: grad_mag,
            lse: logits.then_some(lse_mag),
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
