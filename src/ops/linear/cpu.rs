//! The fused linear cross-entropy's f64 CPU twin, with the magnitudes its
//! outputs are held to (see [`Tolerance`](crate::Tolerance)).

use super::options::LinearCrossEntropyOptions;
use super::LinearDims;
use crate::core::reference::widen;
use crate::core::Reduction;
use crate::error::Result;
use crate::ops::cross_entropy::targets::{Targets, Weights};

/// The outputs of a fused call: f32 from the GPU, f64 (with magnitudes)
/// from the CPU twin.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearOutput<T> {
    /// 1 value for `mean` and `sum`, `n` for `none`.
    pub loss: Vec<T>,
    /// `∂L/∂h`, `(n, h)`, when asked for.
    pub grad_hidden: Option<Vec<T>>,
    /// `∂L/∂W`, `(v, h)`, when asked for.
    pub grad_weight: Option<Vec<T>>,
    /// `∂L/∂b`, `v`, when asked for (and there is a bias).
    pub grad_bias: Option<Vec<T>>,
    /// Each row's log-sum-exp of the (capped) logits, when asked for (the
    /// twin: always).
    pub lse: Option<Vec<T>>,
    /// Rows whose argmax is their target, when asked for (the twin: always).
    pub correct: Option<u64>,
    /// The CPU twin's magnitude of every value, in the same layout.
    pub magnitude: Option<LinearMagnitude>,
}

/// The magnitudes of a [`LinearOutput`]'s values (see [`Tolerance`](crate::Tolerance)).
#[derive(Debug, Clone, PartialEq)]
pub struct LinearMagnitude {
    pub loss: Vec<f64>,
    pub grad_hidden: Option<Vec<f64>>,
    pub grad_weight: Option<Vec<f64>>,
    pub grad_bias: Option<Vec<f64>>,
    pub lse: Option<Vec<f64>>,
    /// How far the GPU's count of correct rows may be from the twin's: rows
    /// whose two largest logits are closer than the products' f32 error, so
    /// either may come out on top.
    pub correct_slack: u64,
}

/// The fused linear cross-entropy in f64: `logits = h·Wᵀ + b` formed whole,
/// [`cross_entropy_with`](crate::cpu::cross_entropy_with) over them, and the
/// gradients `∂L/∂h = g·W`, `∂L/∂W = gᵀ·h`, `∂L/∂b = Σ_rows g` of its
/// gradient `g`. `grad_bias` is `None` without a bias; the gradients are
/// always there (the twin returns every output a host call can).
///
/// Magnitudes: a logit's terms have `M_z = Σ_k |h_k·W_k| + |b|`, and an f32
/// product over `h` terms is off by at most `δ = (h + 4)·2⁻²⁴·max_v M_z`
/// per row; through the softmax such an error moves each gradient element by
/// at most `2·δ` times its own magnitude, and each row's loss by as much
/// times its weight. So the gradient's magnitude is `M_g·(1 + 2·δ/rel)` per
/// row (`M_g` the cross-entropy's, `rel` the default tolerance's), the
/// loss's gains `2·δ/rel` times its weight, and each product's output has
/// `Σ M_g'·|operand|` over its terms. Rows whose two largest logits lie
/// within `2·δ` may have either as argmax: `correct_slack` counts them.
///
/// # Errors
/// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) for a slice of another length than its shape
/// needs; the errors of [`cross_entropy_with`](crate::cpu::cross_entropy_with).
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// let dims = xent::LinearDims { n: 1, h: 1, v: 2 };
/// // logits = [1·1, 1·(−1)] = [1, −1], target 0: loss = ln(1 + e⁻²).
/// let out = xent::cpu::linear_cross_entropy(&[1.0f32], &[1.0, -1.0], None, &[0], None, &dims,
///     &Default::default())?;
/// assert!((out.loss[0] - (1.0 + (-2.0f64).exp()).ln()).abs() < 1e-15);
/// # Ok(()) }
/// ```
#[allow(clippy::too_many_arguments)]
pub fn linear_cross_entropy<T: Copy + Into<f64>>(
    hidden: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    targets: &[i64],
    class_weights: Option<&[T]>,
    dims: &LinearDims,
    opts: &LinearCrossEntropyOptions,
) -> Result<LinearOutput<f64>> {
    opts.validate()?;
    let dims = *dims;
    let LinearDims { n, h, v } = dims;
    super::check_lengths(
        dims,
        hidden.len(),
        weight.len(),
        bias.map(<[T]>::len),
        targets.len(),
    )?;
    let (hd, wd) = (widen(hidden), widen(weight));
    let bd = bias.map(widen);
    let mut logits = vec![0.0; n * v];
    // Each row's largest logit magnitude M_z.
    let mut row_mag = vec![0.0f64; n];
    for r in 0..n {
        let hr = &hd[r * h..(r + 1) * h];
        for c in 0..v {
            let wc = &wd[c * h..(c + 1) * h];
            let b = bd.as_ref().map_or(0.0, |b| b[c]);
            let (mut z, mut m) = (b, b.abs());
            for (x, w) in hr.iter().zip(wc) {
                z += x * w;
                m += (x * w).abs();
            }
            logits[r * v + c] = z;
            row_mag[r] = row_mag[r].max(m);
        }
    }
    let cw = class_weights.map(widen);
    let weights = Weights {
        class: cw.as_deref(),
        sample: None,
    };
    let ce = crate::ops::cross_entropy::cpu::cross_entropy_with(
        &logits,
        &[n, v],
        Targets::I64(targets),
        weights,
        &opts.loss,
    )?;
    let mag = ce.magnitude.clone().expect("the twin reports magnitudes");
    // An f32 product over h terms is off by at most (h + 4)·2⁻²⁴·M_z
    // (recursive summation, the additions of k's slices and of the bias,
    // the store): each row's bound, in units of the tolerance's `rel`.
    let rel = crate::core::verify::Tolerance::default().rel;
    let unit = f64::from(f32::EPSILON) / 2.0;
    let err: Vec<f64> = row_mag
        .iter()
        .map(|m| (h as f64 + 4.0) * unit * m / rel)
        .collect();
    // Rows whose two largest (capped) logits are within twice that of each
    // other: their argmax may differ.
    let cap = |z: f64| opts.loss.softcap.map_or(z, |c| c * (z / c).tanh());
    let correct_slack = (0..n)
        .filter(|&r| targets[r] != opts.loss.ignore_index && v > 1)
        .filter(|&r| {
            let mut top = [f64::NEG_INFINITY; 2];
            for &z in &logits[r * v..(r + 1) * v] {
                let z = cap(z);
                if z > top[0] {
                    top = [z, top[0]];
                } else if z > top[1] {
                    top[1] = z;
                }
            }
            // The cap's f32 rounding near saturation, beside the products'.
            let slack = 2.0 * rel * err[r] + opts.loss.softcap.map_or(0.0, |c| c * 4.0 * unit);
            top[0] - top[1] <= slack
        })
        .count() as u64;
    let w = |c: usize| cw.as_ref().map_or(1.0, |w| w[c]);
    let eps = opts.loss.label_smoothing;
    let weight_sum: f64 = (0..v).map(w).sum();
    // Each counted row's weight in the loss, times twice its logit magnitude.
    let mut row_shift = vec![0.0; n];
    let mut denom = 0.0;
    for r in 0..n {
        let t = targets[r];
        if t == opts.loss.ignore_index {
            continue;
        }
        let wt = w(t as usize);
        denom += wt;
        let lse = ce.lse.as_ref().map_or(0.0, |l| l[r].abs());
        let coefficient = (1.0 - eps) * wt
            + eps / v as f64 * weight_sum
            + wt * 2.0 * opts.loss.z_loss * lse.max(row_mag[r] + (v as f64).ln());
        row_shift[r] = coefficient * 2.0 * err[r];
    }
    let mut loss_mag = mag.loss.clone();
    match opts.loss.reduction {
        Reduction::None => {
            for (m, s) in loss_mag.iter_mut().zip(&row_shift) {
                *m += s;
            }
        }
        Reduction::Sum => loss_mag[0] += row_shift.iter().sum::<f64>(),
        Reduction::Mean if denom != 0.0 => loss_mag[0] += row_shift.iter().sum::<f64>() / denom,
        Reduction::Mean => {}
    }
    let lse_mag = mag
        .lse
        .map(|l| l.iter().zip(&err).map(|(l, e)| l + e).collect());
    let mut out = LinearOutput {
        loss: ce.loss,
        grad_hidden: None,
        grad_weight: None,
        grad_bias: None,
        lse: ce.lse,
        correct: ce.correct,
        magnitude: None,
    };
    let mut magnitude = LinearMagnitude {
        loss: loss_mag,
        grad_hidden: None,
        grad_weight: None,
        grad_bias: None,
        lse: lse_mag,
        correct_slack,
    };
    if let (Some(g), Some(gm)) = (ce.grad, mag.grad) {
        let gm: Vec<f64> = gm
            .iter()
            .enumerate()
            .map(|(i, m)| m * (1.0 + 2.0 * err[i / v.max(1)]))
            .collect();
        let (mut dh, mut dh_m) = (vec![0.0; n * h], vec![0.0; n * h]);
        let (mut dw, mut dw_m) = (vec![0.0; v * h], vec![0.0; v * h]);
        let (mut db, mut db_m) = (vec![0.0; v], vec![0.0; v]);
        for r in 0..n {
            for c in 0..v {
                let (gv, mv) = (g[r * v + c], gm[r * v + c]);
                if gv == 0.0 && mv == 0.0 {
                    continue;
                }
                db[c] += gv;
                db_m[c] += mv;
                for k in 0..h {
                    let (x, wv) = (hd[r * h + k], wd[c * h + k]);
                    dh[r * h + k] += gv * wv;
                    dh_m[r * h + k] += mv * wv.abs();
                    dw[c * h + k] += gv * x;
                    dw_m[c * h + k] += mv * x.abs();
                }
            }
        }
        out.grad_hidden = Some(dh);
        out.grad_weight = Some(dw);
        magnitude.grad_hidden = Some(dh_m);
        magnitude.grad_weight = Some(dw_m);
        if bias.is_some() {
            out.grad_bias = Some(db);
            magnitude.grad_bias = Some(db_m);
        }
    }
    out.magnitude = Some(magnitude);
    Ok(out)
}
