//! f16 logits and gradients (accumulation in f32) against the CPU path on
//! the same f16-rounded inputs; a device without SHADER_F16 must refuse with
//! a typed error, never a wrong number.

use crate::common::generators::{small_dims, smoothing};
use crate::common::half_precision::half_matches_cpu;
use crate::common::{ctx, has_f16, small_binding_ctx, Rng};
use half::f16;
use proptest::prelude::*;
use xent::{cpu, CrossEntropyOptions, Error, Reduction, Targets, Tolerance, Weights};

/// Runs one f16 case and holds it to the CPU: loss at the f32 tolerance
/// (it is computed in f32), gradient at the f16 one.
fn check(
    ctx: &xent::Context,
    dims: &[usize],
    seed: u64,
    opts: &CrossEntropyOptions,
) -> Result<(), String> {
    let layout = xent::Layout::from_dims(dims).unwrap();
    let mut rng = Rng(seed);
    let x: Vec<f16> = (0..layout.len())
        .map(|_| f16::from_f32(rng.uniform(-8.0, 8.0)))
        .collect();
    let t: Vec<i64> = (0..layout.rows())
        .map(|i| {
            if i % 7 == 3 {
                -100
            } else {
                rng.below(layout.classes) as i64
            }
        })
        .collect();
    let w: Vec<f32> = (0..layout.classes).map(|_| rng.uniform(0.5, 2.0)).collect();
    half_matches_cpu(ctx, (&x, dims), &t, &w, opts, Tolerance::F16)
}

#[test]
fn without_shader_f16_the_error_is_typed() {
    let Some(ctx) = ctx() else { return };
    if has_f16(ctx) {
        return;
    }
    let x = [f16::ZERO; 4];
    let err = ctx
        .cross_entropy_with(
            &x,
            &[2, 2],
            Targets::I64(&[0, 1]),
            Weights::none(),
            &Default::default(),
            &Default::default(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
}

#[test]
fn every_row_strategy_in_f16_matches_cpu() {
    let Some(ctx) = ctx() else { return };
    if !has_f16(ctx) {
        eprintln!("adapter has no SHADER_F16: f16 kernels not run (the typed error is tested)");
        return;
    }
    let shapes: [&[usize]; 7] = [
        &[2, 20_001],
        &[3, 256],
        &[3, 257],
        &[40, 12],
        &[40, 13],
        &[2, 5, 4, 3],
        &[2, 5, 3, 3],
    ];
    for dims in shapes {
        for opts in [
            CrossEntropyOptions {
                reduction: Reduction::Sum,
                ..Default::default()
            },
            CrossEntropyOptions {
                reduction: Reduction::None,
                label_smoothing: 0.1,
                ..Default::default()
            },
        ] {
            check(ctx, dims, 9, &opts).unwrap_or_else(|e| panic!("{dims:?} {opts:?}: {e}"));
        }
    }
}

#[test]
fn f16_tensors_larger_than_a_binding_are_chunked() {
    let Some(ctx) = small_binding_ctx(1 << 20) else {
        return;
    };
    if !has_f16(&ctx) {
        // Only where the adapter itself lacks f16: never skip silently.
        assert!(
            !crate::common::ctx().is_some_and(has_f16),
            "the adapter has SHADER_F16 but the small-binding device did not get it"
        );
        return;
    }
    let opts = CrossEntropyOptions {
        reduction: Reduction::Sum,
        ..Default::default()
    };
    for dims in [[600usize, 1000], [600, 1001]] {
        check(&ctx, &dims, 3, &opts).unwrap_or_else(|e| panic!("{dims:?}: {e}"));
    }
    // Probability targets stay f32 while the input is f16: their chunk
    // bindings start at other offsets (the kernel's `target_delta`).
    for dims in [[600usize, 1001], [300, 1000]] {
        let len = dims[0] * dims[1];
        let mut rng = Rng(5);
        let x: Vec<f16> = (0..len)
            .map(|_| f16::from_f32(rng.uniform(-8.0, 8.0)))
            .collect();
        let x32: Vec<f32> = x.iter().map(|v| v.to_f32()).collect();
        let probs = crate::common::soft_targets(&x32, &dims);
        let gpu = ctx
            .cross_entropy_with(
                &x,
                &dims,
                Targets::Probs(&probs),
                Weights::none(),
                &opts,
                &Default::default(),
            )
            .unwrap();
        let want =
            cpu::cross_entropy_with(&x32, &dims, Targets::Probs(&probs), Weights::none(), &opts)
                .unwrap();
        Tolerance::default()
            .check("soft loss", &gpu.loss, &want.loss_reference())
            .unwrap_or_else(|e| panic!("{dims:?}: {e}"));
        Tolerance::F16
            .check(
                "soft grad",
                gpu.grad.as_deref().unwrap(),
                &want.grad_reference().unwrap(),
            )
            .unwrap_or_else(|e| panic!("{dims:?}: {e}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn f16_matches_cpu_on_generated_shapes(
        dims in small_dims(),
        seed in any::<u64>(),
        smoothing in smoothing(),
    ) {
        let Some(ctx) = ctx() else { return Ok(()) };
        if !has_f16(ctx) {
            return Ok(());
        }
        let opts = CrossEntropyOptions { reduction: Reduction::Sum, label_smoothing: smoothing, ..Default::default() };
        check(ctx, &dims, seed, &opts).map_err(TestCaseError::fail)?;
    }
}
