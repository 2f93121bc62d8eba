//! The byte yardstick of a vocabulary shard's calls (`ShardStage`), in the
//! terms of `traffic.rs`: each call's minimum is its own inputs read once
//! and its own outputs written once. A shard's logits are read by its
//! partial (for the records) and again by its finish (for the gradient):
//! split over calls, the row is read twice, as split rows read it.
//!
//! The partial: `split_partial` (each span's partial), `vocab_sums` (with
//! smoothing or probability targets: each span's weighted sums at the
//! range's maximum), `vocab_record` (each row's record from its spans). The
//! finish: the target statistics (each row's target weight from the merged
//! records), `vocab_grad` (each span's gradient from the merged record),
//! `vocab_loss` (each row's loss from it), the loss's reduction.

use super::check::Checked;
use super::options::{CrossEntropyOptions, InputKind};
use super::plan::PART_WORDS;
use super::shard::{partial_sums, ShardPass, ShardStage, VOCAB_RECORD_WORDS};
use super::traffic::{minimum, TargetBytes, TrafficInputs};
use crate::core::shape::Layout;
use crate::core::traffic::Traffic;

/// Bytes of a row's record.
const RECORD: u64 = 4 * VOCAB_RECORD_WORDS as u64;

/// Which of a shard's calls is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShardCall {
    /// The records; `sums`: whether `vocab_sums` runs, `logits`: whether
    /// the input is logits (its sums merge the spans' maxima first).
    Partial { sums: bool, logits: bool },
    /// The gradient and the loss from the merged records.
    Finish,
}

impl ShardCall {
    /// The call `shard` records, as checked and planned.
    pub(crate) fn of(shard: &ShardPass<'_>, opts: &CrossEntropyOptions, c: &Checked<'_>) -> Self {
        match shard.stage {
            ShardStage::Partial { .. } => ShardCall::Partial {
                sums: partial_sums(opts, c.chunked_targets),
                logits: opts.input == InputKind::Logits,
            },
            ShardStage::Finish { .. } => ShardCall::Finish,
        }
    }

    /// The call's own inputs read once and its own outputs written once.
    pub(super) fn minimum(self, layout: &Layout, t: &TrafficInputs) -> u64 {
        let rows = layout.rows() as u64;
        match self {
            ShardCall::Partial { .. } => {
                let input = layout.len() as u64 * t.elem;
                let weights = 4 * layout.classes as u64 * u64::from(t.class_weights);
                input + target_bytes(layout, t, rows) + weights + rows * RECORD
            }
            ShardCall::Finish => minimum(layout, t) + rows * RECORD,
        }
    }

    /// The call's rows passes over `layout`'s rows.
    pub(super) fn rows(
        self,
        traffic: &mut Traffic,
        layout: &Layout,
        splits: u64,
        t: &TrafficInputs,
    ) {
        match self {
            ShardCall::Partial { sums, logits } => {
                partial(traffic, layout, splits, (sums, logits), t)
            }
            ShardCall::Finish => finish(traffic, layout, splits, t),
        }
    }
}

/// The targets' bytes of `rows` rows (class indices) or of the probabilities.
fn target_bytes(layout: &Layout, t: &TrafficInputs, rows: u64) -> u64 {
    match t.targets {
        TargetBytes::Class(b) => rows * b,
        TargetBytes::Probs => 4 * layout.len() as u64,
    }
}

fn partial(
    traffic: &mut Traffic,
    layout: &Layout,
    splits: u64,
    (sums, logits): (bool, bool),
    t: &TrafficInputs,
) {
    let (rows, classes) = (layout.rows() as u64, layout.classes as u64);
    let input = layout.len() as u64 * t.elem;
    let weights = 4 * classes * u64::from(t.class_weights);
    let part = 4 * PART_WORDS;
    // Each span's workgroup reads its row's target (its logit, if the
    // span holds it).
    traffic.read("split_partial", "input", input);
    traffic.read(
        "split_partial",
        "targets",
        target_bytes(layout, t, rows * splits),
    );
    traffic.write("split_partial", "scratch", part * rows * splits);
    if sums {
        let merged = part * rows * splits * splits * u64::from(logits);
        traffic.read("vocab_sums", "scratch", merged);
        traffic.read("vocab_sums", "input", input);
        if t.targets == TargetBytes::Probs {
            traffic.read("vocab_sums", "targets", 4 * layout.len() as u64);
        }
        traffic.read("vocab_sums", "weights", weights);
        traffic.write("vocab_sums", "scratch", 8 * rows * splits);
    }
    // Each row's spans merged, and their target logits and sums added.
    let sums_read = 8 * rows * splits * u64::from(sums);
    traffic.read(
        "vocab_record",
        "scratch",
        (part + 4) * rows * splits + sums_read,
    );
    if let TargetBytes::Class(b) = t.targets {
        traffic.read("vocab_record", "targets", rows * b);
        traffic.read(
            "vocab_record",
            "weights",
            4 * rows.min(classes) * u64::from(t.class_weights),
        );
    }
    traffic.write("vocab_record", "partial", rows * RECORD);
}

/// The finish's rows passes (its target statistics and reduction are a
/// whole call's, `t.sharded`).
fn finish(traffic: &mut Traffic, layout: &Layout, splits: u64, t: &TrafficInputs) {
    let (rows, classes) = (layout.rows() as u64, layout.classes as u64);
    let input = layout.len() as u64 * t.elem;
    if t.write_grad && classes > 0 {
        // Each span's workgroup reads its row's merged record.
        traffic.read("vocab_grad", "records", rows * splits * RECORD);
        traffic.read("vocab_grad", "input", input);
        if t.targets == TargetBytes::Probs {
            traffic.read("vocab_grad", "targets", 4 * layout.len() as u64);
        }
        if let TargetBytes::Class(b) = t.targets {
            traffic.read("vocab_grad", "targets", rows * splits * b);
        }
        traffic.read(
            "vocab_grad",
            "weights",
            4 * classes * u64::from(t.class_weights),
        );
        traffic.read(
            "vocab_grad",
            "sample_weights",
            4 * rows * splits * u64::from(t.sample_weights),
        );
        traffic.write("vocab_grad", "grad", input);
    }
    traffic.read("vocab_loss", "records", rows * RECORD);
    if let TargetBytes::Class(b) = t.targets {
        traffic.read("vocab_loss", "targets", rows * b);
    }
    traffic.read(
        "vocab_loss",
        "sample_weights",
        4 * rows * u64::from(t.sample_weights),
    );
    t.row_writes(traffic, "vocab_loss", rows);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::cross_entropy::traffic::{CallCount, CountedCall};

    /// The count of a shard's call over `layout` (its range of classes) in
    /// `splits` spans a row, whole.
    fn shard_traffic(layout: &Layout, splits: u64, call: ShardCall, t: &TrafficInputs) -> Traffic {
        CallCount::new(CountedCall::Shard { splits, call }, *t).whole(layout)
    }

    /// A shard of 32 000 classes of 4 096 rows in f32, split in 2 spans:
    /// its partial reads the logits once and writes the records; its
    /// finish reads them again for the gradient. Each call is near its own
    /// minimum; the two together read the logits twice.
    #[test]
    fn a_shards_calls_counted_by_hand() {
        let layout = Layout::from_dims(&[4096, 32_000]).unwrap();
        let t = TrafficInputs::bench(4, 1);
        let partial = shard_traffic(
            &layout,
            2,
            ShardCall::Partial {
                sums: false,
                logits: true,
            },
            &t,
        );
        let (rows, input) = (4096u64, 4096 * 32_000 * 4u64);
        assert_eq!(partial.minimum, input + 4 * rows + RECORD * rows);
        let part = 4 * PART_WORDS;
        let scratch = part * rows * 2 + (part + 4) * rows * 2;
        let targets = 4 * rows * 2 + 4 * rows;
        assert_eq!(partial.planned(), input + targets + scratch + RECORD * rows);
        assert_eq!(partial.passes(), ["split_partial", "vocab_record"]);
        assert!(partial.ratio() < 1.01, "{}", partial.ratio());

        let finish = shard_traffic(&layout, 2, ShardCall::Finish, &t);
        assert_eq!(
            finish.passes(),
            [
                "target_stats",
                "vocab_grad",
                "vocab_loss",
                "loss_tiles",
                "reduce_loss"
            ]
        );
        // The logits read and the gradient written once each.
        assert!(finish.ratio() < 1.01, "{}", finish.ratio());
        let both = partial.planned() + finish.planned();
        assert!(both > 3 * input && both < 3 * input + input / 50, "{both}");
    }
}
