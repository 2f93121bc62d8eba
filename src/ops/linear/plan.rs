//! The fused call's window of logits: how many rows it holds within the
//! caller's scratch budget, and what the call holds on the device.

use super::options::{LinearCrossEntropyOptions, DEFAULT_SCRATCH_BUDGET, DEFAULT_SCRATCH_FRACTION};
use super::LinearDims;
use crate::core::device::LOOP_TRIPS_MAX;
use crate::core::shape::Layout;
use crate::core::{Context, Returns};
use crate::error::{Error, Result};
use crate::ops::cross_entropy::options::Strategy;
use crate::ops::cross_entropy::plan::PlanInputs;

/// Windows of at least this many rows hold a multiple of it: whole output
/// tiles of the products (`TILE` in `shaders/matmul/product.wgsl`).
const ROW_QUANTUM: usize = crate::ops::matmul::kernels::TILE;

/// What a fused call holds on the device besides the caller's buffers.
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// let ctx = xent::Context::from_env()?;
/// let dims = xent::LinearDims { n: 2048, h: 512, v: 32_000 };
/// let plan = ctx.plan_linear_cross_entropy(&dims, &Default::default(), &Default::default())?;
/// assert_eq!(plan.window_rows, 256);
/// assert!(plan.scratch_bytes <= plan.budget);
/// assert!(plan.window_bytes * 8 <= dims.logits_bytes());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearPlan {
    /// Rows of logits the window holds (the last chunk may hold fewer).
    pub window_rows: usize,
    /// Chunks of rows, each a pass of the window.
    pub chunks: usize,
    /// Bytes of the window: `window_rows · v · 4`, in whole vec4s.
    pub window_bytes: u64,
    /// Every scratch byte: the window, the cross-entropy's per-row scratch
    /// (statistics, flags, plans) and, for `mean` and `sum`, its per-row
    /// losses. At most the budget.
    pub scratch_bytes: u64,
    /// The budget: the options' or the default's (see
    /// [`LinearCrossEntropyOptions::scratch_budget`]); the products'
    /// split-k partial sums may take what `scratch_bytes` leaves of it.
    pub budget: u64,
}

/// The fused linear cross-entropy's plan: what a call holds on the device.
impl Context {
    /// The window and scratch of a fused call of shape `dims`, as
    /// [`Context::record_linear_cross_entropy`] allocates them for a call
    /// with the outputs `returns` names (the argmax count, the predicted
    /// classes and the entropies hold a word per row each; a recording call
    /// writes them when given their buffers).
    ///
    /// # Errors
    /// [`Error::InvalidOption`] (`scratch_budget`) for a budget that holds
    /// less than one row of logits besides the per-row scratch; the
    /// cross-entropy's shape errors for `(n, v)`.
    ///
    /// ```
    /// let ctx = xent::Context::from_env()?;
    /// let dims = xent::LinearDims { n: 1024, h: 64, v: 1000 };
    /// let counted = xent::Returns { correct: true, ..Default::default() };
    /// let plan = ctx.plan_linear_cross_entropy(&dims, &Default::default(), &counted)?;
    /// assert!(plan.scratch_bytes <= plan.budget);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn plan_linear_cross_entropy(
        &self,
        dims: &LinearDims,
        opts: &LinearCrossEntropyOptions,
        returns: &Returns,
    ) -> Result<LinearPlan> {
        self.plan_linear(*dims, opts, returns, false)
    }

    /// [`Context::plan_linear_cross_entropy`] of a call with the per-row
    /// outputs of `rows` (`correct`, `argmax`, `entropy`), or with `vocab`
    /// that of a vocabulary shard of `dims.v` classes (the split kernels'
    /// scratch).
    pub(crate) fn plan_linear(
        &self,
        dims: LinearDims,
        opts: &LinearCrossEntropyOptions,
        rows: &Returns,
        vocab: bool,
    ) -> Result<LinearPlan> {
        opts.validate()?;
        if vocab && opts.filter_eps.is_some() {
            return Err(Error::Unsupported {
                what: "gradient filtering (filter_eps)",
                reason: "the vocabulary-split fused linear cross-entropy does not filter".into(),
            });
        }
        // An empty shard is planned as one class (its passes walk none).
        let layout = Layout::from_dims(&[dims.n, dims.v.max(usize::from(vocab))])?;
        let ce = self.plan_cross_entropy(
            &layout,
            PlanInputs {
                elem: 4,
                chunked_targets: false,
                write_grad: true,
                weights: false,
                correct: rows.correct || vocab,
                argmax: rows.argmax,
                entropy: rows.entropy,
                reduction: opts.loss.reduction,
                strategy: if vocab {
                    Strategy::Split
                } else {
                    opts.loss.strategy
                },
                vocab,
            },
        )?;
        // The scratch buffers are at least 16 bytes each.
        let row_loss = match ce.row_loss_bytes {
            0 => 0,
            b => b.max(16),
        };
        let fixed = ce.aux_bytes.max(16) + row_loss;
        let row_bytes = dims.v as u64 * 4;
        let max_binding = self.device.limits().max_storage_buffer_binding_size;
        let budget = opts.scratch_budget.unwrap_or_else(|| {
            DEFAULT_SCRATCH_BUDGET.max(dims.logits_bytes() / DEFAULT_SCRATCH_FRACTION + fixed + 16)
        });
        let fits = budget.saturating_sub(fixed + 16) / row_bytes.max(1);
        let rows = (fits.min(max_binding / row_bytes.max(1)) as usize)
            .min(dims.n.max(1))
            .min(LOOP_TRIPS_MAX);
        if rows == 0 {
            return Err(Error::InvalidOption {
                name: "scratch_budget",
                value: budget.to_string(),
                expected: "room for at least one row of logits (v·4 bytes, in whole vec4s) \
                           besides the per-row scratch",
            });
        }
        let rows = if rows >= ROW_QUANTUM && rows < dims.n {
            rows / ROW_QUANTUM * ROW_QUANTUM
        } else {
            rows
        };
        let window_bytes = (rows as u64 * row_bytes).next_multiple_of(16).max(16);
        Ok(LinearPlan {
            window_rows: rows,
            chunks: dims.n.div_ceil(rows),
            window_bytes,
            scratch_bytes: window_bytes + fixed,
            budget,
        })
    }
}
