//! What the CPU twins share: [`Reference`] (values with the magnitude of
//! their terms, which the tolerance scales with) and the per-row statistics.

use super::shape::Layout;

/// CPU values, the magnitude of the terms each is made of (the sum of
/// their absolute values) and each one's flush factor, which the
/// [`Tolerance`](crate::Tolerance) of a GPU-vs-CPU comparison scales with.
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
    /// Each value's flush factor: the sum of the factors its f32 inputs
    /// and intermediates are multiplied by after a GPU may have flushed
    /// them to zero (see [`Tolerance`](crate::Tolerance)); 0 where there
    /// are none.
    pub flush: Vec<f64>,
}

/// What a logarithm of an f32 sum adds to its magnitude: the sum's relative
/// error becomes an absolute error of its logarithm (see [`Tolerance`](crate::Tolerance)).
pub(crate) const LOG_TERM: f64 = 0.1;

/// f32's unit roundoff, 2⁻²⁴: the twins' bounds on an f32 kernel's rounding.
pub(crate) const F32_UNIT: f64 = f32::EPSILON as f64 / 2.0;

/// The default tolerance's `rel`: the unit the twins keep an f32 kernel's
/// rounding error in when they add it to a magnitude.
pub(crate) fn rel() -> f64 {
    crate::core::verify::Tolerance::default().rel
}

/// Whether an f32 value (held as f64) is subnormal, nonzero below 2⁻¹²⁶:
/// one a GPU may flush to zero.
pub(crate) fn flushable(v: f64) -> bool {
    v != 0.0 && v.abs() < f64::from(f32::MIN_POSITIVE)
}

/// The two largest of `values` (−∞ where there are fewer).
pub(crate) fn top_two(values: impl Iterator<Item = f64>) -> [f64; 2] {
    let mut top = [f64::NEG_INFINITY; 2];
    for v in values {
        if v > top[0] {
            top = [v, top[0]];
        } else if v > top[1] {
            top[1] = v;
        }
    }
    top
}

/// Magnitude of `ln s` for a sum `s`.
pub(crate) fn log_magnitude(s: f64) -> f64 {
    s.ln().abs() + LOG_TERM
}

/// Per-row (max, sum-exp) of `x` over the class axis, accumulated in f64.
pub(crate) fn row_stats(x: &[f64], layout: &Layout, row: usize) -> (f64, f64) {
    let m = (0..layout.classes)
        .map(|c| x[layout.element(row, c)])
        .fold(f64::NEG_INFINITY, f64::max);
    let s = (0..layout.classes)
        .map(|c| (x[layout.element(row, c)] - m).exp())
        .sum();
    (m, s)
}

pub(crate) fn widen<T: Copy + Into<f64>>(x: &[T]) -> Vec<f64> {
    x.iter().map(|&v| v.into()).collect()
}
