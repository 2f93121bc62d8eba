//! The elementwise losses with input, target and gradient stored in bf16
//! (every device) and f16 (devices with SHADER_F16) against the CPU on the
//! same rounded values, around the kernels' switch points (4 096-element
//! blocks, vec4 or scalar, chunks); and bf16 bit for bit against the f32
//! kernel's gradient rounded to nearest even on the host.

use crate::common::generators::{reduction, weight_shape};
use crate::common::{ctx, has_f16, small_binding_ctx, Rng};
use half::{bf16, f16};
use proptest::prelude::*;
use xent::{
    cpu, Context, ElementwiseLoss, ElementwiseOptions, Error, LossWeights, Reduction, Tolerance,
    WeightShape,
};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Half {
    Bf16,
    F16,
}

/// Values for `loss` (probabilities for bce, logits or predictions else)
/// and targets in [0, 1], rounded to `half`.
fn data(loss: ElementwiseLoss, n: usize, seed: u64, half: Half) -> (Vec<f32>, Vec<f32>) {
    let mut r = Rng(seed);
    let round = |v: f32| match half {
        Half::Bf16 => bf16::from_f32(v).to_f32(),
        Half::F16 => f16::from_f32(v).to_f32(),
    };
    let (mut x, mut y) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let a = match loss {
            ElementwiseLoss::Bce => r.uniform(0.0, 1.0),
            ElementwiseLoss::BceWithLogits => r.uniform(-8.0, 8.0),
            _ => r.uniform(-3.0, 3.0),
        };
        let b = match r.below(4) {
            0 => 0.0,
            1 => 1.0,
            _ => r.uniform(0.0, 1.0),
        };
        x.push(round(a));
        y.push(round(b));
    }
    (x, y)
}

#[allow(clippy::too_many_arguments)]
fn run(
    ctx: &Context,
    half: Half,
    loss: ElementwiseLoss,
    x: &[f32],
    y: &[f32],
    dims: &[usize],
    weights: LossWeights<'_>,
    opts: &ElementwiseOptions,
) -> xent::Result<xent::ElementwiseOutput<f32>> {
    match half {
        Half::Bf16 => {
            let (xb, yb): (Vec<bf16>, Vec<bf16>) = (
                x.iter().map(|&v| bf16::from_f32(v)).collect(),
                y.iter().map(|&v| bf16::from_f32(v)).collect(),
            );
            ctx.elementwise_loss(
                &xb,
                &yb,
                dims,
                weights,
                &xent::ElementwiseOptions { loss, ..*opts },
                &Default::default(),
            )
        }
        Half::F16 => {
            let (xh, yh): (Vec<f16>, Vec<f16>) = (
                x.iter().map(|&v| f16::from_f32(v)).collect(),
                y.iter().map(|&v| f16::from_f32(v)).collect(),
            );
            ctx.elementwise_loss(
                &xh,
                &yh,
                dims,
                weights,
                &xent::ElementwiseOptions { loss, ..*opts },
                &Default::default(),
            )
        }
    }
}

/// One case against the CPU on the rounded values: the loss at the f32
/// tolerance (it is stored in f32), the gradient at the half type's.
fn check(
    ctx: &Context,
    half: Half,
    loss: ElementwiseLoss,
    dims: &[usize],
    weight: Option<WeightShape>,
    reduction: Reduction,
    seed: u64,
) -> Result<(), String> {
    let n: usize = dims.iter().product();
    let last = dims.last().copied().unwrap_or(1);
    let (x, y) = data(loss, n, seed, half);
    let mut r = Rng(seed + 1);
    let w: Option<Vec<f32>> = weight.map(|s| {
        let len = if s == WeightShape::Full { n } else { last };
        (0..len).map(|_| r.uniform(0.0, 2.0)).collect()
    });
    let lw = LossWeights {
        weight: w.as_deref(),
        pos_weight: None,
    };
    let opts = ElementwiseOptions {
        reduction,
        ..ElementwiseOptions::new(loss)
    };
    let what = format!("{half:?} {loss:?} {dims:?} {weight:?} {reduction:?}");
    let gpu = run(ctx, half, loss, &x, &y, dims, lw, &opts).map_err(|e| format!("{what}: {e}"))?;
    let want = cpu::elementwise_loss(&x, &y, dims, lw, &xent::ElementwiseOptions { loss, ..opts })
        .map_err(|e| format!("{what}: {e}"))?;
    let grad_tol = if half == Half::Bf16 {
        Tolerance::BF16
    } else {
        Tolerance::F16
    };
    Tolerance::default()
        .compare_elementwise(&gpu, &want, &grad_tol)
        .map_err(|e| format!("{what}: {e}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn half_precision_losses_match_the_cpu_at_the_block_boundaries(
        loss in prop_oneof![
            Just(ElementwiseLoss::BceWithLogits), Just(ElementwiseLoss::Bce), Just(ElementwiseLoss::Mse),
            Just(ElementwiseLoss::L1), Just(ElementwiseLoss::SmoothL1 { beta: 0.5 }),
            Just(ElementwiseLoss::Huber { delta: 1.0 })],
        dims in prop_oneof![
            (1usize..12).prop_map(|n| vec![n]),
            (4094usize..=4098).prop_map(|n| vec![n]),
            (1usize..4, 4095usize..=4097).prop_map(|(a, b)| vec![a, b]),
            (1usize..3, 1usize..4, 1usize..300).prop_map(|(a, b, c)| vec![a, b, c]),
        ],
        weight in weight_shape(),
        reduction in reduction(),
        f16_too in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let Some(ctx) = ctx() else { return Ok(()) };
        let weight = if loss.takes_weight() { weight } else { None };
        check(ctx, Half::Bf16, loss, &dims, weight, reduction, seed).map_err(TestCaseError::fail)?;
        if f16_too && has_f16(ctx) {
            check(ctx, Half::F16, loss, &dims, weight, reduction, seed).map_err(TestCaseError::fail)?;
        }
    }
}

#[test]
fn the_bf16_gradient_is_the_f32_kernels_rounded_to_nearest_even() {
    let Some(ctx) = ctx() else { return };
    let opts = ElementwiseOptions {
        reduction: Reduction::Sum,
        ..ElementwiseOptions::new(ElementwiseLoss::Mse)
    };
    // Odd counts run the scalar kernel (single-element stores), multiples
    // of 4 the vec4 one.
    for n in [4097usize, 4096, 13] {
        for loss in ElementwiseLoss::ALL {
            let (x, y) = data(loss, n, 7, Half::Bf16);
            let f32_grad = ctx
                .elementwise_loss(
                    &x,
                    &y,
                    &[n],
                    Default::default(),
                    &xent::ElementwiseOptions { loss, ..opts },
                    &Default::default(),
                )
                .unwrap()
                .grad
                .unwrap();
            let bf16_grad = run(
                ctx,
                Half::Bf16,
                loss,
                &x,
                &y,
                &[n],
                Default::default(),
                &opts,
            )
            .unwrap()
            .grad
            .unwrap();
            for (i, (&g32, &g16)) in f32_grad.iter().zip(&bf16_grad).enumerate() {
                let want = bf16::from_f32(g32).to_f32();
                assert!(
                    g16.to_bits() == want.to_bits(),
                    "{loss:?} n {n} [{i}]: f32 {g32:e} rounds to {want:e}, the bf16 kernel wrote {g16:e}"
                );
            }
        }
    }
}

#[test]
fn half_precision_tensors_past_a_binding_are_chunked() {
    let Some(ctx) = small_binding_ctx(64 * 1024) else {
        return;
    };
    for dims in [[10usize, 5000], [7, 7001]] {
        check(
            &ctx,
            Half::Bf16,
            ElementwiseLoss::BceWithLogits,
            &dims,
            Some(WeightShape::LastAxis),
            Reduction::None,
            3,
        )
        .unwrap();
        check(
            &ctx,
            Half::Bf16,
            ElementwiseLoss::Bce,
            &dims,
            Some(WeightShape::Full),
            Reduction::Mean,
            4,
        )
        .unwrap();
    }
}

#[test]
fn a_bad_bf16_bce_input_is_named_with_its_value() {
    let Some(ctx) = ctx() else { return };
    let mut x = vec![0.5f32; 9];
    x[7] = 1.5;
    let err = run(
        ctx,
        Half::Bf16,
        ElementwiseLoss::Bce,
        &x,
        &[0.0; 9],
        &[3, 3],
        Default::default(),
        &ElementwiseOptions::new(ElementwiseLoss::Bce),
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::InputOutOfRange { what: "input", ref position, value, count: 1 } if position == &[2, 1] && value == 1.5),
        "{err}"
    );
}
