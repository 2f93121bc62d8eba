//! Unit tests of the byte count (`traffic.rs`): the reference shapes in
//! both tables, pinned; a call counted by hand; no plan under the minimum.

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
    let inputs = TrafficInputs {
        // On GPUs only (loss_tiles.wgsl).
        tiles: strategy.sums_tiles() && device.class == DeviceClass::Gpu,
        ..TrafficInputs::bench(elem, stats_groups(layout.rows() as u64))
    };
    cross_entropy_traffic(&layout, strategy, strategy.entry(layout.classes), &inputs)
}

/// `planned / minimum` of the benchmarks' call (mean, i32 class
/// targets, a gradient) on the reference shapes, in f32 and bf16, as
/// the two tables plan them today. The GPU table's teams hold rows of
/// up to 16 384 classes in registers, its split rows (few, past that)
/// are read twice, 1.5 and up; the software table's wide kernels read
/// rows twice and its fixed kernels hold short rows (32 classes, a
/// 21-class map). What stays above 1 for short rows on a GPU is the
/// targets' second read (4 bytes a row): their kernels sum the loss's
/// tiles themselves; on a software adapter the losses also go through
/// `loss_tiles` (8 bytes a row more), where barriers cost more than bytes.
#[test]
fn the_reference_shapes_move_what_their_plans_say() {
    let pinned: [(&[usize], [f64; 4]); 5] = [
        // GPU f32, GPU bf16, software f32, software bf16
        (&[4096, 4096], [1.0004, 1.0007, 1.5003, 1.5006]),
        (&[256, 50_257], [1.5566, 1.6132, 1.5003, 1.5005]),
        (&[65_536, 32], [1.0159, 1.0313, 1.0467, 1.0919]),
        (&[16, 128_256], [1.6400, 1.7799, 1.5000, 1.5000]),
        (&[8, 21, 256, 256], [1.0240, 1.0470, 1.0705, 1.1379]),
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
                "{dims:?}: {:.5} for {want}",
                t.ratio()
            );
            assert!(t.planned() >= t.minimum, "{dims:?}");
        }
    }
}

/// A (B, V, T) map past an invocation per pixel (8 × 32 000 × 512) on a
/// GPU: a team per pixel, coalesced, reads its pixel twice (1.5 and the
/// targets' and losses' bytes, a few per 32 000 classes).
#[test]
fn map_teams_read_their_pixels_twice() {
    for (elem, want) in [(4, 1.5000), (2, 1.5001)] {
        let t = bench_traffic(&[8, 32_000, 512], elem, PROFILES[0]);
        assert_eq!(t.passes()[1], "rows_map_team");
        assert!((t.ratio() - want).abs() < 5e-5, "{:.5}", t.ratio());
    }
}

/// The minimum by hand for 4096 × 4096 in f32: the logits and the
/// targets read, the gradient, the loss and the status written; the
/// team kernel holds its rows (16 classes a lane) and reads them once,
/// the targets twice (the statistics, the rows); a row a workgroup,
/// the losses go through the scratch to `loss_tiles` (64 tiles), whose
/// sums `reduce_loss` reads with the statistics (16 bytes each way).
#[test]
fn a_square_call_counted_by_hand() {
    let t = bench_traffic(&[4096, 4096], 4, PROFILES[0]);
    let (len, rows) = (4096 * 4096u64, 4096u64);
    assert_eq!(t.minimum, 4 * len + 4 * rows + 4 * len + 4 + 16);
    let extra = 4 * rows + 2 * 4 * rows + 2 * 4 * 64 + 16 + 16;
    assert_eq!(t.planned(), t.minimum + extra);
    let passes = ["target_stats", "rows_team4", "loss_tiles", "reduce_loss"];
    assert_eq!(t.passes(), passes);
    // 65 536 × 32: teams of 4 lanes, 64 rows a workgroup, sum their
    // own tiles: no per-row loss, no loss_tiles.
    let t = bench_traffic(&[65_536, 32], 4, PROFILES[0]);
    assert_eq!(
        t.passes(),
        [
            "target_partials",
            "target_stats",
            "rows_team4",
            "loss_partials",
            "reduce_loss"
        ]
    );
    let rows = 65_536;
    // The target and loss blocks (8 of each) written and read, 16 bytes each.
    let extra = 4 * rows + 2 * 4 * (rows / 64) + 4 * 16 * 8 + 16 + 16;
    assert_eq!(t.planned(), t.minimum + extra);
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
                let options = TrafficInputs {
                    tiles: strategy.sums_tiles() && options.reduction != Reduction::None,
                    ..options
                };
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
