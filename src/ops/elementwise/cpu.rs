//! The f64 twin of the elementwise losses, with the magnitude of each
//! value's terms (see [`Tolerance`](crate::Tolerance)).

use super::options::{ElementwiseLoss, ElementwiseOptions, LossWeights, WeightShape};
use super::validate::{self, Elements};
use crate::core::Reduction;
use crate::error::Result;

/// The result of an elementwise loss call, on the GPU (`T = f32`) or on the
/// CPU (`T = f64`, with magnitudes).
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// use xent::{ElementwiseLoss, ElementwiseOptions};
/// let opts = ElementwiseOptions::new(ElementwiseLoss::Mse);
/// let out = xent::cpu::elementwise_loss(&[1.0, 3.0], &[0.0, 0.0], &[2], Default::default(), &opts)?;
/// assert_eq!(out.loss, vec![5.0]); // (1 + 9) / 2
/// assert_eq!(out.grad, Some(vec![1.0, 3.0])); // 2 (x − y) / 2
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ElementwiseOutput<T> {
    /// One value for `mean` and `sum`; one per element, in the input's shape, for `none`.
    pub loss: Vec<T>,
    /// The shape of `loss`: `[]` for `mean` and `sum`, the input's for `none`.
    pub loss_dims: Vec<usize>,
    /// ∂loss/∂input in the input's shape (for `none`, of the sum of the
    /// elements' losses); `None` when not asked for.
    pub grad: Option<Vec<T>>,
    /// The magnitudes of the terms each value is made of (CPU results; `None` on GPU results).
    pub magnitude: Option<ElementwiseMagnitude>,
}

impl<T: Copy> ElementwiseOutput<T> {
    /// The reduced loss (`mean`, `sum`), or `None` for `none`.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use xent::{ElementwiseLoss, ElementwiseOptions, Reduction};
    /// let mut opts = ElementwiseOptions::new(ElementwiseLoss::L1);
    /// opts.reduction = Reduction::Sum;
    /// let out = xent::cpu::elementwise_loss(&[1.0, -3.0], &[0.0, 0.0], &[2], Default::default(), &opts)?;
    /// assert_eq!(out.scalar(), Some(4.0));
    /// # Ok(()) }
    /// ```
    pub fn scalar(&self) -> Option<T> {
        self.loss_dims.is_empty().then(|| self.loss[0])
    }
}

/// The magnitude of the terms of each value of an [`ElementwiseOutput`]:
/// the sum of their absolute values. Same lengths as the values.
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// use xent::{ElementwiseLoss, ElementwiseOptions};
/// let opts = ElementwiseOptions::new(ElementwiseLoss::Mse);
/// let out = xent::cpu::elementwise_loss(&[1.0, 3.0], &[0.0, 0.0], &[2], Default::default(), &opts)?;
/// let m = out.magnitude.unwrap();
/// assert!(m.loss[0] >= out.loss[0].abs());
/// assert_eq!(m.grad.unwrap().len(), 2);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ElementwiseMagnitude {
    /// Of each loss value.
    pub loss: Vec<f64>,
    /// Of each gradient element, when there is a gradient.
    pub grad: Option<Vec<f64>>,
    /// Each loss value's flush factor: the sum of the factors that multiply
    /// its f32 inputs and intermediates after a GPU may have flushed them
    /// to zero (see [`Tolerance`](crate::Tolerance)).
    pub loss_flush: Vec<f64>,
    /// Each gradient element's flush factor, when there is a gradient.
    pub grad_flush: Option<Vec<f64>>,
}

/// An elementwise loss on the CPU in f64, the reference the GPU is held to.
/// Same arguments and errors as
/// [`Context::elementwise_loss`](crate::Context::elementwise_loss).
///
/// # Errors
/// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) for an input or
/// target of another length, [`Error::WeightShape`](crate::Error::WeightShape),
/// [`Error::InvalidOption`](crate::Error::InvalidOption) for a bad `beta` or
/// `delta` or a weight the loss does not take,
/// [`Error::InputOutOfRange`](crate::Error::InputOutOfRange) for a `Bce`
/// input outside [0, 1].
///
/// ```
/// use xent::{cpu, ElementwiseLoss, ElementwiseOptions};
/// let out = cpu::elementwise_loss(&[1.0, 3.0], &[0.0, 0.0], &[2],
///     Default::default(), &ElementwiseOptions::new(ElementwiseLoss::Mse))?;
/// assert_eq!(out.loss, vec![5.0]);
/// assert_eq!(out.grad, Some(vec![1.0, 3.0]));
/// # Ok::<(), xent::Error>(())
/// ```
pub fn elementwise_loss(
    input: &[f32],
    target: &[f32],
    dims: &[usize],
    weights: LossWeights<'_>,
    options: &ElementwiseOptions,
) -> Result<ElementwiseOutput<f64>> {
    let loss = options.loss;
    let (shape, weight_shape) = validate::slices(loss, dims, input, target, weights)?;
    validate::input_range(loss, &shape, input, target)?;
    let weight_at = |i: usize| match (weights.weight, weight_shape) {
        (Some(w), Some(WeightShape::LastAxis)) => f64::from(w[shape.along_last(i)]),
        (Some(w), _) => f64::from(w[i]),
        _ => 1.0,
    };
    let pos_weight_at = |i: usize| {
        weights
            .pos_weight
            .map_or(1.0, |pw| f64::from(pw[shape.along_last(i)]))
    };
    let mut values = Vec::with_capacity(shape.len);
    // The gradient always: the twin returns every output a host call can.
    let mut grads = Vec::with_capacity(shape.len);
    for i in 0..shape.len {
        let p = point(
            loss,
            f64::from(input[i]),
            f64::from(target[i]),
            pos_weight_at(i),
        );
        let w = weight_at(i);
        // The weight's product may be flushed too.
        values.push(Value {
            value: w * p.loss,
            terms: w.abs() * p.loss_terms,
            flush: w.abs() * p.loss_flush + 1.0,
        });
        grads.push(Value {
            value: w * p.grad,
            terms: w.abs() * p.grad_terms,
            flush: w.abs() * p.grad_flush + 1.0,
        });
    }
    Ok(reduce(&shape, values, grads, options))
}

/// A value with the magnitude of its terms and its flush factor.
#[derive(Clone, Copy)]
struct Value {
    value: f64,
    terms: f64,
    flush: f64,
}

/// One element's loss and gradient, each with the magnitude of its terms
/// and its flush factor: the factors that multiply x, y, d = x − y and each
/// intermediate after a GPU may have flushed them (see `Tolerance`). No
/// flush changes a result's kind: the kernels take L1's sign from the
/// inputs' bits and BCE's logarithm of a subnormal probability as it is.
struct Point {
    loss: f64,
    loss_terms: f64,
    loss_flush: f64,
    grad: f64,
    grad_terms: f64,
    grad_flush: f64,
}

fn point(loss: ElementwiseLoss, x: f64, y: f64, pw: f64) -> Point {
    // x and y are f32 values, so the GPU's x − y is d correctly rounded: its
    // error is relative to |d| itself, and so are the magnitudes below.
    let d = x - y;
    let z = d.abs();
    match loss {
        ElementwiseLoss::BceWithLogits => bce_with_logits(x, y, pw),
        ElementwiseLoss::Bce => bce(x, y, d, z),
        ElementwiseLoss::Mse => Point {
            loss: d * d,
            loss_terms: d * d,
            // x, y and d each move d², by 2|d|; the square itself.
            loss_flush: 6.0 * z + 1.0,
            grad: 2.0 * d,
            grad_terms: 2.0 * z,
            grad_flush: 7.0,
        },
        ElementwiseLoss::L1 => l1(x, y, z),
        // β = 0 is L1 (PyTorch's smooth_l1_loss calls l1_loss for it).
        ElementwiseLoss::SmoothL1 { beta } if beta as f32 == 0.0 => l1(x, y, z),
        ElementwiseLoss::SmoothL1 { beta } => smooth_l1(d, z, f64::from(beta as f32)),
        ElementwiseLoss::Huber { delta } => huber(d, z, f64::from(delta as f32)),
    }
}

/// `BceWithLogits` at logit `x`, target `y`, positive weight `pw`.
fn bce_with_logits(x: f64, y: f64, pw: f64) -> Point {
    let tail = (-x.abs()).exp().ln_1p();
    let softplus = |v: f64| v.max(0.0) + tail;
    let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
    let (pos, neg) = (pw * y * softplus(-x), (1.0 - y) * softplus(x));
    // The terms of the GPU's form: lw·σ(x) − pw·y for x < 0,
    // (1 − y) − lw·σ(−x) for x ≥ 0, with lw = pw·y + 1 − y.
    let lw = pw * y + (1.0 - y);
    let (a, b) = if x >= 0.0 {
        (1.0 - y, lw * sigmoid(-x))
    } else {
        (lw * sigmoid(x), pw * y)
    };
    // PyTorch's (1 − y)·x − lw·log σ(x) is −∞ + ∞ at x = −∞: NaN for every
    // target (the limit is +∞ for y > 0; README's differences say why xent
    // follows PyTorch).
    let loss = if x == f64::NEG_INFINITY {
        f64::NAN
    } else {
        pos + neg
    };
    // A flushed tail e^−|x| (or its log1p) moves both softplus terms; a
    // flushed y moves them by their softplus; σ, y and lw move the gradient.
    let loss_flush = 2.0 * (pw * y).abs()
        + 2.0 * (1.0 - y).abs()
        + (pw * softplus(-x)).abs()
        + softplus(x).abs()
        + 4.0;
    Point {
        loss,
        loss_terms: pos.abs() + neg.abs(),
        loss_flush,
        grad: a - b,
        grad_terms: a.abs() + b.abs(),
        grad_flush: 2.0 * lw.abs() + pw.abs() + (pw - 1.0).abs() + 4.0,
    }
}

/// `Bce` at probability `x`, target `y`, `d = x − y`, `z = |d|`.
fn bce(x: f64, y: f64, d: f64, z: f64) -> Point {
    let lx = x.ln().max(-100.0);
    let l1x = (-x).ln_1p().max(-100.0);
    let (a, b) = (y * lx, (1.0 - y) * l1x);
    // PyTorch clamps at the f32 1e-12 (ATen's `EPSILON`), in f64 too.
    let den = (x * (1.0 - x)).max(f64::from(1e-12f32));
    Point {
        loss: -(a + b),
        loss_terms: a.abs() + b.abs(),
        // A flushed y moves the loss by both logs; the products and sum.
        loss_flush: lx.abs() + l1x.abs() + 3.0,
        grad: d / den,
        grad_terms: z / den,
        grad_flush: 3.0 / den + 1.0,
    }
}

/// `L1` at `x`, `y`, `z = |x − y|`.
fn l1(x: f64, y: f64, z: f64) -> Point {
    // L1's sign, 0 where x = y and where either is NaN (PyTorch's sgn).
    let sign = if x > y {
        1.0
    } else if x < y {
        -1.0
    } else {
        0.0
    };
    Point {
        loss: z,
        loss_terms: z,
        loss_flush: 3.0,
        grad: sign,
        grad_terms: sign.abs(),
        grad_flush: 0.0,
    }
}

/// `SmoothL1` with `beta` > 0 (as the kernels' f32) at `d`, `z = |d|`.
fn smooth_l1(d: f64, z: f64, beta: f64) -> Point {
    let (loss, loss_terms, loss_flush) = if z < beta {
        let q = 0.5 * d * d / beta;
        (q, q, (3.0 * z + 0.5) / beta + 2.0)
    } else {
        (z - 0.5 * beta, z + 0.5 * beta, 3.0)
    };
    let grad = clip(d, beta, d / beta, 1.0);
    Point {
        loss,
        loss_terms,
        loss_flush,
        grad,
        grad_terms: grad.abs(),
        grad_flush: if z < beta { 3.0 / beta + 1.0 } else { 0.0 },
    }
}

/// `Huber` with `delta` (as the kernels' f32) at `d`, `z = |d|`.
fn huber(d: f64, z: f64, delta: f64) -> Point {
    let (loss, loss_terms, loss_flush) = if z < delta {
        (0.5 * d * d, 0.5 * d * d, 3.0 * z + 2.5)
    } else {
        let (v, m) = (delta * (z - 0.5 * delta), delta * (z + 0.5 * delta));
        (v, m, 3.0 * delta + 1.0)
    };
    let grad = clip(d, delta, d, delta);
    Point {
        loss,
        loss_terms,
        loss_flush,
        grad,
        grad_terms: grad.abs(),
        grad_flush: if z < delta { 4.0 } else { 0.0 },
    }
}

/// The gradient of a loss quadratic for |d| ≤ `knee` and linear with slope
/// `slope` past it, as PyTorch's backward computes it: `d > knee ? slope :
/// (d < −knee ? −slope : inner)`, so a NaN d gives the inner NaN.
fn clip(d: f64, knee: f64, inner: f64, slope: f64) -> f64 {
    if d > knee {
        slope
    } else if d < -knee {
        -slope
    } else {
        inner
    }
}

/// The elements' values reduced (a sum's terms and partial sums may each be
/// flushed too), the gradient divided by the mean's count.
fn reduce(
    shape: &Elements,
    values: Vec<Value>,
    grads: Vec<Value>,
    options: &ElementwiseOptions,
) -> ElementwiseOutput<f64> {
    let n = shape.len as f64;
    let scale = if options.reduction == Reduction::Mean {
        n
    } else {
        1.0
    };
    let (loss, loss_dims) = match options.reduction {
        Reduction::None => (values, shape.dims.clone()),
        Reduction::Sum | Reduction::Mean => {
            let total = values.iter().fold(
                Value {
                    value: 0.0,
                    terms: 0.0,
                    flush: n,
                },
                |t, v| Value {
                    value: t.value + v.value,
                    terms: t.terms + v.terms,
                    flush: t.flush + v.flush,
                },
            );
            // The mean of nothing is NaN (0 / 0), as PyTorch's.
            let reduced = Value {
                value: total.value / scale,
                terms: total.terms / scale,
                flush: total.flush / scale.max(1.0) + 1.0,
            };
            (vec![reduced], vec![])
        }
    };
    let grad: Vec<Value> = grads
        .iter()
        .map(|g| Value {
            value: g.value / scale,
            terms: g.terms / scale,
            flush: g.flush / scale.max(1.0) + 1.0,
        })
        .collect();
    let field = |v: &[Value], f: fn(&Value) -> f64| v.iter().map(f).collect::<Vec<f64>>();
    ElementwiseOutput {
        loss: field(&loss, |v| v.value),
        loss_dims,
        grad: Some(field(&grad, |v| v.value)),
        magnitude: Some(ElementwiseMagnitude {
            loss: field(&loss, |v| v.terms),
            grad: Some(field(&grad, |v| v.terms)),
            loss_flush: field(&loss, |v| v.flush),
            grad_flush: Some(field(&grad, |v| v.flush)),
        }),
    }
}
