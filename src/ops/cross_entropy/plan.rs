//! The plan of a cross-entropy call: its strategy (`strategy.rs`), its
//! chunks and its scratch, with every limit checked before anything runs.

use super::strategy::RowStrategy;
use crate::core::device::LOOP_TRIPS_MAX;
use crate::core::shape::Layout;
use crate::core::Context;
use crate::core::Reduction;
use crate::error::{Error, Result};
use crate::ops::cross_entropy::options::Strategy;

/// At most this many workgroups of the row reductions `target_partials` and
/// `loss_partials`; their merges (`STATS_WG` invocations) fold them in order.
const STATS_GROUPS_MAX: u64 = 256;
/// Rows per workgroup of those reductions, before the clamp to `STATS_GROUPS_MAX`.
const STATS_BLOCK_ROWS: u64 = 8192;
/// Invocations of the row reductions (`STATS_WG` in the shader).
const STATS_WG: u64 = 64;

/// Rows per tile of the loss's sum (`TILE_ROWS` in the shader): each tile
/// summed by a fixed tree, by the rows kernel or by `loss_tiles`.
pub(crate) const TILE_ROWS: u64 = 64;
/// Words of call statistics at the start of `aux` (`AUX_ROWS` in the shader).
pub(crate) const AUX_ROWS: u64 = 4;
/// Words of a split row's span partial in `aux` (`PART_WORDS` in the shader).
pub(crate) const PART_WORDS: u64 = 9;
/// Words of the mixed kernel's per-row plan in `aux` (its `RowPlan`;
/// `PLAN_WORDS` in the shader).
pub(crate) const PLAN_WORDS: u64 = 9;

/// What [`Context::plan_cross_entropy`](crate::Context::plan_cross_entropy) needs to know of a call's buffers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlanInputs {
    /// Bytes per input element (4, or 2 for f16).
    pub elem: u64,
    /// Probability targets: bound a chunk at a time like the input.
    pub chunked_targets: bool,
    pub write_grad: bool,
    pub weights: bool,
    pub correct: bool,
    /// Each row's predicted class and entropy, kept in `aux` for `row_outputs`.
    pub argmax: bool,
    pub entropy: bool,
    pub reduction: Reduction,
    /// The options' strategy (`Auto`: the context's forced one, if any, else chosen).
    pub strategy: Strategy,
    /// A vocabulary shard's passes (`split_*` with 2 more words per span).
    pub vocab: bool,
}

/// A cross-entropy call's strategy, chunks and scratch layout.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CallPlan {
    pub strategy: RowStrategy,
    /// Ranges `[n0, n1)` of the outer axis, one binding each.
    pub chunks: Vec<(usize, usize)>,
    /// Words of per-row outputs in `aux`: argmax flags, predicted classes
    /// (from `argmax_at`) and entropies (from `entropy_at`).
    pub flags: u64,
    pub argmax_at: u64,
    pub entropy_at: u64,
    /// Where the row reductions' block partials start in `aux` (words).
    pub partials: u64,
    /// Where the loss's tile sums start in `aux` (words): after the block
    /// partials, a word per `TILE_ROWS` rows.
    pub tiles_at: u64,
    /// Workgroups (blocks of rows) of the row reductions.
    pub groups: u64,
    pub aux_bytes: u64,
    pub row_loss_bytes: u64,
}

impl Context {
    /// Everything about a cross-entropy call that follows from its shape and
    /// options alone (the strategy, the chunks, the scratch), with every
    /// limit checked: the host API calls it before uploading anything, the
    /// recording API before preparing a pass.
    ///
    /// # Errors
    /// [`Error::InvalidShape`](crate::Error::InvalidShape) for a class slice, per-row buffer or scratch
    /// past the device's largest binding; [`Error::Unsupported`](crate::Error::Unsupported) past the
    /// loop bound.
    pub(crate) fn plan_cross_entropy(&self, layout: &Layout, p: PlanInputs) -> Result<CallPlan> {
        let rows = layout.rows() as u64;
        let dims = &layout.dims;
        let max_binding = self.device.limits().max_storage_buffer_binding_size;
        let chunks = if rows == 0 {
            Vec::new()
        } else {
            self.chunks(layout, if p.chunked_targets { 4 } else { p.elem })?
        };
        let strategy = self.call_strategy(layout, p.strategy)?;
        let splits = strategy.splits() as u64;
        // Scratch: 4 words of statistics, a word per row for each per-row
        // output (argmax flags, predicted classes, entropies), a partial and
        // a sum per (row, span) for split rows or a plan per row for the
        // mixed kernel (with a gradient), 4 words per workgroup of the row
        // reductions, a word per tile of the loss; the per-row losses of
        // `mean` and `sum`. Each is bound
        // whole, so each must fit one binding.
        let plans = u64::from(strategy == RowStrategy::WideMixed && p.write_grad);
        let per_row = |on: bool| if on { rows } else { 0 };
        let argmax_at = AUX_ROWS + per_row(p.correct);
        let entropy_at = argmax_at + per_row(p.argmax);
        let flags = entropy_at + per_row(p.entropy) - AUX_ROWS;
        // A vocabulary shard's spans keep 2 more words each (vocab.wgsl).
        let partials = AUX_ROWS
            + flags
            + rows * splits * (PART_WORDS + 1)
            + rows * plans * PLAN_WORDS
            + if p.vocab { rows * splits * 2 } else { 0 };
        let groups = stats_groups(rows);
        check_reduction_trips(layout, groups, p.weights)?;
        let tiles_at = partials + 4 * groups;
        let aux_bytes = 4 * (tiles_at + rows.div_ceil(TILE_ROWS));
        let row_loss_bytes = if p.reduction == Reduction::None {
            0
        } else {
            rows * 4
        };
        for (what, need) in [
            (
                "per-row scratch (argmax flags, row outputs, split-row partials)",
                aux_bytes,
            ),
            // The caller's buffer for `none`, the context's otherwise; per-row
            // targets, lse and sample weights are as large or smaller.
            ("per-row losses", rows * 4),
        ] {
            if need > max_binding {
                return Err(Error::InvalidShape {
                    shape: dims.clone(),
                    reason: format!(
                        "{rows} rows need {need} bytes of {what}, more than the device's largest \
                         storage binding of {max_binding} bytes"
                    ),
                });
            }
        }
        Ok(CallPlan {
            strategy,
            chunks,
            flags,
            argmax_at,
            entropy_at,
            partials,
            tiles_at,
            groups,
            aux_bytes,
            row_loss_bytes,
        })
    }

    /// The rows' strategy: the options' when forced, else `XENT_STRATEGY`'s
    /// when set, else chosen by shape and device. An empty batch runs no
    /// rows pass: any strategy will do.
    fn call_strategy(&self, layout: &Layout, strategy: Strategy) -> Result<RowStrategy> {
        let env = self.strategy_env.as_deref().map(str::parse::<Strategy>);
        let env = env.transpose()?.filter(|&s| s != Strategy::Auto);
        match (layout.rows(), strategy, env) {
            (0, _, _) => Ok(RowStrategy::Narrow),
            (_, Strategy::Auto, None) => RowStrategy::choose(layout, self.profile),
            (_, Strategy::Auto, Some(forced)) | (_, forced, _) => {
                RowStrategy::forced(forced, layout, self.profile.wide_wg)
            }
        }
    }
}

/// Blocks of rows of the target statistics and the loss's reduction.
pub(crate) fn stats_groups(rows: u64) -> u64 {
    rows.div_ceil(STATS_BLOCK_ROWS).clamp(1, STATS_GROUPS_MAX)
}

/// The row reductions walk a block of rows, and `target_stats` the class
/// weights, `STATS_WG` at a time; the trees and folds around them take at
/// most 32 more: [`Error::Unsupported`] past the loop bound.
fn check_reduction_trips(layout: &Layout, groups: u64, weights: bool) -> Result<()> {
    let rows = layout.rows() as u64;
    let block_trips = rows.div_ceil(groups).div_ceil(STATS_WG) as usize;
    let weighted = if weights { layout.classes } else { 0 };
    let weight_trips = (weighted as u64).div_ceil(STATS_WG) as usize;
    let trips = block_trips + weight_trips + 32;
    if trips > LOOP_TRIPS_MAX {
        return Err(Error::Unsupported {
            what: "this many rows or weighted classes",
            reason: format!(
                "{rows} rows and {weighted} class weights need {trips} loop iterations per \
                 invocation of the row reductions, more than the {LOOP_TRIPS_MAX} xent bounds \
                 every invocation to (past about 268 M rows, or 1 M weighted classes)"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::core::binding::wgsl::wgsl_u32;
    use crate::ops::cross_entropy::strategy::{FIXED_CLASSES_MAX, FIXED_QUADS_MAX, SUM_BLOCK};

    /// The plan's constants that the kernels mirror, against `source`.
    pub(crate) fn shared_with(source: &str) {
        assert_eq!(wgsl_u32(source, "PART_WORDS") as u64, PART_WORDS);
        assert_eq!(wgsl_u32(source, "PLAN_WORDS") as u64, PLAN_WORDS);
        let record = crate::ops::cross_entropy::shard::VOCAB_RECORD_WORDS;
        assert_eq!(wgsl_u32(source, "RECORD_WORDS") as usize, record);
        assert_eq!(wgsl_u32(source, "STATS_WG") as u64, STATS_WG);
        assert_eq!(wgsl_u32(source, "SUM_BLOCK") as usize, SUM_BLOCK);
        assert_eq!(wgsl_u32(source, "TILE_ROWS") as u64, TILE_ROWS);
        // Both fixed kernels hold their row in MAX_FIXED vec4s.
        let max_fixed = wgsl_u32(source, "MAX_FIXED") as usize;
        assert!(FIXED_QUADS_MAX.max(FIXED_CLASSES_MAX) <= max_fixed);
    }
}
