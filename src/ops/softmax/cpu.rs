//! The CPU twins of softmax, log-softmax, their backward and the Jacobian,
//! in f64, with the magnitudes of their terms.

use crate::core::reference::{log_magnitude, row_stats, widen, Reference};
use crate::core::shape;
use crate::core::shape::Layout;
use crate::error::Result;

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
    shape::length("input", dims, layout.len(), x.len())?;
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
    // A flushed e^(x − m) (divided by s ≥ 1), or x − m before the logarithm.
    let flush = vec![1.0; y.len()];
    Ok(Reference {
        value: y,
        magnitude,
        flush,
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
        // A flushed y times dy − Σ; a flushed dy times y.
        |y, dy, total| (dy - total).abs() + y.abs(),
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
        // A flushed e^y times Σ; a flushed dy.
        |_, _, total| total.abs() + 1.0,
    )
}

/// `value(y, dy, Σ term)` per element, `magnitude(y, dy, Σ |term|)`, and
/// the flush factor `flush(y, dy, Σ term)` of the inputs, plus the sum's
/// terms and partial sums and the last product, which may be flushed too.
fn backward<T: Copy + Into<f64>>(
    y: &[T],
    dy: &[T],
    dims: &[usize],
    value: impl Fn(f64, f64, f64) -> f64,
    term: impl Fn(f64, f64) -> f64,
    magnitude: impl Fn(f64, f64, f64) -> f64,
    flush: impl Fn(f64, f64, f64) -> f64,
) -> Result<Reference> {
    let layout = Layout::from_dims(dims)?;
    shape::length("output", dims, layout.len(), y.len())?;
    shape::length("grad_output", dims, layout.len(), dy.len())?;
    let (y, dy) = (widen(y), widen(dy));
    let mut dx = vec![0.0; y.len()];
    let mut mag = vec![0.0; y.len()];
    let mut flushed = vec![0.0; y.len()];
    for row in 0..layout.rows() {
        let idx = |c| layout.element(row, c);
        let terms = || (0..layout.classes).map(|c| term(y[idx(c)], dy[idx(c)]));
        let total: f64 = terms().sum();
        let abs_total: f64 = terms().map(f64::abs).sum();
        for c in 0..layout.classes {
            dx[idx(c)] = value(y[idx(c)], dy[idx(c)], total);
            mag[idx(c)] = magnitude(y[idx(c)], dy[idx(c)], abs_total).max(dx[idx(c)].abs());
            flushed[idx(c)] =
                flush(y[idx(c)], dy[idx(c)], total) + 2.0 * layout.classes as f64 + 1.0;
        }
    }
    Ok(Reference {
        value: dx,
        magnitude: mag,
        flush: flushed,
    })
}

/// Largest class count [`softmax_jacobian`] builds (a C × C matrix).
///
/// ```
/// use xent::cpu::{softmax_jacobian, MAX_JACOBIAN_CLASSES};
/// // One class more is refused before anything is built.
/// let y = vec![0.0f64; MAX_JACOBIAN_CLASSES + 1];
/// assert!(matches!(softmax_jacobian(&y), Err(xent::Error::InvalidShape { .. })));
/// assert_eq!(softmax_jacobian(&[1.0f64])?, [[0.0]]); // one class: y − y² = 0
/// # Ok::<(), xent::Error>(())
/// ```
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
