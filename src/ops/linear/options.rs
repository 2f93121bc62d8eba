//! Options of the fused linear cross-entropy.

use crate::error::{Error, Result};
use crate::ops::cross_entropy::options::{CrossEntropyOptions, InputKind};
use crate::ops::matmul::{ProductKernel, SplitK};

/// The default scratch budget, 16 MiB: on 2 048 × 512 × 32 000 the window
/// holds 128 rows (16.4 MB, 1/16 of the 262 MB of materialised logits).
/// Larger windows give the products of `∂L/∂h` more workgroups (a GPU wants
/// several hundred rows); smaller ones less memory.
///
/// ```
/// assert_eq!(xent::LinearCrossEntropyOptions::default().scratch_budget, xent::DEFAULT_SCRATCH_BUDGET);
/// ```
pub const DEFAULT_SCRATCH_BUDGET: u64 = 16 << 20;

/// Options of [`Context::linear_cross_entropy`](crate::Context::linear_cross_entropy)
/// and its recording twin.
///
/// ```
/// let opts = xent::LinearCrossEntropyOptions {
///     loss: xent::CrossEntropyOptions { softcap: Some(30.0), ..Default::default() },
///     ..Default::default()
/// };
/// assert_eq!(opts.scratch_budget, xent::DEFAULT_SCRATCH_BUDGET);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LinearCrossEntropyOptions {
    /// The loss's options, as for [`Context::cross_entropy`](crate::Context::cross_entropy) with class-index
    /// targets: reduction, `ignore_index`, label smoothing, z-loss,
    /// soft-capping (applied to `h·Wᵀ + b`), `empty_mean`, and the strategy
    /// of the rows passes (what the host call returns is its
    /// [`Returns`](crate::Returns)).
    /// The input kind must be logits.
    pub loss: CrossEntropyOptions,
    /// Most bytes of scratch the call may hold on the device: the window of
    /// logits plus the cross-entropy's per-row scratch, and the products'
    /// split-k partial sums in what those two leave. Default
    /// [`DEFAULT_SCRATCH_BUDGET`]. Too small for one row is an error.
    pub scratch_budget: u64,
    /// The products' kernel; [`ProductKernel::Auto`] chooses by the device.
    pub product_kernel: ProductKernel,
    /// How the products cut k ([`SplitK::Auto`]: by the device and each
    /// product's shape). The cut fixes the bits; the slices run at once
    /// are what the budget leaves room for.
    pub split_k: SplitK,
}

impl Default for LinearCrossEntropyOptions {
    fn default() -> Self {
        Self {
            loss: CrossEntropyOptions::default(),
            scratch_budget: DEFAULT_SCRATCH_BUDGET,
            product_kernel: ProductKernel::Auto,
            split_k: SplitK::Auto,
        }
    }
}

impl LinearCrossEntropyOptions {
    /// Checks the loss's options (see [`CrossEntropyOptions::validate`]) and
    /// that its input kind is logits.
    ///
    /// # Errors
    /// [`Error::InvalidOption`].
    ///
    /// ```
    /// use xent::{CrossEntropyOptions, InputKind, LinearCrossEntropyOptions};
    /// assert!(LinearCrossEntropyOptions::default().validate().is_ok());
    /// // The fused op computes logits: probabilities in are refused.
    /// let probs = CrossEntropyOptions { input: InputKind::Probs, ..Default::default() };
    /// let opts = LinearCrossEntropyOptions { loss: probs, ..Default::default() };
    /// assert!(matches!(opts.validate(), Err(xent::Error::InvalidOption { name: "input", .. })));
    /// ```
    pub fn validate(&self) -> Result<()> {
        self.loss.validate()?;
        if self.loss.input != InputKind::Logits {
            return Err(Error::InvalidOption {
                name: "input",
                value: format!("{:?}", self.loss.input),
                expected: "logits (the fused op computes them)",
            });
        }
        Ok(())
    }
}
