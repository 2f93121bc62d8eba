//! Options of the fused linear cross-entropy.

use crate::error::{Error, Result};
use crate::ops::cross_entropy::options::{CrossEntropyOptions, InputKind};
use crate::ops::matmul::{ProductKernel, SplitK};

/// The least default scratch budget, 16 MiB: the default is the larger of
/// this and a window of 1/8 of the call's f32 logits with the per-row
/// scratch ([`DEFAULT_SCRATCH_FRACTION`]).
///
/// ```
/// let ctx = xent::Context::from_env()?;
/// let small = xent::LinearDims { n: 256, h: 512, v: 4096 };
/// let plan = ctx.plan_linear_cross_entropy(&small, &Default::default(), &Default::default())?;
/// assert_eq!(plan.budget, xent::DEFAULT_SCRATCH_BUDGET);
/// # Ok::<(), xent::Error>(())
/// ```
pub const DEFAULT_SCRATCH_BUDGET: u64 = 16 << 20;

/// The default scratch budget holds a window of the call's f32 logits
/// (`n·v·4` bytes) over this, and the per-row scratch, where that is more
/// than [`DEFAULT_SCRATCH_BUDGET`]. A window of logits is a pass over `W` by
/// each of the call's products, so the window's rows set how often `W` is
/// read: on 8 192 × 4 096 × 128 256 an eighth of the logits is 1 024 rows
/// (8 windows, where 16 MiB held 32 rows: 256 windows), where the device
/// binds that much. More rows also give `∂L/∂h = g·W` more workgroups.
///
/// ```
/// let ctx = xent::Context::from_env()?;
/// let dims = xent::LinearDims { n: 2048, h: 512, v: 32_000 };
/// let plan = ctx.plan_linear_cross_entropy(&dims, &Default::default(), &Default::default())?;
/// assert_eq!(plan.window_rows, 2048 / xent::DEFAULT_SCRATCH_FRACTION as usize);
/// assert!(plan.window_bytes * xent::DEFAULT_SCRATCH_FRACTION <= dims.logits_bytes());
/// # Ok::<(), xent::Error>(())
/// ```
pub const DEFAULT_SCRATCH_FRACTION: u64 = 8;

/// Options of [`Context::linear_cross_entropy`](crate::Context::linear_cross_entropy)
/// and its recording twin.
///
/// ```
/// let opts = xent::LinearCrossEntropyOptions {
///     loss: xent::CrossEntropyOptions { softcap: Some(30.0), ..Default::default() },
///     ..Default::default()
/// };
/// assert_eq!(opts.scratch_budget, None); // 1/8 of the logits, at least 16 MiB
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
    /// split-k partial sums in what those two leave. `None` (the default):
    /// the larger of [`DEFAULT_SCRATCH_BUDGET`] and a window of 1/8 of the
    /// call's f32 logits with the per-row scratch ([`LinearPlan::budget`](crate::LinearPlan::budget)
    /// says which). Too small for one row is an error.
    pub scratch_budget: Option<u64>,
    /// The products' kernel; [`ProductKernel::Auto`] chooses by the device.
    pub product_kernel: ProductKernel,
    /// How the products cut k ([`SplitK::Auto`]: by the device and each
    /// product's shape). The cut fixes the bits; the slices run at once
    /// are what the budget leaves room for.
    pub split_k: SplitK,
    /// Gradient filtering (Cut Cross-Entropy's `filter_eps`): `Some(eps)`
    /// lets the products of `∂L/∂h` and `∂L/∂W` skip each step of the
    /// window's gradient whose values all lie below `eps` times the
    /// gradient's scale (over the mean's denominator for a mean: relative
    /// to a row of weight 1, as `softmax − one-hot`), a 64 × 16 tile on
    /// GPUs and on the cooperative kernels, 8 × 4 on software adapters. Each skipped value `g` moves
    /// `∂L/∂h` and `∂L/∂W` by `|g|` times the `W` or `h` it multiplies: the
    /// twin ([`cpu::linear_cross_entropy`](crate::cpu::linear_cross_entropy))
    /// widens their magnitudes by that for every value that may be
    /// skipped, so verification holds. The loss, the log-sum-exp and
    /// `∂L/∂b` are exact as without. `None` (the default): no filtering.
    /// Finite and at least 0; not with the vocabulary split.
    pub filter_eps: Option<f64>,
}

impl Default for LinearCrossEntropyOptions {
    fn default() -> Self {
        Self {
            loss: CrossEntropyOptions::default(),
            scratch_budget: None,
            product_kernel: ProductKernel::Auto,
            split_k: SplitK::Auto,
            filter_eps: None,
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
        if let Some(eps) = self.filter_eps {
            if !(eps.is_finite() && eps >= 0.0) {
                return Err(Error::InvalidOption {
                    name: "filter_eps",
                    value: eps.to_string(),
                    expected: "a finite threshold of at least 0",
                });
            }
        }
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
