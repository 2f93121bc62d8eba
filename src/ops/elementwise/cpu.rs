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
        values.push((w * p.loss, w.abs() * p.loss_terms));
        grads.push((w * p.grad, w.abs() * p.grad_terms));
    }
    Ok(reduce(&shape, values, grads, options))
}

/// One element's loss and gradient, each with the magnitude of its terms.
struct Point {
    loss: f64,
    loss_terms: f64,
    grad: f64,
    grad_terms: f64,
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
            grad: 2.0 * d,
            grad_terms: 2.0 * z,
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
    Point {
        loss,
        loss_terms: pos.abs() + neg.abs(),
        grad: a - b,
        grad_terms: a.abs() + b.abs(),
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
        grad: d / den,
        grad_terms: z / den,
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
        grad: sign,
        grad_terms: sign.abs(),
    }
}

/// `SmoothL1` with `beta` > 0 (as the kernels' f32) at `d`, `z = |d|`.
fn smooth_l1(d: f64, z: f64, beta: f64) -> Point {
    let (loss, loss_terms) = if z < beta {
        (0.5 * d * d / beta, 0.5 * d * d / beta)
    } else {
        (z - 0.5 * beta, z + 0.5 * beta)
    };
    let grad = clip(d, beta, d / beta, 1.0);
    Point {
        loss,
        loss_terms,
        grad,
        grad_terms: grad.abs(),
    }
}

/// `Huber` with `delta` (as the kernels' f32) at `d`, `z = |d|`.
fn huber(d: f64, z: f64, delta: f64) -> Point {
    let (loss, loss_terms) = if z < delta {
        (0.5 * d * d, 0.5 * d * d)
    } else {
        (delta * (z - 0.5 * delta), delta * (z + 0.5 * delta))
    };
    let grad = clip(d, delta, d, delta);
    Point {
        loss,
        loss_terms,
        grad,
        grad_terms: grad.abs(),
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

/// The elements' (value, magnitude) pairs reduced, the gradient divided by
/// the mean's count.
fn reduce(
    shape: &Elements,
    values: Vec<(f64, f64)>,
    grads: Vec<(f64, f64)>,
    options: &ElementwiseOptions,
) -> ElementwiseOutput<f64> {
    let n = shape.len as f64;
    let scale = if options.reduction == Reduction::Mean {
        n
    } else {
        1.0
    };
    let (loss, loss_terms, loss_dims): (Vec<f64>, Vec<f64>, Vec<usize>) = match options.reduction {
        Reduction::None => {
            let (v, m) = values.into_iter().unzip();
            (v, m, shape.dims.clone())
        }
        Reduction::Sum | Reduction::Mean => {
            let (v, m) = values
                .iter()
                .fold((0.0, 0.0), |(v, m), &(a, b)| (v + a, m + b));
            // The mean of nothing is NaN (0 / 0), as PyTorch's.
            (vec![v / scale], vec![m / scale], vec![])
        }
    };
    let (grad, grad_terms): (Vec<f64>, Vec<f64>) =
        grads.iter().map(|&(g, m)| (g / scale, m / scale)).unzip();
    ElementwiseOutput {
        loss,
        loss_dims,
        grad: Some(grad),
        magnitude: Some(ElementwiseMagnitude {
            loss: loss_terms,
            grad: Some(grad_terms),
        }),
    }
}
