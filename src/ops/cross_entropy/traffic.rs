//! The byte yardstick of a cross-entropy call (`src/core/traffic.rs`):
//! what each of its passes loads and stores, counted from the strategy and
//! the call's options, beside the op's minimum (the logits and the targets
//! read once, the gradient and each output written once).
//!
//! Modelled as the kernels access memory: a two-pass rows kernel reads its
//! row twice (the second read counts even where a cache serves it); a
//! kernel that holds its row in registers (`rows_*_fixed`, the teams up to
//! `TEAM_HELD_MAX` elements a lane) reads it once; probability targets are
//! read by both passes of every kernel; a gather (a row's class weight, its
//! target) is one load of its word; the loss's tile sums are written by the
//! rows kernel or by `loss_tiles` from per-row losses. The call statistics
//! each workgroup reads (16 bytes, cached) are left out, as the uniform is.

use super::buffers::{CrossEntropyBuffers, TARGET_PROBS, TARGET_U8};
use super::check::Checked;
use super::dispatch::RowsPass;
use super::options::CrossEntropyOptions;
use super::plan::{CallPlan, PART_WORDS, PLAN_WORDS, TILE_ROWS};
use super::shard::ShardPass;
use super::strategy::RowStrategy;
use super::traffic_shard::ShardCall;
use crate::core::shape::Layout;
use crate::core::status::STATUS_SIZE;
use crate::core::traffic::Traffic;
use crate::core::Reduction;

/// How a call's targets are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetBytes {
    /// Class indices of this many bytes each (4: i32, 1: u8).
    Class(u64),
    /// Probabilities, f32, the input's shape.
    Probs,
}

/// What the count needs of a call beyond its layout and strategy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TrafficInputs {
    /// Bytes per input (and gradient) element.
    pub elem: u64,
    pub targets: TargetBytes,
    pub class_weights: bool,
    pub sample_weights: bool,
    pub write_grad: bool,
    pub reduction: Reduction,
    pub lse: bool,
    pub correct: bool,
    pub argmax: bool,
    pub entropy: bool,
    /// Blocks of rows of the target statistics and the loss's reduction.
    pub groups: u64,
    /// The rows kernel sums the loss's tiles itself (`RowsPass::tiles`).
    pub tiles: bool,
    /// A vocabulary shard's finish: its target statistics read each row's
    /// target weight from the merged records, not the class weights.
    pub sharded: bool,
}

impl TrafficInputs {
    /// The benchmarks' call: class targets in i32, a gradient, the mean,
    /// nothing else.
    pub(crate) fn bench(elem: u64, groups: u64) -> Self {
        Self {
            elem,
            targets: TargetBytes::Class(4),
            class_weights: false,
            sample_weights: false,
            write_grad: true,
            reduction: Reduction::Mean,
            lse: false,
            correct: false,
            argmax: false,
            entropy: false,
            groups,
            tiles: false,
            sharded: false,
        }
    }

    /// Bytes of the per-row words a rows pass keeps in the scratch: the
    /// correct flags, the predicted classes, the entropies.
    fn row_scratch(&self, rows: u64) -> u64 {
        let words = [self.correct, self.argmax, self.entropy];
        4 * rows * words.iter().filter(|&&on| on).count() as u64
    }

    /// The buffer of the per-row loss terms: the caller's for `none`, the
    /// scratch's otherwise.
    fn loss_terms(&self) -> &'static str {
        match self.reduction {
            Reduction::None => "loss",
            _ => "row_loss",
        }
    }

    /// The rows' last pass's stores besides the gradient: the loss terms
    /// (or their tiles' sums, for the kernels that sum them: never split
    /// rows), the lse, the per-row scratch words.
    pub(super) fn row_writes(&self, traffic: &mut Traffic, pass: &'static str, rows: u64) {
        match self.tiles {
            true => traffic.write(pass, "scratch", 4 * rows.div_ceil(TILE_ROWS)),
            false => traffic.write(pass, self.loss_terms(), 4 * rows),
        }
        traffic.write(pass, "lse", 4 * rows * u64::from(self.lse));
        traffic.write(pass, "scratch", self.row_scratch(rows));
    }

    /// Whether the loss (or the correct count) is reduced after the rows.
    fn reduces(&self) -> bool {
        self.reduction != Reduction::None || self.correct
    }
}

/// The least a call of `layout` must move: its inputs read once and its
/// outputs written once.
pub(crate) fn minimum(layout: &Layout, t: &TrafficInputs) -> u64 {
    let (rows, len) = (layout.rows() as u64, layout.len() as u64);
    let targets = match t.targets {
        TargetBytes::Class(b) => rows * b,
        TargetBytes::Probs => 4 * len,
    };
    let weights = 4 * layout.classes as u64 * u64::from(t.class_weights)
        + 4 * rows * u64::from(t.sample_weights);
    let grad = if t.write_grad { len * t.elem } else { 0 };
    let loss = match t.reduction {
        Reduction::None => 4 * rows,
        _ => 4,
    };
    let outputs = 4 * rows * u64::from(t.lse)
        + 4 * u64::from(t.correct)
        + 4 * rows * (u64::from(t.argmax) + u64::from(t.entropy));
    len * t.elem + targets + weights + grad + loss + outputs + STATUS_SIZE
}

/// The bytes each pass of a call of `layout` run by `strategy` moves;
/// `entry` is its rows pass's entry point (the mixed kernel's may differ
/// from the strategy's with the buffers' views).
#[cfg(test)]
pub(crate) fn cross_entropy_traffic(
    layout: &Layout,
    strategy: RowStrategy,
    entry: &'static str,
    t: &TrafficInputs,
) -> Traffic {
    CallCount::new(CountedCall::Whole { strategy, entry }, *t).whole(layout)
}

/// Which call a count models.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CountedCall {
    /// A call of its own, its rows run by `strategy` at `entry`.
    Whole {
        strategy: RowStrategy,
        entry: &'static str,
    },
    /// One of a vocabulary shard's calls, its rows in `splits` spans.
    Shard { splits: u64, call: ShardCall },
}

/// A call's count piece by piece, in the phases its dispatches run in
/// (`record::Phases`): the passes before the rows, the rows passes of each
/// window of rows, the passes after them. A fused linear call counts its
/// products between the pieces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallCount {
    pub call: CountedCall,
    pub t: TrafficInputs,
}

impl CallCount {
    pub(crate) fn new(call: CountedCall, t: TrafficInputs) -> Self {
        // A shard's finish reads each row's target weight from the records.
        let sharded = matches!(
            call,
            CountedCall::Shard {
                call: ShardCall::Finish,
                ..
            }
        );
        Self {
            call,
            t: TrafficInputs { sharded, ..t },
        }
    }

    /// The count of a checked call, as planned.
    pub(crate) fn of(
        c: &Checked<'_>,
        opts: &CrossEntropyOptions,
        b: &CrossEntropyBuffers<'_>,
        plan: &CallPlan,
        rows: &RowsPass,
        shard: Option<&ShardPass<'_>>,
    ) -> Self {
        let call = match shard {
            None => CountedCall::Whole {
                strategy: plan.strategy,
                entry: rows.entry,
            },
            Some(s) => CountedCall::Shard {
                splits: plan.strategy.splits() as u64,
                call: ShardCall::of(s, opts, c),
            },
        };
        Self::new(call, TrafficInputs::of(c, opts, b, plan, rows))
    }

    /// The least the call of `layout` must move.
    pub(crate) fn minimum(&self, layout: &Layout) -> u64 {
        match self.call {
            CountedCall::Whole { .. } => minimum(layout, &self.t),
            CountedCall::Shard { call, .. } => call.minimum(layout, &self.t),
        }
    }

    /// Whether the call has the passes around its rows (a shard's partial
    /// has none: no statistics, no reduction).
    fn surrounded(&self) -> bool {
        !matches!(
            self.call,
            CountedCall::Shard {
                call: ShardCall::Partial { .. },
                ..
            }
        )
    }

    /// The passes before the rows: the target statistics.
    pub(crate) fn before(&self, traffic: &mut Traffic, layout: &Layout) {
        if self.surrounded() {
            target_stats(traffic, layout, &self.t);
        }
    }

    /// The rows passes over `rows`, the layout of a window of the call's
    /// rows (or of all of them).
    pub(crate) fn rows(&self, traffic: &mut Traffic, rows: &Layout) {
        match self.call {
            // An empty batch runs no rows pass.
            _ if rows.rows() == 0 => {}
            CountedCall::Whole {
                strategy: RowStrategy::Split { splits },
                ..
            } => split_passes(traffic, rows, splits as u64, &self.t),
            CountedCall::Whole { strategy, entry } => {
                rows_pass(traffic, rows, strategy, entry, &self.t)
            }
            CountedCall::Shard { splits, call } => call.rows(traffic, rows, splits, &self.t),
        }
    }

    /// The passes after the rows: the loss's reduction.
    pub(crate) fn after(&self, traffic: &mut Traffic, layout: &Layout) {
        if self.surrounded() {
            reduction(traffic, layout, &self.t);
        }
    }

    /// The count of the call of `layout` whole.
    pub(crate) fn whole(&self, layout: &Layout) -> Traffic {
        let mut traffic = Traffic::new(self.minimum(layout));
        self.before(&mut traffic, layout);
        self.rows(&mut traffic, layout);
        self.after(&mut traffic, layout);
        traffic
    }
}

/// The loads of each row's target and weights in a pass over `rows` rows
/// of `classes` classes: a row's class weight is a gather from a vector of
/// `classes` words, which counts no more than the vector.
pub(super) fn row_gathers(
    traffic: &mut Traffic,
    pass: &'static str,
    (rows, classes): (u64, u64),
    t: &TrafficInputs,
) {
    if let TargetBytes::Class(b) = t.targets {
        traffic.read(pass, "targets", rows * b);
        if t.class_weights {
            traffic.read(pass, "weights", 4 * rows.min(classes));
        }
    }
    if t.sample_weights {
        traffic.read(pass, "sample_weights", 4 * rows);
    }
}

/// `target_partials` (past one block of rows) and `target_stats`: the
/// mean's denominator, the class weights' sum, the range check.
pub(super) fn target_stats(traffic: &mut Traffic, layout: &Layout, t: &TrafficInputs) {
    let rows = layout.rows() as u64;
    let first = if t.groups > 1 {
        "target_partials"
    } else {
        "target_stats"
    };
    match t.targets {
        TargetBytes::Class(b) if t.sharded => {
            traffic.read(first, "targets", rows * b);
            let weighted = t.class_weights || t.sample_weights;
            traffic.read(first, "records", 4 * rows * u64::from(weighted));
            traffic.read(
                first,
                "sample_weights",
                4 * rows * u64::from(t.sample_weights),
            );
        }
        TargetBytes::Class(_) => row_gathers(traffic, first, (rows, layout.classes as u64), t),
        TargetBytes::Probs => {}
    }
    if t.groups > 1 {
        traffic.write(first, "scratch", 16 * t.groups);
        traffic.read("target_stats", "scratch", 16 * t.groups);
    }
    if t.class_weights {
        traffic.read("target_stats", "weights", 4 * layout.classes as u64);
    }
    traffic.write("target_stats", "scratch", 16);
    traffic.write("target_stats", "status", STATUS_SIZE);
}

/// One rows kernel over every row (and the mixed kernel's seams).
fn rows_pass(
    traffic: &mut Traffic,
    layout: &Layout,
    strategy: RowStrategy,
    entry: &'static str,
    t: &TrafficInputs,
) {
    let (rows, len) = (layout.rows() as u64, layout.len() as u64);
    // The fixed kernels, and the team kernels up to `TEAM_HELD_MAX`
    // elements a lane, hold their row in registers between the passes.
    let reads = if strategy.reads_once(layout.classes) {
        1
    } else {
        2
    };
    traffic.read(entry, "input", reads * len * t.elem);
    if t.targets == TargetBytes::Probs {
        traffic.read(entry, "targets", 2 * 4 * len);
    }
    row_gathers(traffic, entry, (rows, layout.classes as u64), t);
    if t.write_grad {
        traffic.write(entry, "grad", len * t.elem);
    }
    t.row_writes(traffic, entry, rows);
    if entry == "rows_wide_mixed" && t.write_grad {
        // Each row's plan, for the vec4 it shares with the next row: its
        // up to 3 + 3 elements read and written again.
        traffic.write(entry, "scratch", 4 * PLAN_WORDS * rows);
        traffic.read("mixed_seams", "scratch", 4 * PLAN_WORDS * rows);
        traffic.read("mixed_seams", "input", 4 * t.elem * rows);
        traffic.write("mixed_seams", "grad", 4 * t.elem * rows);
        row_gathers(traffic, "mixed_seams", (rows, layout.classes as u64), t);
    }
}

/// Split rows: each span's partial, each span's gradient from all the
/// row's partials (every workgroup merges them), each row's loss.
fn split_passes(traffic: &mut Traffic, layout: &Layout, splits: u64, t: &TrafficInputs) {
    let (rows, len) = (layout.rows() as u64, layout.len() as u64);
    let part = 4 * PART_WORDS;
    let probs = if t.targets == TargetBytes::Probs {
        4 * len
    } else {
        0
    };
    traffic.read("split_partial", "input", len * t.elem);
    traffic.read("split_partial", "targets", probs);
    traffic.write("split_partial", "scratch", part * rows * splits);
    traffic.read("split_rows", "scratch", part * rows * splits * splits);
    traffic.read("split_rows", "input", len * t.elem);
    traffic.read("split_rows", "targets", probs);
    row_gathers(
        traffic,
        "split_rows",
        (rows * splits, layout.classes as u64),
        t,
    );
    if t.write_grad {
        traffic.write("split_rows", "grad", len * t.elem);
    }
    traffic.write("split_rows", "scratch", 4 * rows * splits);
    traffic.read("split_finish", "scratch", (part + 4) * rows * splits);
    row_gathers(traffic, "split_finish", (rows, layout.classes as u64), t);
    t.row_writes(traffic, "split_finish", rows);
}

/// The loss's reduction (`loss_partials` past one block, `reduce_loss`)
/// and the per-row outputs' copy (`row_outputs`).
pub(super) fn reduction(traffic: &mut Traffic, layout: &Layout, t: &TrafficInputs) {
    let rows = layout.rows() as u64;
    if t.reduces() {
        let summed = t.reduction != Reduction::None && rows > 0;
        let tiles = 4 * rows.div_ceil(TILE_ROWS) * u64::from(summed);
        if summed && !t.tiles {
            traffic.read("loss_tiles", "row_loss", 4 * rows);
            traffic.write("loss_tiles", "scratch", tiles);
        }
        let flags = 4 * rows * u64::from(t.correct);
        let last = "reduce_loss";
        let first = if t.groups > 1 { "loss_partials" } else { last };
        traffic.read(first, "scratch", tiles + flags);
        if t.groups > 1 {
            traffic.write(first, "scratch", 16 * t.groups);
            traffic.read(last, "scratch", 16 * t.groups);
        }
        traffic.read(last, "scratch", 16);
        traffic.write(last, "loss", 4 + 4 * u64::from(t.correct));
    }
    for (on, buffer) in [(t.argmax, "argmax"), (t.entropy, "entropy")] {
        traffic.read("row_outputs", "scratch", 4 * rows * u64::from(on));
        traffic.write("row_outputs", buffer, 4 * rows * u64::from(on));
    }
}

impl TrafficInputs {
    /// What the count needs of a checked call.
    pub(super) fn of(
        c: &Checked<'_>,
        opts: &CrossEntropyOptions,
        b: &CrossEntropyBuffers<'_>,
        plan: &CallPlan,
        rows: &RowsPass,
    ) -> Self {
        Self {
            elem: c.elem,
            targets: match c.target_kind {
                TARGET_PROBS => TargetBytes::Probs,
                TARGET_U8 => TargetBytes::Class(1),
                _ => TargetBytes::Class(4),
            },
            class_weights: b.weights.is_some(),
            sample_weights: b.sample_weights.is_some(),
            write_grad: b.grad.is_some() || b.in_place,
            reduction: opts.reduction,
            lse: b.lse.is_some(),
            correct: c.correct,
            argmax: c.argmax,
            entropy: c.entropy,
            groups: plan.groups,
            tiles: rows.tiles,
            sharded: false,
        }
    }
}

// The reference shapes' counts, by hand and pinned, and the invariants.
#[cfg(test)]
#[path = "traffic_tests.rs"]
mod tests;
