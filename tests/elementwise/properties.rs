//! The elementwise losses on the GPU against their CPU twin: property tests
//! over shapes around the kernels' switch points (the 4 096-element blocks,
//! vec4 or scalar, chunks past a binding, folds past 4 096 blocks), every
//! loss, weight layout and reduction.

use crate::common::generators::{reduction, weight_shape};
use crate::common::{ctx, small_binding_ctx, Rng};
use proptest::prelude::*;
use xent::{
    cpu, Context, ElementwiseLoss, ElementwiseOptions, Error, LossWeights, Reduction, Tolerance,
    WeightShape,
};

/// Inputs for `loss`: probabilities (with exact 0 and 1) for bce, logits
/// with some large ones for bce-with-logits, values around 0 for the rest;
/// targets in [0, 1] for the binary losses (exact 0 and 1 among them).
pub fn data(loss: ElementwiseLoss, n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut r = Rng(seed);
    let binary_target = |r: &mut Rng| match r.below(4) {
        0 => 0.0,
        1 => 1.0,
        _ => r.uniform(0.0, 1.0),
    };
    let mut x = Vec::with_capacity(n);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let (a, b) = match loss {
            ElementwiseLoss::Bce => {
                let p = match r.below(16) {
                    0 => 0.0,
                    1 => 1.0,
                    _ => r.uniform(0.0, 1.0),
                };
                (p, binary_target(&mut r))
            }
            ElementwiseLoss::BceWithLogits => {
                let scale = if r.below(8) == 0 { 60.0 } else { 6.0 };
                (r.uniform(-scale, scale), binary_target(&mut r))
            }
            _ => {
                let x = r.uniform(-3.0, 3.0);
                // Some elements equal their target (L1's zero gradient).
                let y = if r.below(8) == 0 {
                    x
                } else {
                    r.uniform(-3.0, 3.0)
                };
                (x, y)
            }
        };
        x.push(a);
        y.push(b);
    }
    (x, y)
}

fn weights(n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng(seed);
    (0..n).map(|_| r.uniform(0.0, 2.0)).collect()
}

/// Every loss, with parameters at and around their special values.
fn losses() -> impl Strategy<Value = ElementwiseLoss> {
    prop_oneof![
        Just(ElementwiseLoss::BceWithLogits),
        Just(ElementwiseLoss::Bce),
        Just(ElementwiseLoss::Mse),
        Just(ElementwiseLoss::L1),
        prop_oneof![Just(0.0f64), Just(0.5), Just(1.0), Just(2.5)]
            .prop_map(|beta| ElementwiseLoss::SmoothL1 { beta }),
        prop_oneof![Just(0.25f64), Just(1.0), Just(2.0)]
            .prop_map(|delta| ElementwiseLoss::Huber { delta }),
    ]
}

/// Shapes of 0 to 3 axes whose element counts sit around the block size
/// (4 096) and its multiples, odd and multiple-of-4 counts alike.
fn shapes() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        Just(vec![]),
        (0usize..12).prop_map(|n| vec![n]),
        (1usize..6, 1usize..9).prop_map(|(a, b)| vec![a, b]),
        (4094usize..=4098).prop_map(|n| vec![n]),
        (1usize..4, 4095usize..=4097).prop_map(|(a, b)| vec![a, b]),
        (1usize..3, 1usize..4, 1usize..300).prop_map(|(a, b, c)| vec![a, b, c]),
        (8190usize..=8194).prop_map(|n| vec![2, n / 2]),
    ]
}

/// The GPU result and the CPU's under the one tolerance.
fn check(
    ctx: &Context,
    loss: ElementwiseLoss,
    dims: &[usize],
    weight: Option<WeightShape>,
    pos_weight: bool,
    reduction: Reduction,
    seed: u64,
) -> Result<(), String> {
    let n: usize = dims.iter().product();
    let last = dims.last().copied().unwrap_or(1);
    let (x, y) = data(loss, n, seed);
    let w = weight.map(|s| weights(if s == WeightShape::Full { n } else { last }, seed + 1));
    let pw = pos_weight.then(|| weights(last, seed + 2));
    let lw = LossWeights {
        weight: w.as_deref(),
        pos_weight: pw.as_deref(),
    };
    let opts = ElementwiseOptions {
        reduction,
        ..ElementwiseOptions::new(ElementwiseLoss::Mse)
    };
    let what = format!("{loss:?} {dims:?} weight {weight:?} pos_weight {pos_weight} {reduction:?}");
    let gpu = ctx
        .elementwise_loss(
            &x,
            &y,
            dims,
            lw,
            &xent::ElementwiseOptions { loss, ..opts },
            &Default::default(),
        )
        .map_err(|e| format!("{what}: gpu: {e}"))?;
    let want = cpu::elementwise_loss(&x, &y, dims, lw, &xent::ElementwiseOptions { loss, ..opts })
        .map_err(|e| format!("{what}: cpu: {e}"))?;
    Tolerance::default()
        .compare_elementwise(&gpu, &want, &Tolerance::default())
        .map_err(|e| format!("{what}: {e}"))?;
    if gpu.loss_dims != want.loss_dims {
        return Err(format!(
            "{what}: loss dims {:?} vs {:?}",
            gpu.loss_dims, want.loss_dims
        ));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_loss_matches_the_cpu_at_the_block_boundaries(
        loss in losses(),
        dims in shapes(),
        weight in weight_shape(),
        pos_weight in any::<bool>(),
        reduction in reduction(),
        seed in any::<u64>(),
    ) {
        let Some(ctx) = ctx() else { return Ok(()) };
        let weight = if loss.takes_weight() { weight } else { None };
        let pos_weight = pos_weight && loss.takes_pos_weight();
        check(ctx, loss, &dims, weight, pos_weight, reduction, seed).map_err(TestCaseError::fail)?;
    }
}

#[test]
fn tensors_past_a_binding_are_chunked() {
    // 64 KiB bindings: 16 384 elements per chunk. Odd and vec4 counts, with
    // weights of both layouts (the last axis's phase moves between chunks).
    let Some(ctx) = small_binding_ctx(64 * 1024) else {
        return;
    };
    for dims in [[10usize, 5000], [7, 7001]] {
        for (loss, weight, pos_weight) in [
            (
                ElementwiseLoss::BceWithLogits,
                Some(WeightShape::LastAxis),
                true,
            ),
            (ElementwiseLoss::Bce, Some(WeightShape::Full), false),
            (ElementwiseLoss::Huber { delta: 0.5 }, None, false),
        ] {
            for reduction in [Reduction::None, Reduction::Mean] {
                check(&ctx, loss, &dims, weight, pos_weight, reduction, 5).unwrap();
            }
        }
    }
    // The first bad bce input lies in the third chunk.
    let n = 50_000;
    let mut x = vec![0.5f32; n];
    x[40_000] = 1.5;
    x[45_000] = -0.5;
    let err = ctx
        .elementwise_loss(
            &x,
            &vec![0.0; n],
            &[n],
            Default::default(),
            &xent::ElementwiseOptions::new(ElementwiseLoss::Bce),
            &Default::default(),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::InputOutOfRange { what: "input", ref position, value, count: 2 } if position == &[40_000] && value == 1.5),
        "{err}"
    );
}

#[test]
fn past_4096_blocks_the_blocks_are_folded_first() {
    // 4 097 blocks of 4 096 elements: two folds, then the reduce over them.
    let Some(ctx) = ctx() else { return };
    let dims = [4097, 4096];
    for (loss, reduction) in [
        (ElementwiseLoss::BceWithLogits, Reduction::Mean),
        (ElementwiseLoss::Bce, Reduction::Sum),
    ] {
        check(ctx, loss, &dims, None, false, reduction, 9).unwrap();
    }
    // The first bad bce input in the second fold's blocks.
    let n = 4097 * 4096;
    let mut x = vec![0.5f32; n];
    x[n - 3] = 7.0;
    let err = ctx
        .elementwise_loss(
            &x,
            &vec![0.0; n],
            &dims,
            Default::default(),
            &xent::ElementwiseOptions::new(ElementwiseLoss::Bce),
            &Default::default(),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::InputOutOfRange { what: "input", ref position, value, count: 1 } if position == &[4096, 4093] && value == 7.0),
        "{err}"
    );
}
