//! Comparing GPU results with the CPU reference: the one tolerance policy.
//!
//! A GPU value `g` (f32) matches the CPU value `c` (f64) when
//! `|g − c| ≤ abs` or `|g − c| ≤ rel·max(|g|, |c|)` (approx's `relative_eq`
//! with `epsilon = abs` and `max_relative = rel`), or both are NaN, or both
//! are the same infinity.
//! The defaults, `abs = 1e-5` and `rel = 1e-4`, are set once here for every
//! op and every test: f32 kernels that subtract the max and merge
//! (max, sum-exp) pairs land within a few ulps of the f64 reference for
//! logits of moderate size (|x| ≲ 100), far inside them.

use crate::error::{Error, Result};

/// Absolute plus relative tolerance of a GPU-vs-CPU comparison.
///
/// ```
/// let tol = xent::Tolerance::default();
/// assert!(tol.matches(1.00001, 1.0));
/// assert!(!tol.matches(1.01, 1.0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Absolute part.
    pub abs: f64,
    /// Relative part, times |cpu|.
    pub rel: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Self {
            abs: 1e-5,
            rel: 1e-4,
        }
    }
}

impl Tolerance {
    /// The policy for outputs stored in f16 (the gradient of
    /// [`Context::cross_entropy_f16`](crate::Context::cross_entropy_f16)):
    /// f16 keeps 11 significant bits, a rounding error of at most
    /// 2⁻¹¹ ≈ 4.9e-4 relative, so `rel = 1e-3`; `abs` as for f32.
    pub const F16: Tolerance = Tolerance {
        abs: 1e-5,
        rel: 1e-3,
    };

    /// Whether GPU value `gpu` matches CPU value `cpu`.
    pub fn matches(&self, gpu: f64, cpu: f64) -> bool {
        if gpu.is_nan() || cpu.is_nan() {
            return gpu.is_nan() && cpu.is_nan();
        }
        if gpu.is_infinite() || cpu.is_infinite() {
            return gpu == cpu;
        }
        approx::relative_eq!(gpu, cpu, epsilon = self.abs, max_relative = self.rel)
    }

    /// Compares two tensors element by element.
    ///
    /// # Errors
    /// [`Error::Mismatch`] naming the worst element (the one furthest past its
    /// bound), both values and this tolerance; a length difference is a
    /// [`Error::ShapeMismatch`].
    ///
    /// ```
    /// let tol = xent::Tolerance::default();
    /// assert!(tol.compare("loss", &[1.0f32], &[1.0]).is_ok());
    /// assert!(matches!(tol.compare("loss", &[2.0f32], &[1.0]), Err(xent::Error::Mismatch { index: 0, .. })));
    /// ```
    pub fn compare(&self, what: &'static str, gpu: &[f32], cpu: &[f64]) -> Result<()> {
        if gpu.len() != cpu.len() {
            return Err(Error::ShapeMismatch {
                what,
                shape: vec![cpu.len()],
                expected: cpu.len(),
                actual: gpu.len(),
            });
        }
        let mut worst: Option<(usize, f64)> = None;
        for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
            let g = f64::from(g);
            if self.matches(g, c) {
                continue;
            }
            let excess = if g.is_finite() && c.is_finite() {
                let diff = (g - c).abs();
                (diff - self.abs).min(diff - self.rel * g.abs().max(c.abs()))
            } else {
                f64::INFINITY
            };
            if worst.is_none_or(|(_, e)| excess > e) {
                worst = Some((i, excess));
            }
        }
        match worst {
            None => Ok(()),
            Some((index, _)) => Err(Error::Mismatch {
                what,
                index,
                gpu: f64::from(gpu[index]),
                cpu: cpu[index],
                abs: self.abs,
                rel: self.rel,
            }),
        }
    }
}

/// Largest |gpu − cpu| over two tensors, NaN-aware: positions where both are
/// NaN or the same infinity count as 0. For reports, not for pass/fail.
///
/// ```
/// assert_eq!(xent::max_abs_diff(&[1.0, f32::NAN], &[1.5, f64::NAN]), 0.5);
/// ```
pub fn max_abs_diff(gpu: &[f32], cpu: &[f64]) -> f64 {
    gpu.iter()
        .zip(cpu)
        .map(|(&g, &c)| {
            let g = f64::from(g);
            if (g.is_nan() && c.is_nan()) || g == c {
                0.0
            } else {
                (g - c).abs()
            }
        })
        .fold(0.0, f64::max)
}
