//! The GPU table of softmax (teams of neighbouring invocations per row, the
//! row held in registers where it fits, few long rows split), forced on
//! whatever adapter runs the tests, against the CPU twin at its switch
//! points: team sizes, the held sizes forward (16 384 classes) and backward
//! (8 192), scalar and vec4 teams, streaming teams past them, split rows,
//! maps held or not, and teams per pixel for maps past 8 192 classes.

use super::loop_bounds::softmax_matches_on;
use crate::common::generators::kd_dims;
use crate::common::{gpu_class_ctx, Rng};
use proptest::prelude::*;
use xent::{cpu, Tolerance};

#[test]
fn the_gpu_table_matches_the_cpu_at_its_switch_points() {
    let Some(ctx) = gpu_class_ctx() else { return };
    for dims in [
        // Teams of 1, 2 and 4 lanes, scalar and vec4, rows past a workgroup.
        &[300, 1][..],
        &[300, 8],
        &[300, 9],
        &[70, 31],
        &[70, 32],
        &[70, 33],
        // All 256 lanes; the largest held rows, forward and backward.
        &[3, 2047],
        &[3, 2048],
        &[2, 8190],
        &[2, 8192],
        &[2, 8193],
        &[2, 16_383],
        &[2, 16_384],
        // Too long to hold and few: split.
        &[2, 16_385],
        &[2, 16_388],
        // Maps: an invocation per pixel, holding up to 64 classes forward
        // and 32 backward.
        &[2, 7, 9],
        &[2, 32, 9],
        &[2, 33, 9],
        &[2, 64, 9],
        &[2, 65, 9],
        // Maps past an invocation per pixel: a team of 16 lanes per pixel,
        // 16 pixels side by side (workgroups straddling images), then 32.
        &[2, 8192, 3],
        &[3, 8193, 7],
        &[1, 200_000, 2],
    ] {
        softmax_matches_on(ctx, dims);
    }
}

/// Enough rows that a team runs rows too long to hold, reading them twice:
/// the backward past 8 192 classes (scalar and vec4), the forward past
/// 16 384.
#[test]
fn streaming_teams_match_the_cpu() {
    let Some(ctx) = gpu_class_ctx() else { return };
    for dims in [&[1024, 8193][..], &[1024, 8196], &[1024, 16_385]] {
        softmax_matches_on(ctx, dims);
    }
}

/// Row counts around a workgroup's teams, classes around the lanes'
/// switch points.
fn team_dims() -> impl Strategy<Value = Vec<usize>> {
    let classes = prop_oneof![
        1usize..=40,
        prop::sample::select(vec![
            63, 64, 65, 127, 128, 129, 255, 256, 257, 1023, 1024, 1025
        ]),
    ];
    (1usize..=80, classes).prop_map(|(n, c)| vec![n, c])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_gpu_table_matches_the_cpu_on_generated_shapes(
        dims in prop_oneof![team_dims(), kd_dims()],
        seed in any::<u64>(),
    ) {
        let Some(ctx) = gpu_class_ctx() else { return Ok(()) };
        let layout = xent::Layout::from_dims(&dims).unwrap();
        let mut rng = Rng(seed);
        let x: Vec<f32> = (0..layout.len()).map(|_| rng.uniform(-10.0, 10.0)).collect();
        let dy: Vec<f32> = (0..layout.len()).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let tol = Tolerance::default();
        let fail = |e: xent::Error| TestCaseError::fail(format!("{dims:?}: {e}"));
        let log = xent::SoftmaxOptions { kind: xent::SoftmaxKind::LogSoftmax };
        let y = ctx.softmax(&x, &dims, &xent::SoftmaxOptions::default()).map_err(fail)?;
        tol.compare("softmax", &y, &cpu::softmax(&x, &dims).unwrap()).map_err(fail)?;
        let ly = ctx.softmax(&x, &dims, &log).map_err(fail)?;
        tol.check("log_softmax", &ly, &cpu::log_softmax_reference(&x, &dims).unwrap()).map_err(fail)?;
        let dx = ctx.softmax_backward(&y, &dy, &dims, &xent::SoftmaxOptions::default()).map_err(fail)?;
        tol.check("softmax backward", &dx, &cpu::softmax_backward_reference(&y, &dy, &dims).unwrap()).map_err(fail)?;
        let ldx = ctx.softmax_backward(&ly, &dy, &dims, &log).map_err(fail)?;
        tol.check("log_softmax backward", &ldx, &cpu::log_softmax_backward_reference(&ly, &dy, &dims).unwrap()).map_err(fail)?;
    }
}
