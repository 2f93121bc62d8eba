//! Fused linear + cross-entropy: the loss of `logits = h·Wᵀ + b` and its
//! gradients with respect to `h`, `W` and `b`, without the `(N, V)` logits
//! ever existing whole. The rows go through a window of logits a chunk at a
//! time (Liger-style): a product fills the window, the cross-entropy's rows
//! passes overwrite it with the gradient of the logits, and three more
//! products fold it into `∂L/∂h`, `∂L/∂W` and `∂L/∂b` (ARCHITECTURE.md says
//! why this and not recomputed tiles).

mod compare;
pub(crate) mod cpu;
pub(crate) mod host;
mod options;
pub(crate) mod plan;
mod record;

pub use cpu::LinearOutput;
pub use options::{LinearCrossEntropyOptions, DEFAULT_SCRATCH_BUDGET};
pub use plan::LinearPlan;
pub use record::LinearBuffers;

/// The shapes of a fused call: `h` is `(n, h)`, `W` is `(v, h)`, the logits
/// `(n, v)` (never stored whole).
///
/// ```
/// let d = xent::LinearDims { n: 2048, h: 512, v: 32_000 };
/// assert_eq!(d.logits_bytes(), 2048 * 32_000 * 4);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearDims {
    /// Rows (tokens).
    pub n: usize,
    /// Hidden size.
    pub h: usize,
    /// Classes (vocabulary).
    pub v: usize,
}

impl LinearDims {
    /// Bytes the materialised f32 logits would take: `n·v·4`.
    ///
    /// ```
    /// // 1 024 tokens over GPT-2's vocabulary: 206 MB of logits, over 12 times the default scratch budget.
    /// let d = xent::LinearDims { n: 1024, h: 768, v: 50_257 };
    /// assert_eq!(d.logits_bytes(), 205_852_672);
    /// assert_eq!(d.logits_bytes() / xent::DEFAULT_SCRATCH_BUDGET, 12);
    /// ```
    pub fn logits_bytes(&self) -> u64 {
        self.n as u64 * self.v as u64 * 4
    }

    /// Floating-point operations of the forward product (`2·n·h·v`).
    ///
    /// ```
    /// let d = xent::LinearDims { n: 2, h: 3, v: 5 };
    /// assert_eq!(d.forward_flops(), 60);
    /// ```
    pub fn forward_flops(&self) -> u64 {
        2 * self.n as u64 * self.h as u64 * self.v as u64
    }

    /// Of the two backward products (`4·n·h·v`).
    ///
    /// ```
    /// // ∂L/∂h = g·W and ∂L/∂W = gᵀ·h, each as large as the forward product.
    /// let d = xent::LinearDims { n: 2, h: 3, v: 5 };
    /// assert_eq!(d.backward_flops(), 120);
    /// assert_eq!(d.backward_flops(), 2 * d.forward_flops());
    /// ```
    pub fn backward_flops(&self) -> u64 {
        2 * self.forward_flops()
    }
}

/// Checks that each slice of a fused call has the length `dims` gives it
/// (the host API and the twin share it).
pub(crate) fn check_lengths(
    dims: LinearDims,
    hidden: usize,
    weight: usize,
    bias: Option<usize>,
    targets: usize,
) -> crate::Result<()> {
    let LinearDims { n, h, v } = dims;
    let lengths = [
        ("hidden", hidden, vec![n, h]),
        ("weight", weight, vec![v, h]),
        ("targets", targets, vec![n]),
    ];
    for (what, len, shape) in lengths
        .into_iter()
        .chain(bias.map(|b| ("bias", b, vec![v])))
    {
        let expected: usize = shape.iter().product();
        if len != expected {
            return Err(crate::Error::ShapeMismatch {
                what,
                shape,
                expected,
                actual: len,
            });
        }
    }
    Ok(())
}
