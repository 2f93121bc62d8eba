//! What the fused op's twin adds to the cross-entropy's magnitudes: its
//! logits are computed, not given, so an f32 product's error moves each
//! row's loss and argmax (see `Tolerance`; ARCHITECTURE.md derives it).

use super::LinearDims;
use crate::core::reference::{rel, top_two, F32_UNIT};
use crate::core::Reduction;
use crate::ops::cross_entropy::cpu::CrossEntropyOutput;
use crate::ops::cross_entropy::cpu_rows::{class_weight_total, softcap, ClassWeights};
use crate::ops::cross_entropy::options::CrossEntropyOptions;
use crate::ops::cross_entropy::targets::Targets;
use crate::ops::matmul::buffers::ProductKernel;

/// Each row's bound on its f32 products' error, in units of the tolerance's
/// `rel`.
pub(super) fn product_error(row_mag: &[f64], h: usize) -> Vec<f64> {
    // An f32 product over h terms is off by at most (h + 4)·2⁻²⁴·M_z
    // (recursive summation, the additions of k's slices and of the bias,
    // the store).
    let (rel, unit) = (rel(), F32_UNIT);
    row_mag
        .iter()
        .map(|m| (h as f64 + 4.0) * unit * m / rel)
        .collect()
}

/// A counted row's weight in the mean's denominator `r` (`w[t]` for a class,
/// 1 for probabilities) and `Σ_c w[c]·q[c]` of its smoothed target
/// distribution; `None` for an ignored row.
#[derive(Clone, Copy)]
pub(super) struct RowWeight {
    r: f64,
    q_sum: f64,
}

/// Every row's [`RowWeight`].
pub(super) fn row_weights(
    targets: &Targets<'_, f64>,
    class_w: ClassWeights<'_>,
    dims: LinearDims,
    opts: &CrossEntropyOptions,
) -> Vec<Option<RowWeight>> {
    let LinearDims { n, v, .. } = dims;
    let (eps, v_f) = (opts.label_smoothing, v as f64);
    if let Targets::Probs(y) = targets {
        return (0..n)
            .map(|r| {
                let q = |c: usize| (1.0 - eps) * y[r * v + c] + eps / v_f;
                let q_sum = (0..v).map(|c| class_w.at(c) * q(c)).sum();
                Some(RowWeight { r: 1.0, q_sum })
            })
            .collect();
    }
    let ids = targets
        .class_indices()
        .expect("class indices or probabilities");
    let weight_sum = class_w.sum(v);
    ids.iter()
        .map(|&t| {
            (t != opts.ignore_index).then(|| {
                let wt = class_w.at(t as usize);
                let q_sum = class_weight_total(eps, wt, v_f, weight_sum);
                RowWeight { r: wt, q_sum }
            })
        })
        .collect()
}

/// What the cooperative kernels' scaling may move an operand's value by,
/// as a fraction of the largest magnitude of that operand (`Coop`,
/// `CoopEmulated`; 0 for the scalar kernels): a step's tile is scaled by
/// its largest power of two 2^e, and what lies below 2^(e−32) (bf16) or
/// past 22 bits (f32, split in halves) is rounded to multiples of 2^(e−39)
/// (f16's subnormal step), so a value moves by at most 2^(e−40) or
/// 2^(e−39), and 2^e is at most the operand's largest magnitude. Twice
/// that, 2⁻³⁸: the GPU's window of gradients, the A of two of the products,
/// differs from the twin's within the tolerance. A gradient of 10⁻²⁶ in a
/// tile with one of 1 (a rare class next to a target) is 0 on these kernels.
pub(super) fn coop_floor(kernel: ProductKernel) -> f64 {
    match kernel {
        ProductKernel::Coop | ProductKernel::CoopEmulated => 2f64.powi(-38),
        _ => 0.0,
    }
}

/// The largest magnitude of `values`.
pub(super) fn largest(values: &[f64]) -> f64 {
    values.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// Each row's logits' error from the cooperative floor `unit` (see
/// [`coop_floor`]), in units of the tolerance's `rel`: every term `h·w`
/// moves by `unit·(max|h|·|w| + |h|·max|w|)`, so a row's logits by at most
/// `unit·(max|h|·max_j Σ|W_j| + max|W|·Σ|h_r|)`.
pub(super) fn coop_logit_error(unit: f64, hd: &[f64], wd: &[f64], dims: LinearDims) -> Vec<f64> {
    let h = dims.h.max(1);
    let (h_max, w_max) = (largest(hd), largest(wd));
    let row_sum = |v: &[f64]| v.iter().map(|x| x.abs()).sum::<f64>();
    let w_rows = wd.chunks(h).map(row_sum).fold(0.0, f64::max);
    hd.chunks(h)
        .map(|hr| unit * (h_max * w_rows + w_max * row_sum(hr)) / rel())
        .chain(std::iter::repeat(0.0))
        .take(dims.n)
        .collect()
}

/// The most a value of the logits' gradient may be and still be skipped by
/// the GPU's gradient filter (`filter_eps`): `filter_eps` times the
/// gradient's scale (over the magnitude of the mean's denominator, the
/// counted rows' weights, for a mean), a millionth wider for the f32 denominator the GPU
/// divides by; `None` without a filter.
pub(super) fn filter_threshold(
    rows: &[Option<RowWeight>],
    eps: Option<f64>,
    reduction: Reduction,
) -> Option<f64> {
    let scale = match reduction {
        Reduction::Mean => 1.0 / rows.iter().flatten().map(|w| w.r).sum::<f64>().abs(),
        _ => 1.0,
    };
    // A threshold of 0 skips nothing, whatever the denominator.
    eps.map(|eps| {
        if eps == 0.0 {
            0.0
        } else {
            eps * scale * (1.0 + 1e-6)
        }
    })
}

/// Counted rows that are near ties ([`tie_floors`]): their argmax may differ.
pub(super) fn correct_slack(rows: &[Option<RowWeight>], floors: &[Option<f64>]) -> u64 {
    let near = rows.iter().zip(floors);
    near.filter(|(row, floor)| row.is_some() && floor.is_some())
        .count() as u64
}

/// A logit as the loss sees it: over the temperature, soft-capped.
fn seen(z: f64, opts: &CrossEntropyOptions) -> f64 {
    let t = opts.f32_temperature();
    opts.softcap.map_or(z / t, |c| softcap(z / t, c))
}

/// Each row whose two largest logits, as the loss sees them, are within
/// twice the products' error of each other (with the cap's and the
/// temperature's f32 rounding): the value past which a class may be the
/// kernels' argmax; `None` for the other rows.
pub(super) fn tie_floors(
    logits: &[f64],
    err: &[f64],
    dims: LinearDims,
    opts: &CrossEntropyOptions,
) -> Vec<Option<f64>> {
    let v = dims.v;
    let (rel, unit) = (rel(), F32_UNIT);
    (0..dims.n)
        .map(|r| {
            let row = logits[r * v..(r + 1) * v].iter();
            let top = top_two(row.map(|&z| seen(z, opts)));
            // The cap's f32 rounding near saturation and the division's by
            // the temperature, beside the products'.
            let cap = opts.softcap.map_or(0.0, |c| c * 4.0 * unit);
            let divided = match opts.f32_temperature() == 1.0 {
                true => 0.0,
                false => top[0].abs() * 4.0 * unit,
            };
            let slack = 2.0 * rel * err[r] + cap + divided;
            (v > 1 && top[0] - top[1] <= slack).then_some(top[0] - slack)
        })
        .collect()
}

/// The classes each near tie may predict: those past its floor.
pub(super) fn argmax_ties(
    logits: &[f64],
    floors: &[Option<f64>],
    dims: LinearDims,
    opts: &CrossEntropyOptions,
) -> Vec<(usize, Vec<i64>)> {
    let v = dims.v;
    let tie = |(r, floor): (usize, &Option<f64>)| {
        let floor = (*floor)?;
        let row = &logits[r * v..(r + 1) * v];
        let classes = (0..v).filter(|&c| seen(row[c], opts) >= floor);
        Some((r, classes.map(|c| c as i64).collect()))
    };
    floors.iter().enumerate().filter_map(tie).collect()
}

/// Each row's logit magnitude M_z and its products' error bound.
#[derive(Clone, Copy)]
pub(super) struct Bounds<'a> {
    pub row_mag: &'a [f64],
    pub err: &'a [f64],
}

/// The loss's magnitudes: the cross-entropy's plus each counted row's
/// shift by its products' error, reduced as the loss is.
pub(super) fn loss_magnitude(
    ce: &CrossEntropyOutput<f64>,
    rows: &[Option<RowWeight>],
    bounds: Bounds<'_>,
    dims: LinearDims,
    opts: &CrossEntropyOptions,
) -> Vec<f64> {
    let (row_shift, denom) = row_shifts(ce, rows, bounds, dims, opts);
    let ce_mag = ce.magnitude.as_ref().expect("the twin reports magnitudes");
    let mut loss_mag = ce_mag.loss.clone();
    match opts.reduction {
        Reduction::None => {
            for (m, s) in loss_mag.iter_mut().zip(&row_shift) {
                *m += s;
            }
        }
        Reduction::Sum => loss_mag[0] += row_shift.iter().sum::<f64>(),
        Reduction::Mean if denom != 0.0 => loss_mag[0] += row_shift.iter().sum::<f64>() / denom,
        Reduction::Mean => {}
    }
    loss_mag
}

/// Each counted row's weight in the loss, times twice its products' error
/// (0 for an ignored row), and the mean's denominator `Σ rᵢ`.
fn row_shifts(
    ce: &CrossEntropyOutput<f64>,
    rows: &[Option<RowWeight>],
    bounds: Bounds<'_>,
    dims: LinearDims,
    opts: &CrossEntropyOptions,
) -> (Vec<f64>, f64) {
    let v = dims.v as f64;
    let mut row_shift = vec![0.0; dims.n];
    let mut denom = 0.0;
    for (r, row) in rows.iter().enumerate() {
        let Some(RowWeight { r: weight, q_sum }) = *row else {
            continue;
        };
        denom += weight;
        let lse = ce.lse.as_ref().map_or(0.0, |l| l[r].abs());
        let largest = bounds.row_mag[r] / opts.f32_temperature() + v.ln();
        let coefficient = q_sum + weight * 2.0 * opts.z_loss * lse.max(largest);
        row_shift[r] = coefficient * 2.0 * bounds.err[r];
    }
    (row_shift, denom)
}
