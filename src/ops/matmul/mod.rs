//! Matrix products `out = op(A)·op(B) (+ bias) (+ out)` in WGSL
//! (`shaders/matmul/`): the recording API over the caller's buffers, the
//! host API, and the f64 CPU twin. The fused linear cross-entropy is built
//! on them (h·Wᵀ, g·W, gᵀ·h and the bias's column sums).

pub(crate) mod buffers;
pub(crate) mod cpu;
pub(crate) mod filter;
mod host;
pub(crate) mod kernels;
mod params;
pub(crate) mod pipelines;
pub(crate) mod record;
pub(crate) mod split;
pub(crate) mod traffic;

pub use buffers::MatmulOptions;
pub use buffers::{MatrixView, ProductBuffers, ProductKernel};
pub use split::SplitK;

/// The shape of a product: `op(A)` is `m × k`, `op(B)` is `k × n`, the output `m × n`.
///
/// ```
/// let d = xent::MatmulDims { m: 2, n: 3, k: 4 };
/// assert_eq!(d.flops(), 2 * 2 * 3 * 4);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatmulDims {
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

impl MatmulDims {
    /// Floating-point operations of the product: `2·m·n·k` (a multiply and an add each).
    ///
    /// ```
    /// // A fused call's forward product h·Wᵀ is (n × h)·(h × v).
    /// let linear = xent::LinearDims { n: 8, h: 16, v: 100 };
    /// let product = xent::MatmulDims { m: 8, n: 100, k: 16 };
    /// assert_eq!(product.flops(), 25_600);
    /// assert_eq!(product.flops(), linear.forward_flops());
    /// ```
    pub fn flops(&self) -> u64 {
        2 * self.m as u64 * self.n as u64 * self.k as u64
    }
}

impl MatmulDims {
    /// The stored shapes of `A` and `B` (`A` is `k × m` when transposed,
    /// `B` `n × k`), checked against the slices' lengths: the host API and
    /// the twin share it.
    pub(crate) fn check_lengths(
        &self,
        a: usize,
        b: usize,
        transpose_a: bool,
        transpose_b: bool,
    ) -> crate::Result<([usize; 2], [usize; 2])> {
        let MatmulDims { m, n, k } = *self;
        let a_shape = if transpose_a { [k, m] } else { [m, k] };
        let b_shape = if transpose_b { [n, k] } else { [k, n] };
        for (what, len, shape) in [("a", a, a_shape), ("b", b, b_shape)] {
            if len != shape[0] * shape[1] {
                return Err(crate::Error::ShapeMismatch {
                    what,
                    shape: shape.to_vec(),
                    expected: shape[0] * shape[1],
                    actual: len,
                });
            }
        }
        Ok((a_shape, b_shape))
    }
}
