//! The dispatches around a cross-entropy call's rows passes: the target
//! statistics before them; the loss's reduction and the per-row outputs'
//! copy after them.

use super::dispatch::CallState;
use super::params::slot;
use super::plan::TILE_ROWS;
use super::strategy::NARROW_WG;
use crate::core::binding::Region;
use crate::core::encode::Dispatch;
use crate::core::{Context, Reduction};
use crate::error::Result;

impl Context {
    /// The target statistics before the rows passes and the loss's
    /// reduction after them, over `groups` blocks of rows: past one block,
    /// a dispatch per block and then their merge.
    pub(crate) fn stats_and_reduction(
        &self,
        s: &CallState<'_>,
        groups: u64,
    ) -> Result<(Vec<Dispatch>, Vec<Dispatch>)> {
        let bound = &s.bound;
        let k = |entry| self.cross_entropy_pipeline(s.variant, entry, &[]);
        // The block passes bind all but the last entry of their merge's. A
        // shard's finish reads each row's target weight from the merged
        // records (a placeholder otherwise).
        let uniform = &Region::whole(&s.uniform);
        let stats = [
            (slot::PARAMS, uniform),
            (slot::TARGETS, &bound.targets),
            (slot::WEIGHTS, &bound.weights),
            (slot::AUX, &bound.aux),
            (slot::SAMPLE_WEIGHTS, &bound.sample_weights),
            (slot::SHARD_IN, &bound.shard_in),
            (slot::STATUS, &bound.status),
        ];
        let mut before = Vec::with_capacity(2);
        if groups > 1 {
            // With `targets` again as vec4s over its whole 16-byte units
            // (at least 8 192 rows' worth here).
            let mut entries: Vec<_> = stats[..stats.len() - 1]
                .iter()
                .map(|&(slot, r)| (slot, &r.buffer, self.whole_range(r.slice(), 4)))
                .collect();
            let targets4 = self.whole_range(bound.targets.slice(), 16);
            entries.push((slot::TARGETS4, &bound.targets.buffer, targets4));
            let grid = (groups as u32, 1);
            before.push(self.dispatch("target_partials", k("target_partials")?, &entries, grid));
        }
        let pipeline = k("target_stats")?;
        let group = self.bind(&pipeline, &slices(&stats));
        before.push(("target_stats", pipeline, group, (1, 1)));
        Ok((before, self.reduction(s, groups)?))
    }

    /// After the rows passes: the loss's tiles (unless the rows kernel
    /// summed them), its blocks and their merge, the per-row outputs' copy.
    fn reduction(&self, s: &CallState<'_>, groups: u64) -> Result<Vec<Dispatch>> {
        let bound = &s.bound;
        let k = |entry| self.cross_entropy_pipeline(s.variant, entry, &[]);
        let uniform = &Region::whole(&s.uniform);
        let reduce = s.opts.reduction != Reduction::None || s.b.correct.is_some();
        let rows = s.checked.layout.rows();
        let mut after = Vec::with_capacity(3);
        if s.opts.reduction != Reduction::None && !s.rows.tiles && rows > 0 {
            // The rows wrote their losses: their tiles' sums first.
            let tiles = [
                (slot::PARAMS, uniform),
                (slot::ROW_LOSS, &bound.row_loss),
                (slot::AUX, &bound.aux),
            ];
            let pipeline = k("loss_tiles")?;
            let group = self.bind(&pipeline, &slices(&tiles));
            let tiles = (rows as u64).div_ceil(TILE_ROWS) as usize;
            let grid = self.grid(tiles.div_ceil(NARROW_WG))?;
            after.push(("loss_tiles", pipeline, group, grid));
        }
        // The loss's reduction reads the tiles' sums from `aux`; the block
        // pass binds the first two entries.
        let loss = [
            (slot::PARAMS, uniform),
            (slot::AUX, &bound.aux),
            (slot::LOSS_OUT, &bound.loss_out),
            (slot::CORRECT_OUT, &bound.correct),
        ];
        if reduce && groups > 1 {
            let pipeline = k("loss_partials")?;
            let group = self.bind(&pipeline, &slices(&loss[..2]));
            after.push(("loss_partials", pipeline, group, (groups as u32, 1)));
        }
        if reduce {
            let pipeline = k("reduce_loss")?;
            let group = self.bind(&pipeline, &slices(&loss));
            after.push(("reduce_loss", pipeline, group, (1, 1)));
        }
        if (s.checked.argmax || s.checked.entropy) && rows > 0 {
            let outputs = [
                (slot::PARAMS, uniform),
                (slot::AUX, &bound.aux),
                (slot::ARGMAX_OUT, &bound.argmax),
                (slot::ENTROPY_OUT, &bound.entropy),
            ];
            let pipeline = k("row_outputs")?;
            let group = self.bind(&pipeline, &slices(&outputs));
            let grid = self.grid(rows.div_ceil(NARROW_WG))?;
            after.push(("row_outputs", pipeline, group, grid));
        }
        Ok(after)
    }
}

/// Each region of `entries` as wgpu's slice.
fn slices<'a>(entries: &[(u32, &'a Region)]) -> Vec<(u32, wgpu::BufferSlice<'a>)> {
    entries.iter().map(|&(slot, r)| (slot, r.slice())).collect()
}
