//! The GPU table's plans on this adapter (`Context::with_device_class`):
//! what the class changes, and property tests at the GPU table's switch
//! points against the CPU twin, so that the plans a GPU runs are checked
//! where CI has no GPU.

use crate::common::generators::{reduction, zero_or};
use crate::common::{ctx, gpu_class_ctx, Rng};
use proptest::prelude::*;
use xent::bench::{BenchCase, Prepared};
use xent::{cpu, CrossEntropyOptions, DeviceClass, Targets, Tolerance, Weights};

/// The rows pass each class plans for a shape (the byte count's passes
/// name the dispatches).
fn rows_pass(ctx: &xent::Context, dims: &[usize]) -> &'static str {
    let traffic = Prepared::new(ctx, &BenchCase::new(dims))
        .unwrap()
        .traffic()
        .unwrap();
    traffic.passes()[1]
}

#[test]
fn the_class_chooses_the_table() {
    let (Some(ctx), Some(gpu)) = (ctx(), gpu_class_ctx()) else {
        return;
    };
    assert_eq!(gpu.device_class(), DeviceClass::Gpu);
    // A team of lanes per row on a GPU; few long rows split over
    // workgroups to fill it.
    assert_eq!(rows_pass(gpu, &[4096, 64]), "rows_team4");
    assert_eq!(rows_pass(gpu, &[64, 4099]), "rows_team");
    assert_eq!(rows_pass(gpu, &[4, 20_000]), "split_partial");
    // Maps past an invocation per pixel: a team per pixel, pixels side by side.
    assert_eq!(rows_pass(gpu, &[1, 8066, 4]), "rows_map_team");
    assert_eq!(rows_pass(gpu, &[1, 8065, 4]), "rows_pixels4");
    if ctx.device_class() == DeviceClass::Software {
        assert_eq!(rows_pass(ctx, &[4096, 64]), "rows_narrow4_fixed");
        let software = xent::Context::from_env()
            .unwrap()
            .with_device_class(DeviceClass::Software);
        assert_eq!(rows_pass(&software, &[4096, 64]), "rows_narrow4_fixed");
    }
}

/// Class counts around the GPU table's switch points: the team's lanes
/// (one up to C = 8, doubling at 8·2^k + 1, all 256 from 1 025), the split
/// past 16 384 classes for rows too few to fill a GPU, its spans of 2 048
/// and its most spans (128); maps of 4096 classes or fewer (an invocation
/// per pixel), and longer ones: past 8 065 classes a team per pixel for
/// inner % 4 = 0, past 12 785 for the others.
fn gpu_classes() -> impl Strategy<Value = usize> {
    prop_oneof![
        1usize..=10,
        31usize..=34,
        1020usize..=1030,
        16_382usize..=16_386,
        20_000usize..=70_000,
        262_100usize..=262_200,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn gpu_plans_match_cpu_around_the_gpu_switch_points(
        classes in gpu_classes(),
        rows in prop_oneof![1usize..=4, 5usize..600],
        map in prop::bool::weighted(0.2),
        reduction in reduction(),
        smoothing in zero_or(0.2),
        weighted in any::<bool>(),
        soft in prop::bool::weighted(0.2),
        extras in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let Some(ctx) = gpu_class_ctx() else { return Ok(()) };
        let rows = rows.min((600_000 / classes).max(1));
        // Maps of up to 4096 classes, or past the 8 065 of an invocation per pixel.
        let dims = match (map, classes <= 4096) {
            (false, _) => vec![rows, classes],
            (true, true) => vec![1, classes, 4 * rows.min(64)],
            (true, false) => vec![1, classes.clamp(8066, 70_000), [4, 8, 3][rows % 3]],
        };
        let layout = xent::Layout::from_dims(&dims).unwrap();
        let mut rng = Rng(seed);
        let x: Vec<f32> = (0..layout.len()).map(|_| rng.uniform(-8.0, 8.0)).collect();
        let t: Vec<i64> = (0..layout.rows()).map(|_| rng.below(layout.classes) as i64).collect();
        let w: Vec<f32> = (0..layout.classes).map(|_| rng.uniform(0.5, 2.0)).collect();
        let sw: Vec<f32> = (0..layout.rows()).map(|_| rng.uniform(0.5, 2.0)).collect();
        let weights = Weights { class: weighted.then_some(&w[..]), sample: weighted.then_some(&sw[..]) };
        let probs = if soft { crate::common::soft_targets(&x, &dims) } else { Vec::new() };
        let targets = if soft { Targets::Probs(&probs) } else { Targets::I64(&t) };
        let opts = CrossEntropyOptions { reduction, label_smoothing: smoothing, ..Default::default() };
        let returns = xent::Returns { lse: extras, correct: extras, argmax: extras, entropy: extras, ..Default::default() };
        let fail = |e: xent::Error| TestCaseError::fail(format!("{dims:?} soft {soft}: {e}"));
        let gpu = ctx.cross_entropy_with(&x, &dims, targets, weights, &opts, &returns).map_err(fail)?;
        let want = cpu::cross_entropy_with(&x, &dims, targets, weights, &opts).unwrap();
        let tol = Tolerance::default();
        tol.compare_cross_entropy(&gpu, &want, &tol).map_err(fail)?;
    }
}

/// Maps too long for an invocation per pixel run a team per pixel on GPUs
/// (`rows_map_team`: 16 lanes, 32 past 16 lanes' loop bound), pixels side by
/// side, workgroups straddling images: every option against the twin.
#[test]
fn map_teams_match_the_cpu_with_every_option() {
    let Some(ctx) = gpu_class_ctx() else { return };
    for (dims, soft) in [
        (vec![1usize, 8066, 4], false),
        (vec![3, 12_786, 3], true),
        (vec![2, 9000, 20], false),
        (vec![1, 200_000, 2], false),
    ] {
        let layout = xent::Layout::from_dims(&dims).unwrap();
        let mut rng = Rng(dims.iter().product::<usize>() as u64);
        let x: Vec<f32> = (0..layout.len()).map(|_| rng.uniform(-8.0, 8.0)).collect();
        let t: Vec<i64> = (0..layout.rows())
            .map(|i| match i % 7 {
                3 => -100,
                _ => rng.below(layout.classes) as i64,
            })
            .collect();
        let w: Vec<f32> = (0..layout.classes).map(|_| rng.uniform(0.5, 2.0)).collect();
        let probs = crate::common::soft_targets(&x, &dims);
        let targets = if soft {
            Targets::Probs(&probs)
        } else {
            Targets::I64(&t)
        };
        let weights = Weights {
            class: Some(&w),
            sample: None,
        };
        let returns = xent::Returns::ROWS;
        for reduction in [xent::Reduction::Mean, xent::Reduction::None] {
            let opts = CrossEntropyOptions {
                reduction,
                label_smoothing: 0.1,
                ..Default::default()
            };
            let what = format!("{dims:?} soft {soft} {reduction:?}");
            let gpu = ctx
                .cross_entropy_with(&x, &dims, targets, weights, &opts, &returns)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let want = cpu::cross_entropy_with(&x, &dims, targets, weights, &opts).unwrap();
            let tol = Tolerance::default();
            tol.compare_cross_entropy(&gpu, &want, &tol)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
        }
    }
}
