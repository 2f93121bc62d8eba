//! The fused linear cross-entropy's f64 CPU twin, with the magnitudes its
//! outputs are held to (see [`Tolerance`](crate::Tolerance)).

use super::bounds::{
    argmax_ties, coop_floor, coop_logit_error, correct_slack, filter_threshold, largest,
    loss_magnitude, product_error, row_weights, tie_floors, Bounds, RowWeight,
};
use super::options::LinearCrossEntropyOptions;
use super::LinearDims;
use crate::core::reference::{flushable, rel, widen};
use crate::error::Result;
use crate::ops::cross_entropy::cpu::{cross_entropy_with, CrossEntropyOutput};
use crate::ops::cross_entropy::cpu_rows::ClassWeights;
use crate::ops::cross_entropy::options::CrossEntropyOptions;
use crate::ops::cross_entropy::targets::{Targets, Weights};

/// The outputs of a fused call: f32 from the GPU, f64 (with magnitudes)
/// from the CPU twin.
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// // h = (1, 0), W = I: logits (1, 0), target 0.
/// let dims = xent::LinearDims { n: 1, h: 2, v: 2 };
/// let w = [1.0f32, 0.0, 0.0, 1.0];
/// let out = xent::cpu::linear_cross_entropy(&[1.0f32, 0.0], &w, None, &[0], None, &dims, &Default::default())?;
/// let p0 = 1.0 / (1.0 + (-1.0f64).exp());
/// assert!((out.loss[0] + p0.ln()).abs() < 1e-12);
/// assert_eq!(out.correct, Some(1));
/// assert!(out.grad_bias.is_none()); // no bias
/// # Ok(()) }
/// ```
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
    /// Each row's predicted class (`torch.argmax` of the logits as the loss
    /// sees them), when asked for (the twin: always).
    pub argmax: Option<Vec<i64>>,
    /// Each row's entropy of its softmax, when asked for (the twin: always).
    pub entropy: Option<Vec<T>>,
    /// The CPU twin's magnitude of every value, in the same layout.
    pub magnitude: Option<LinearMagnitude>,
}

/// The magnitudes of a [`LinearOutput`]'s values (see [`Tolerance`](crate::Tolerance)).
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// let dims = xent::LinearDims { n: 1, h: 2, v: 2 };
/// let w = [1.0f32, 0.0, 0.0, 1.0];
/// let out = xent::cpu::linear_cross_entropy(&[1.0f32, 0.0], &w, None, &[0], None, &dims, &Default::default())?;
/// let m = out.magnitude.unwrap();
/// assert!(m.loss[0] >= out.loss[0].abs());
/// assert_eq!(m.grad_weight.unwrap().len(), 4); // (v, h)
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LinearMagnitude {
    pub loss: Vec<f64>,
    pub grad_hidden: Option<Vec<f64>>,
    pub grad_weight: Option<Vec<f64>>,
    pub grad_bias: Option<Vec<f64>>,
    pub lse: Option<Vec<f64>>,
    /// Of each row's entropy: the cross-entropy's, with the products' error
    /// through `|dH| ≤ (2 + 2·Σ p·|z − m|)·δ`.
    pub entropy: Option<Vec<f64>>,
    /// How far the GPU's count of correct rows may be from the twin's: rows
    /// whose two largest logits are closer than the products' f32 error, so
    /// either may come out on top.
    pub correct_slack: u64,
    /// Rows (in order) whose predicted class may be any of the listed ones,
    /// as near ties (`correct_slack`'s, over every row).
    pub argmax_ties: Vec<(usize, Vec<i64>)>,
    /// Each loss value's flush factor: the sum of the factors that multiply
    /// its f32 inputs and intermediates after a GPU may have flushed them
    /// to zero (see [`Tolerance`](crate::Tolerance)).
    pub loss_flush: Vec<f64>,
    /// Of each `∂L/∂h` element: the logits' gradient's, times `|W|`.
    pub grad_hidden_flush: Option<Vec<f64>>,
    /// Of each `∂L/∂W` element: the logits' gradient's, times `|h|`.
    pub grad_weight_flush: Option<Vec<f64>>,
    /// Of each `∂L/∂b` element.
    pub grad_bias_flush: Option<Vec<f64>>,
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
/// within `2·δ` may have either as argmax: `correct_slack` counts them, and
/// `argmax_ties` lists the classes each such row may predict. Where
/// `opts.filter_eps` filters, every value the GPU may skip adds its
/// products to the magnitudes; where `opts.product_kernel` is a
/// cooperative one, its scaling's floor (each operand value moved by up
/// to 2⁻³⁸ of that operand's largest) widens `δ` and every product's terms
/// ([`ProductKernel::Coop`](crate::ProductKernel::Coop)).
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
    let targets = Targets::I64(targets);
    linear_cross_entropy_with(hidden, weight, bias, targets, class_weights, dims, opts)
}

/// [`linear_cross_entropy`] with any target kind: class indices
/// (`(n)`, i64, i32 or u8) or probabilities `(n, v)` (soft labels, label
/// smoothing applied as [`CrossEntropyOptions`] says), as PyTorch's
/// `F.linear_cross_entropy`. The CPU twin of
/// [`Context::linear_cross_entropy_with`](crate::Context::linear_cross_entropy_with).
///
/// # Errors
/// As [`linear_cross_entropy`], and for probabilities those of
/// [`cross_entropy_with`](crate::cpu::cross_entropy_with) (a negative or NaN
/// one, `ignore_index` set).
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// use xent::Targets;
/// let dims = xent::LinearDims { n: 1, h: 1, v: 2 };
/// // logits [1, −1] against (½, ½): ln(e + e⁻¹) − ½·(1 − 1) = ln(2·cosh 1).
/// let out = xent::cpu::linear_cross_entropy_with(&[1.0f32], &[1.0, -1.0], None,
///     Targets::Probs(&[0.5, 0.5]), None, &dims, &Default::default())?;
/// assert!((out.loss[0] - (2.0 * 1f64.cosh()).ln()).abs() < 1e-15);
/// # Ok(()) }
/// ```
#[allow(clippy::too_many_arguments)]
pub fn linear_cross_entropy_with<T: Copy + Into<f64>>(
    hidden: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    targets: Targets<'_, T>,
    class_weights: Option<&[T]>,
    dims: &LinearDims,
    opts: &LinearCrossEntropyOptions,
) -> Result<LinearOutput<f64>> {
    opts.validate()?;
    let dims = *dims;
    let LinearDims { n, v, .. } = dims;
    super::check_lengths(dims, hidden.len(), weight.len(), bias.map(<[T]>::len))?;
    let (hd, wd) = (widen(hidden), widen(weight));
    let bd = bias.map(widen);
    let (logits, row_mag) = forward(&hd, &wd, bd.as_deref(), dims);
    let cw = class_weights.map(widen);
    let weights = Weights {
        class: cw.as_deref(),
        sample: None,
    };
    let probs = match targets {
        Targets::Probs(y) => Some(widen(y)),
        _ => None,
    };
    let targets: Targets<'_, f64> = match (&probs, targets) {
        (Some(y), _) => Targets::Probs(y),
        (None, Targets::I64(t)) => Targets::I64(t),
        (None, Targets::I32(t)) => Targets::I32(t),
        (None, Targets::U8(t)) => Targets::U8(t),
        (None, Targets::Probs(_)) => unreachable!("probabilities are widened"),
    };
    let ce = cross_entropy_with(&logits, &[n, v], targets, weights, &opts.loss)?;
    let rows = row_weights(&targets, ClassWeights(cw.as_deref()), dims, &opts.loss);
    // The loss sees the logits over the temperature, and their error with them.
    let t = opts.loss.f32_temperature();
    let unit = coop_floor(opts.product_kernel);
    let err: Vec<f64> = product_error(&row_mag, dims.h)
        .iter()
        .zip(coop_logit_error(unit, &hd, &wd, dims))
        .map(|(e, floor)| (e + floor) / t)
        .collect();
    let bounds = Bounds {
        row_mag: &row_mag,
        err: &err,
    };
    let magnitude = magnitudes(&ce, &logits, &rows, bounds, dims, &opts.loss);
    let mag = ce.magnitude.as_ref().expect("the twin reports magnitudes");
    let grads = match (&ce.grad, &mag.grad, &mag.grad_flush) {
        (Some(g), Some(gm), Some(gf)) => {
            let skip = filter_threshold(&rows, opts.filter_eps, opts.loss.reduction);
            let floor = Floor::new(unit, g, &hd, &wd);
            Some(backward([g, gm, gf], (&err, skip, floor), &hd, &wd, dims))
        }
        _ => None,
    };
    Ok(outputs(ce, magnitude, grads, bias.is_some()))
}

/// The magnitudes of the loss and lse (the cross-entropy's, grown by the
/// products' error), the argmax count's slack and the loss's flush factors;
/// the gradients' are filled in by `outputs`.
fn magnitudes(
    ce: &CrossEntropyOutput<f64>,
    logits: &[f64],
    rows: &[Option<RowWeight>],
    bounds: Bounds<'_>,
    dims: LinearDims,
    opts: &CrossEntropyOptions,
) -> LinearMagnitude {
    let mag = ce.magnitude.as_ref().expect("the twin reports magnitudes");
    let lse = mag
        .lse
        .as_ref()
        .map(|l| l.iter().zip(bounds.err).map(|(l, e)| l + e).collect());
    let entropy = mag.entropy.as_ref().map(|h| {
        let grown = h.iter().zip(bounds.err);
        grown.map(|(h, e)| h + (2.0 + 2.0 * h) * e).collect()
    });
    let floors = tie_floors(logits, bounds.err, dims, opts);
    LinearMagnitude {
        loss: loss_magnitude(ce, rows, bounds, dims, opts),
        grad_hidden: None,
        grad_weight: None,
        grad_bias: None,
        lse,
        entropy,
        correct_slack: correct_slack(rows, &floors),
        argmax_ties: argmax_ties(logits, &floors, dims, opts),
        loss_flush: mag.loss_flush.clone(),
        grad_hidden_flush: None,
        grad_weight_flush: None,
        grad_bias_flush: None,
    }
}

/// The fused call's outputs: the cross-entropy's loss, log-sum-exp and
/// count, and the backward products (the bias's only with a bias).
fn outputs(
    ce: CrossEntropyOutput<f64>,
    mut magnitude: LinearMagnitude,
    grads: Option<Backward>,
    has_bias: bool,
) -> LinearOutput<f64> {
    let mut out = LinearOutput {
        loss: ce.loss,
        grad_hidden: None,
        grad_weight: None,
        grad_bias: None,
        lse: ce.lse,
        correct: ce.correct,
        argmax: ce.argmax,
        entropy: ce.entropy,
        magnitude: None,
    };
    if let Some(b) = grads {
        out.grad_hidden = Some(b.dh);
        out.grad_weight = Some(b.dw);
        magnitude.grad_hidden = Some(b.dh_m);
        magnitude.grad_weight = Some(b.dw_m);
        magnitude.grad_hidden_flush = Some(b.dh_f);
        magnitude.grad_weight_flush = Some(b.dw_f);
        if has_bias {
            out.grad_bias = Some(b.db);
            magnitude.grad_bias = Some(b.db_m);
            magnitude.grad_bias_flush = Some(b.db_f);
        }
    }
    out.magnitude = Some(magnitude);
    out
}

/// The logits `h·Wᵀ + b`, `(n, v)`, and each row's largest logit magnitude
/// M_z.
fn forward(hd: &[f64], wd: &[f64], bd: Option<&[f64]>, dims: LinearDims) -> (Vec<f64>, Vec<f64>) {
    let LinearDims { n, h, v } = dims;
    let mut logits = vec![0.0; n * v];
    let mut row_mag = vec![0.0f64; n];
    for r in 0..n {
        let hr = &hd[r * h..(r + 1) * h];
        for c in 0..v {
            let wc = &wd[c * h..(c + 1) * h];
            let b = bd.map_or(0.0, |b| b[c]);
            let (mut z, mut m) = (b, b.abs());
            for (x, w) in hr.iter().zip(wc) {
                z += x * w;
                m += (x * w).abs();
            }
            logits[r * v + c] = z;
            row_mag[r] = row_mag[r].max(m);
        }
    }
    (logits, row_mag)
}

/// The backward products in f64 with their magnitudes.
struct Backward {
    /// `∂L/∂h = g·W`, `(n, h)`.
    dh: Vec<f64>,
    dh_m: Vec<f64>,
    dh_f: Vec<f64>,
    /// `∂L/∂W = gᵀ·h`, `(v, h)`.
    dw: Vec<f64>,
    dw_m: Vec<f64>,
    dw_f: Vec<f64>,
    /// `∂L/∂b = Σ_rows g`, `v`.
    db: Vec<f64>,
    db_m: Vec<f64>,
    db_f: Vec<f64>,
}

/// The cooperative kernels' floor in the gradient products (`coop_floor`:
/// 0 on the scalar kernels), with the largest magnitudes of their operands,
/// in units of the tolerance's `rel`.
#[derive(Clone, Copy)]
struct Floor {
    g: f64,
    h: f64,
    w: f64,
}

impl Floor {
    fn new(unit: f64, g: &[f64], hd: &[f64], wd: &[f64]) -> Self {
        let scale = unit / rel();
        Self {
            g: scale * largest(g),
            h: scale * largest(hd),
            w: scale * largest(wd),
        }
    }
}

/// The products of the logits' gradient `g` (magnitudes `gm`, widened by
/// each row's products' error `err`) with `h` and `W`. Where the GPU's
/// gradient filter may skip a value (within the tolerance of `skip`), its
/// products are added to the magnitudes in units of `rel`: the tolerance
/// then allows for their absence; likewise what the cooperative kernels'
/// scaling may move each term by (`floor`).
fn backward(
    [g, gm, gf]: [&[f64]; 3],
    (err, skip, floor): (&[f64], Option<f64>, Floor),
    hd: &[f64],
    wd: &[f64],
    dims: LinearDims,
) -> Backward {
    let LinearDims { n, h, v } = dims;
    // M_g·(1 + 2·δ/rel) per row: the products' error moves each element by
    // at most 2·δ times its own magnitude.
    let gm: Vec<f64> = gm
        .iter()
        .enumerate()
        .map(|(i, m)| m * (1.0 + 2.0 * err[i / v.max(1)]))
        .collect();
    // Flush factors: the logits' gradient's times |W| (or |h|), |g| where
    // W (or h) is itself subnormal, and each product and partial sum of the
    // V (or N) terms.
    let subnormal = |v: f64| f64::from(u8::from(flushable(v)));
    let (mut dh, mut dh_m) = (vec![0.0; n * h], vec![0.0; n * h]);
    let mut dh_f = vec![2.0 * v as f64; n * h];
    let (mut dw, mut dw_m) = (vec![0.0; v * h], vec![0.0; v * h]);
    let mut dw_f = vec![2.0 * n as f64; v * h];
    let (mut db, mut db_m) = (vec![0.0; v], vec![0.0; v]);
    let mut db_f = vec![2.0 * n as f64; v];
    for r in 0..n {
        for c in 0..v {
            let (gv, mv, fv) = (g[r * v + c], gm[r * v + c], gf[r * v + c]);
            if gv == 0.0 && mv == 0.0 && fv == 0.0 {
                continue;
            }
            db[c] += gv;
            db_m[c] += mv;
            db_f[c] += fv;
            let skipped = skip.is_some_and(|s| gv.abs() - rel() * mv < s);
            let mv = mv + if skipped { gv.abs() / rel() } else { 0.0 };
            for k in 0..h {
                let (x, wv) = (hd[r * h + k], wd[c * h + k]);
                dh[r * h + k] += gv * wv;
                dh_m[r * h + k] += (mv + floor.g) * wv.abs() + gv.abs() * floor.w;
                dh_f[r * h + k] += fv * wv.abs() + gv.abs() * subnormal(wv);
                dw[c * h + k] += gv * x;
                dw_m[c * h + k] += (mv + floor.g) * x.abs() + gv.abs() * floor.h;
                dw_f[c * h + k] += fv * x.abs() + gv.abs() * subnormal(x);
            }
        }
    }
    Backward {
        dh,
        dh_m,
        dh_f,
        dw,
        dw_m,
        dw_f,
        db,
        db_m,
        db_f,
    }
}
