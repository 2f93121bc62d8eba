//! The byte yardstick of a cross-entropy call (`src/core/traffic.rs`):
//! what each of its passes loads and stores, counted from the strategy and
//! the call's options, beside the op's minimum (the logits and the targets
//! read once, the gradient and each output written once).
//!
//! Modelled as the kernels access memory: a two-pass rows kernel reads its
//! row twice (the second read counts even where a cache serves it); a
//! kernel that holds its row in registers (`rows_*_fixed`) reads it once;
//! probability targets are read by both passes of every kernel; a gather
//! (a row's class weight, its target) is one load of its word. The call
//! statistics each workgroup reads (16 bytes, cached) are left out, as the
//! uniform is.

use super::buffers::{CrossEntropyBuffers, TARGET_PROBS, TARGET_U8};
use super::check::Checked;
use super::options::CrossEntropyOptions;
use super::plan::{CallPlan, PART_WORDS};
use super::strategy::RowStrategy;
use crate::core::shape::Layout;
use crate::core::status::STATUS_SIZE;
use crate::core::traffic::Traffic;
use crate::core::Reduction;

/// Words of the mixed kernel's per-row plan (`PLAN_WORDS` in the shader).
const PLAN_BYTES: u64 = 4 * 9;

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
}

impl TrafficInputs {
    /// The benchmarks' call: class targets in i32, a gradient, the mean,
    /// nothing else.
    #[cfg(test)]
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

    /// The rows' last pass's stores besides the gradient: the loss terms,
    /// the lse, the per-row scratch words.
    fn row_writes(&self, traffic: &mut Traffic, pass: &'static str, rows: u64) {
        traffic.write(pass, self.loss_terms(), 4 * rows);
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
pub(crate) fn cross_entropy_traffic(
    layout: &Layout,
    strategy: RowStrategy,
    entry: &'static str,
    t: &TrafficInputs,
) -> Traffic {
    let mut traffic = Traffic::new(minimum(layout, t));
    target_stats(&mut traffic, layout, t);
    match strategy {
        // An empty batch runs no rows pass.
        _ if layout.rows() == 0 => {}
        RowStrategy::Split { splits } => split_passes(&mut traffic, layout, splits as u64, t),
        _ => rows_pass(&mut traffic, layout, strategy, entry, t),
    }
    reduction(&mut traffic, layout, t);
    traffic
}

/// The loads of each row's target and weights in a pass over `rows` rows
/// of `classes` classes: a row's class weight is a gather from a vector of
/// `classes` words, which counts no more than the vector.
fn row_gathers(
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
fn target_stats(traffic: &mut Traffic, layout: &Layout, t: &TrafficInputs) {
    let rows = layout.rows() as u64;
    let first = if t.groups > 1 {
        "target_partials"
    } else {
        "target_stats"
    };
    if matches!(t.targets, TargetBytes::Class(_)) {
        row_gathers(traffic, first, (rows, layout.classes as u64), t);
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
        traffic.write(entry, "scratch", PLAN_BYTES * rows);
        traffic.read("mixed_seams", "scratch", PLAN_BYTES * rows);
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
fn reduction(traffic: &mut Traffic, layout: &Layout, t: &TrafficInputs) {
    let rows = layout.rows() as u64;
    if t.reduces() {
        let terms = 4 * rows * u64::from(t.reduction != Reduction::None);
        let flags = 4 * rows * u64::from(t.correct);
        let last = "reduce_loss";
        let first = if t.groups > 1 { "loss_partials" } else { last };
        traffic.read(first, "row_loss", terms);
        traffic.read(first, "scratch", flags);
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

/// The count of a checked call's passes, as planned.
pub(crate) fn call_traffic(
    c: &Checked<'_>,
    opts: &CrossEntropyOptions,
    b: &CrossEntropyBuffers<'_>,
    plan: &CallPlan,
    entry: &'static str,
) -> Traffic {
    let inputs = TrafficInputs {
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
    };
    cross_entropy_traffic(&c.layout, plan.strategy, entry, &inputs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::device::{DeviceClass, DeviceProfile};
    use crate::ops::cross_entropy::plan::stats_groups;

    /// The reference shapes' plans on a GPU with 32-lane subgroups and on
    /// a software adapter without (lavapipe's workgroup of 8).
    const PROFILES: [DeviceProfile; 2] = [
        DeviceProfile {
            class: DeviceClass::Gpu,
            wide_wg: 32,
            subgroups: true,
        },
        DeviceProfile {
            class: DeviceClass::Software,
            wide_wg: 8,
            subgroups: false,
        },
    ];

    fn bench_traffic(dims: &[usize], elem: u64, device: DeviceProfile) -> Traffic {
        let layout = Layout::from_dims(dims).unwrap();
        let strategy = RowStrategy::choose(&layout, device).unwrap();
        let inputs = TrafficInputs::bench(elem, stats_groups(layout.rows() as u64));
        cross_entropy_traffic(&layout, strategy, strategy.entry(layout.classes), &inputs)
    }

    /// `planned / minimum` of the benchmarks' call (mean, i32 class
    /// targets, a gradient) on the reference shapes, in f32 and bf16, as
    /// the two tables plan them today. The GPU table's teams hold rows of
    /// up to 16 384 classes in registers, its split rows (few, past that)
    /// are read twice, 1.5 and up; the software table's wide kernels read
    /// rows twice and its fixed kernels hold short rows (32 classes, a
    /// 21-class map). What stays above 1 for rows held is the targets'
    /// second read and the per-row losses' round trip through the scratch:
    /// 12 bytes a row, felt by short rows.
    #[test]
    fn the_reference_shapes_move_what_their_plans_say() {
        let pinned: [(&[usize], [f64; 4]); 5] = [
            // GPU f32, GPU bf16, software f32, software bf16
            (&[4096, 4096], [1.0004, 1.0007, 1.5003, 1.5006]),
            (&[256, 50_257], [1.5566, 1.6132, 1.5003, 1.5005]),
            (&[65_536, 32], [1.0462, 1.0910, 1.0462, 1.0910]),
            (&[16, 128_256], [1.6400, 1.7799, 1.5000, 1.5000]),
            (&[8, 21, 256, 256], [1.0698, 1.1365, 1.0698, 1.1365]),
        ];
        for (dims, ratios) in pinned {
            let got = [
                bench_traffic(dims, 4, PROFILES[0]),
                bench_traffic(dims, 2, PROFILES[0]),
                bench_traffic(dims, 4, PROFILES[1]),
                bench_traffic(dims, 2, PROFILES[1]),
            ];
            for (t, want) in got.iter().zip(ratios) {
                assert!(
                    (t.ratio() - want).abs() < 5e-5,
                    "{dims:?}: {} for {want}",
                    t.ratio()
                );
                assert!(t.planned() >= t.minimum, "{dims:?}");
            }
        }
    }

    /// The minimum by hand for 4096 × 4096 in f32: the logits and the
    /// targets read, the gradient, the loss and the status written; the
    /// team kernel holds its rows (16 classes a lane) and reads them once,
    /// the targets twice (the statistics, the rows), and the losses go
    /// through the scratch.
    #[test]
    fn a_square_call_counted_by_hand() {
        let t = bench_traffic(&[4096, 4096], 4, PROFILES[0]);
        let (len, rows) = (4096 * 4096u64, 4096u64);
        assert_eq!(t.minimum, 4 * len + 4 * rows + 4 * len + 4 + 16);
        let extra = 4 * rows + 2 * 4 * rows + 16 + 16;
        assert_eq!(t.planned(), t.minimum + extra);
        assert_eq!(t.passes(), ["target_stats", "rows_team4", "reduce_loss"]);
    }

    /// Every strategy that serves a shape, every option that changes the
    /// passes: the plan never moves less than the minimum, and the kernels
    /// that hold their rows (fixed, teams up to 16 384 classes) read them
    /// once.
    #[test]
    fn no_plan_moves_less_than_the_minimum() {
        let strategies = |classes: usize| {
            let lanes = super::super::strategy::team_lanes(classes);
            [
                RowStrategy::Wide,
                RowStrategy::Wide4,
                RowStrategy::WideMixed,
                RowStrategy::Narrow,
                RowStrategy::Narrow4,
                RowStrategy::Pixels4,
                RowStrategy::Split { splits: 3 },
                RowStrategy::Team { lanes },
                RowStrategy::Team4 { lanes },
            ]
        };
        for dims in [
            &[3, 8][..],
            &[20_000, 12],
            &[2, 5, 4, 4],
            &[1, 100_000],
            &[0, 7],
        ] {
            let layout = Layout::from_dims(dims).unwrap();
            for strategy in strategies(layout.classes) {
                for options in option_sets(stats_groups(layout.rows() as u64)) {
                    let entry = strategy.entry(layout.classes);
                    let t = cross_entropy_traffic(&layout, strategy, entry, &options);
                    assert!(
                        t.planned() >= t.minimum,
                        "{dims:?} {strategy:?} {options:?}"
                    );
                    let input: u64 = t
                        .transfers
                        .iter()
                        .filter(|x| x.buffer == "input" && x.pass != "mixed_seams")
                        .map(|x| x.read)
                        .sum();
                    // The fixed kernels, and the teams up to 16 384 classes.
                    let team = matches!(
                        strategy,
                        RowStrategy::Team { .. } | RowStrategy::Team4 { .. }
                    );
                    let held = strategy.fixed_n(layout.classes).is_some()
                        || (team && layout.classes <= 16_384);
                    let reads = if held { 1 } else { 2 };
                    assert_eq!(
                        input,
                        reads * 2 * layout.len() as u64,
                        "{dims:?} {strategy:?}"
                    );
                }
            }
        }
    }

    /// The options one at a time, on the benchmarks' call in f16.
    fn option_sets(groups: u64) -> Vec<TrafficInputs> {
        let base = TrafficInputs::bench(2, groups);
        vec![
            base,
            TrafficInputs {
                targets: TargetBytes::Probs,
                ..base
            },
            TrafficInputs {
                targets: TargetBytes::Class(1),
                class_weights: true,
                sample_weights: true,
                ..base
            },
            TrafficInputs {
                write_grad: false,
                reduction: Reduction::None,
                ..base
            },
            TrafficInputs {
                lse: true,
                correct: true,
                argmax: true,
                entropy: true,
                ..base
            },
        ]
    }
}
