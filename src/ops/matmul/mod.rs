//! Matrix products `out = op(A)·op(B) (+ bias) (+ out)` in WGSL
//! (`shaders/matmul/`): the recording API over the caller's buffers, the
//! host API, and the f64 CPU twin. The fused linear cross-entropy is built
//! on them (h·Wᵀ, g·W, gᵀ·h and the bias's column sums).

pub(crate) mod cpu;
mod host;
pub(crate) mod record;

pub use host::MatmulOptions;
pub use record::{MatrixView, ProductBuffers, ProductKernel};

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
    pub fn flops(&self) -> u64 {
        2 * self.m as u64 * self.n as u64 * self.k as u64
    }
}
