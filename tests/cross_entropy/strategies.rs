//! Every kernel strategy forced on every shape it can serve matches the CPU
//! (in f32 and bf16, in place and through the recording API's own gradient
//! buffer), and refuses, with a typed error, exactly the shapes it cannot.

use crate::common::{ctx, Rng};
use xent::{cpu, CrossEntropyOptions, Error, Reduction, Strategy, Targets, Tolerance, Weights};

/// Shapes around each strategy's constraints: C of 1 to 5 and around 128,
/// odd and multiple-of-4 class counts, maps of inner % 4 = 0 and not; the
/// team kernels' lane counts on both sides of their switch points (C = 8,
/// 9, 16, 17, 2048, 2049 give 1, 2, 2, 4, 256, 256 lanes) with a last
/// workgroup of spare teams (300 rows of 2 lanes: 128 rows a workgroup).
const SHAPES: [&[usize]; 17] = [
    &[6, 1],
    &[6, 3],
    &[6, 4],
    &[5, 5],
    &[9, 12],
    &[4, 127],
    &[4, 128],
    &[3, 2050],
    &[300, 8],
    &[300, 9],
    &[70, 16],
    &[70, 17],
    &[3, 2048],
    &[3, 2049],
    &[2, 3, 4],
    &[2, 3, 5],
    &[2, 7, 2, 4],
];

/// Whether `strategy` serves `dims` on the host API (whose buffers hold whole vec4s).
fn serves(strategy: Strategy, dims: &[usize]) -> bool {
    let c = dims.get(1).or(dims.first()).copied().unwrap();
    let inner: usize = dims.iter().skip(2).product();
    match strategy {
        Strategy::Wide | Strategy::Team => inner == 1,
        Strategy::Wide4 | Strategy::Narrow4 | Strategy::Team4 => inner == 1 && c.is_multiple_of(4),
        Strategy::WideMixed => inner == 1 && c >= 4,
        Strategy::Pixels4 => inner.is_multiple_of(4),
        Strategy::MapTeam => inner > 1,
        Strategy::Auto | Strategy::Narrow | Strategy::Split => true,
    }
}

fn case(dims: &[usize], seed: u64) -> (Vec<f32>, Vec<i64>) {
    let layout = xent::Layout::from_dims(dims).unwrap();
    let mut rng = Rng(seed);
    let x = (0..layout.len()).map(|_| rng.uniform(-6.0, 6.0)).collect();
    let t = (0..layout.rows())
        .map(|i| {
            if i % 5 == 2 {
                -100
            } else {
                rng.below(layout.classes) as i64
            }
        })
        .collect();
    (x, t)
}

#[test]
fn every_forced_strategy_serves_its_shapes_and_refuses_the_rest() {
    let Some(ctx) = ctx() else { return };
    for dims in SHAPES {
        let (x, t) = case(dims, dims.iter().product::<usize>() as u64);
        let xb: Vec<half::bf16> = x.iter().map(|&v| half::bf16::from_f32(v)).collect();
        let xb32: Vec<f32> = xb.iter().map(|v| v.to_f32()).collect();
        for strategy in Strategy::FORCED {
            for reduction in [Reduction::Sum, Reduction::None] {
                let opts = CrossEntropyOptions {
                    strategy,
                    reduction,
                    label_smoothing: 0.05,
                    ..Default::default()
                };
                let what = format!("{} on {dims:?} ({reduction:?})", strategy.name());
                let got = ctx.cross_entropy_with(
                    &x,
                    dims,
                    Targets::I64(&t),
                    Weights::none(),
                    &opts,
                    &Default::default(),
                );
                if !serves(strategy, dims) {
                    assert!(
                        matches!(got, Err(Error::Unsupported { .. })),
                        "{what}: {got:?}"
                    );
                    continue;
                }
                let got = got.unwrap_or_else(|e| panic!("{what}: {e}"));
                let want =
                    cpu::cross_entropy_with(&x, dims, Targets::I64(&t), Weights::none(), &opts)
                        .unwrap();
                let tol = Tolerance::default();
                tol.compare_cross_entropy(&got, &want, &tol)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                // bf16: the scalar strategies write single elements of shared words.
                let got = ctx
                    .cross_entropy_with(
                        &xb,
                        dims,
                        Targets::I64(&t),
                        Weights::none(),
                        &opts,
                        &Default::default(),
                    )
                    .unwrap_or_else(|e| panic!("{what} bf16: {e}"));
                let want =
                    cpu::cross_entropy_with(&xb32, dims, Targets::I64(&t), Weights::none(), &opts)
                        .unwrap();
                tol.compare_cross_entropy(&got, &want, &Tolerance::BF16)
                    .unwrap_or_else(|e| panic!("{what} bf16: {e}"));
            }
        }
    }
}

#[test]
fn a_forced_strategy_past_the_loop_bound_is_refused_not_run() {
    // 4 rows of 2^20 classes: an invocation per row would walk them all.
    let Some(ctx) = ctx() else { return };
    let dims = [2usize, 1 << 20];
    let x = vec![0.0f32; 2 << 20];
    let opts = CrossEntropyOptions {
        strategy: Strategy::Narrow,
        ..Default::default()
    };
    let err = ctx
        .cross_entropy_with(
            &x,
            &dims,
            Targets::I64(&[0, 1]),
            Weights::none(),
            &opts,
            &Default::default(),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::Unsupported { ref reason, .. } if reason.contains("narrow would loop")),
        "{err}"
    );
    // Split serves it, with enough spans.
    let opts = CrossEntropyOptions {
        strategy: Strategy::Split,
        ..Default::default()
    };
    let out = ctx
        .cross_entropy_with(
            &x,
            &dims,
            Targets::I64(&[0, 1]),
            Weights::none(),
            &opts,
            &Default::default(),
        )
        .unwrap();
    assert!(
        (out.loss[0] - (20.0 * std::f32::consts::LN_2)).abs() < 1e-4,
        "{:?}",
        out.loss
    );
}

#[test]
fn the_team_kernels_run_chunk_by_chunk() {
    // 64 KiB bindings: 600 rows of ~100 classes take four chunks, each
    // starting mid-workgroup of teams (16 lanes, 16 rows a workgroup); the
    // map's chunks of 17 images (153 pixels) mid-workgroup of 16 pixels.
    let Some(ctx) = crate::common::small_binding_ctx(64 * 1024) else {
        return;
    };
    for (dims, strategy) in [
        (vec![600usize, 100], Strategy::Team4),
        (vec![600, 99], Strategy::Team),
        (vec![30, 100, 9], Strategy::MapTeam),
    ] {
        let (x, t) = case(&dims, 7);
        let xb: Vec<half::bf16> = x.iter().map(|&v| half::bf16::from_f32(v)).collect();
        let xb32: Vec<f32> = xb.iter().map(|v| v.to_f32()).collect();
        let opts = CrossEntropyOptions {
            strategy,
            reduction: Reduction::None,
            ..Default::default()
        };
        let what = format!("{} on {dims:?}", strategy.name());
        let tol = Tolerance::default();
        let got = ctx
            .cross_entropy_with(
                &x,
                &dims,
                Targets::I64(&t),
                Weights::none(),
                &opts,
                &Default::default(),
            )
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let want =
            cpu::cross_entropy_with(&x, &dims, Targets::I64(&t), Weights::none(), &opts).unwrap();
        tol.compare_cross_entropy(&got, &want, &tol)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let got = ctx
            .cross_entropy_with(
                &xb,
                &dims,
                Targets::I64(&t),
                Weights::none(),
                &opts,
                &Default::default(),
            )
            .unwrap_or_else(|e| panic!("{what} bf16: {e}"));
        let want = cpu::cross_entropy_with(&xb32, &dims, Targets::I64(&t), Weights::none(), &opts)
            .unwrap();
        tol.compare_cross_entropy(&got, &want, &Tolerance::BF16)
            .unwrap_or_else(|e| panic!("{what} bf16: {e}"));
    }
}
