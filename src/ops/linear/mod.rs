//! Fused linear + cross-entropy: the loss of `logits = h·Wᵀ + b` and its
//! gradients with respect to `h`, `W` and `b`, without the `(N, V)` logits
//! ever existing whole. The rows go through a window of logits a chunk at a
//! time (Liger-style): a product fills the window, the cross-entropy's rows
//! passes overwrite it with the gradient of the logits, and three more
//! products fold it into `∂L/∂h`, `∂L/∂W` and `∂L/∂b` (ARCHITECTURE.md says
//! why this and not recomputed tiles).

mod bounds;
mod buffers;
mod compare;
pub(crate) mod cpu;
pub(crate) mod host;
mod options;
pub(crate) mod plan;
mod record;
mod traffic;

pub use buffers::LinearBuffers;
pub use cpu::LinearOutput;
pub use options::{LinearCrossEntropyOptions, DEFAULT_SCRATCH_BUDGET, DEFAULT_SCRATCH_FRACTION};
pub use plan::LinearPlan;

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
    /// The dims of hidden states of shape `(…, H)` (any number of leading
    /// dimensions, none for one unbatched row) and a weight `(V, H)`: the
    /// leading dimensions are flattened into `n` rows, as PyTorch's
    /// `F.linear_cross_entropy` does for `(N, H)` and `(H)`. Class-id
    /// targets then have the leading shape and probabilities `(…, V)`; a
    /// `none` loss has the leading shape and `∂L/∂h` the hidden's.
    ///
    /// # Errors
    /// [`Error::InvalidShape`](crate::Error::InvalidShape) naming the shape:
    /// a 0-d hidden, a weight that is not 2-D (PyTorch's K-dimensional
    /// weight `(V, d1, …, dK, H)` is not supported), or an `H` that
    /// differs between them.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// // A language model's (batch, time, hidden) states over a vocabulary of 50.
    /// let d = xent::LinearDims::from_shapes(&[4, 128, 64], &[50, 64])?;
    /// assert_eq!(d, xent::LinearDims { n: 512, h: 64, v: 50 });
    /// assert_eq!(xent::LinearDims::from_shapes(&[64], &[50, 64])?.n, 1); // unbatched
    /// assert!(xent::LinearDims::from_shapes(&[4, 64], &[50, 3, 64]).is_err());
    /// # Ok(()) }
    /// ```
    pub fn from_shapes(hidden: &[usize], weight: &[usize]) -> crate::Result<Self> {
        let bad = |shape: &[usize], reason: String| crate::Error::InvalidShape {
            shape: shape.to_vec(),
            reason,
        };
        let Some((&h, leading)) = hidden.split_last() else {
            return Err(bad(
                hidden,
                "hidden states need a last axis H: (…, H)".into(),
            ));
        };
        let &[v, wh] = weight else {
            return Err(bad(
                weight,
                format!(
                    "the weight must be (V, H), 2-D; a {}-D weight (PyTorch's K-dimensional \
                     (V, d1, …, dK, H)) is not supported",
                    weight.len()
                ),
            ));
        };
        if wh != h {
            return Err(bad(
                weight,
                format!(
                    "the weight's H is {wh} but the hidden states {hidden:?} have H = {h}: \
                     their H (last axes) differ"
                ),
            ));
        }
        let n = leading.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        let n = n.ok_or_else(|| bad(hidden, "too many rows".into()))?;
        Ok(Self { n, h, v })
    }

    /// Bytes the materialised f32 logits would take: `n·v·4`.
    ///
    /// ```
    /// // 1 024 tokens over GPT-2's vocabulary: 206 MB of logits, 12 times the least default budget.
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

/// Checks that each slice of a fused call but the targets (which the
/// cross-entropy's checks hold to `(n)` or `(n, v)`) has the length `dims`
/// gives it (the host API and the twin share it).
pub(crate) fn check_lengths(
    dims: LinearDims,
    hidden: usize,
    weight: usize,
    bias: Option<usize>,
) -> crate::Result<()> {
    let LinearDims { n, h, v } = dims;
    let lengths = [
        ("hidden", hidden, vec![n, h]),
        ("weight", weight, vec![v, h]),
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
