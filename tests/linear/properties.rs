//! The fused linear cross-entropy on the GPU against its CPU twin on
//! generated shapes and options: across chunk boundaries, the products'
//! tiles, every storage precision and product kernel (the cooperative one
//! emulated, its f32 operands split in halves: the gradient products'
//! window always), cuts of k.

use crate::common::generators::{precision, reduction, split_k, temperature, within, zero_or};
use crate::common::{ctx, Rng};
use proptest::prelude::*;
use xent::{
    cpu, CrossEntropyOptions, LinearCrossEntropyOptions, LinearDims, Precision, ProductKernel,
    Tolerance,
};

/// Vocabularies around the products' tiles and the rows kernels' switch points.
fn vocab() -> impl Strategy<Value = usize> {
    prop_oneof![
        1usize..=6,
        60usize..=70,
        127usize..=131,
        250usize..=260,
        1000usize..=1100
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn gpu_matches_the_twin(
        n in prop_oneof![1usize..=4, 60usize..=70, 120usize..=200],
        h in prop_oneof![1usize..=5, 15usize..=17, 31usize..=34, 63usize..=66],
        v in vocab(),
        window in prop::option::of(1usize..=70),
        bias in any::<bool>(),
        weighted in any::<bool>(),
        ignore in any::<bool>(),
        reduction in reduction(),
        smoothing in zero_or(0.1),
        z_loss in zero_or(1e-3),
        softcap in prop_oneof![Just(None), Just(Some(3.0f64)), Just(Some(30.0))],
        temperature in temperature(),
        extras in any::<bool>(),
        precision in precision(),
        product_kernel in prop_oneof![
            Just(ProductKernel::Auto),
            Just(ProductKernel::Tiled),
            Just(ProductKernel::Blocks),
            Just(ProductKernel::CoopEmulated),
        ],
        split_k in split_k(),
        seed in any::<u64>(),
    ) {
        let Some(ctx) = ctx() else { return Ok(()) };
        if precision == Precision::F16 && !ctx.device().features().contains(wgpu::Features::SHADER_F16) {
            return Ok(());
        }
        let mut rng = Rng(seed);
        let scale = 2.0 / (h as f32).sqrt();
        let hidden: Vec<f32> = (0..n * h).map(|_| rng.uniform(-scale, scale)).collect();
        let weight: Vec<f32> = (0..v * h).map(|_| rng.uniform(-2.0, 2.0)).collect();
        let b: Vec<f32> = (0..v).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let cw: Vec<f32> = (0..v).map(|_| rng.uniform(0.5, 2.0)).collect();
        let targets: Vec<i64> = (0..n).map(|_| if ignore && rng.below(4) == 0 { -100 } else { rng.below(v) as i64 }).collect();
        let dims = LinearDims { n, h, v };
        // A budget of `window` rows of logits besides the per-row scratch.
        let base = LinearCrossEntropyOptions {
            loss: CrossEntropyOptions {
                reduction, label_smoothing: smoothing, z_loss, softcap, temperature, ..Default::default()
            },
            product_kernel, split_k: within(split_k, product_kernel, 1 + usize::from(precision == Precision::F32)), ..Default::default()
        };
        let returns = xent::Returns { lse: extras, correct: extras, argmax: extras, entropy: extras, ..Default::default() };
        let fixed = ctx.plan_linear_cross_entropy(&dims, &base, &returns).unwrap().scratch_bytes
            - ctx.plan_linear_cross_entropy(&dims, &base, &returns).unwrap().window_bytes;
        let opts = LinearCrossEntropyOptions {
            scratch_budget: window.map(|w| fixed + 16 + (w * v * 4) as u64),
            ..base
        };
        let plan = ctx.plan_linear_cross_entropy(&dims, &opts, &returns).unwrap();
        prop_assert!(plan.scratch_bytes <= plan.budget);
        if let Some(w) = window {
            prop_assert_eq!(plan.window_rows, if w >= 64 && w < n { w / 64 * 64 } else { w.min(n) });
        }
        let (bias, cw) = (bias.then_some(&b[..]), weighted.then_some(&cw[..]));
        let fail = |e: xent::Error| TestCaseError::fail(format!("{dims:?} window {} {precision:?}: {e}", plan.window_rows));
        let gpu = match precision {
            Precision::F32 => ctx.linear_cross_entropy(&hidden, &weight, bias, &targets, cw, &dims, &opts, &returns),
            Precision::BF16 => {
                let to = |x: &[f32]| x.iter().map(|&v| half::bf16::from_f32(v)).collect::<Vec<_>>();
                let b = bias.map(to);
                ctx.linear_cross_entropy(&to(&hidden), &to(&weight), b.as_deref(), &targets, cw, &dims, &opts, &returns)
            }
            Precision::F16 => {
                let to = |x: &[f32]| x.iter().map(|&v| half::f16::from_f32(v)).collect::<Vec<_>>();
                let b = bias.map(to);
                ctx.linear_cross_entropy(&to(&hidden), &to(&weight), b.as_deref(), &targets, cw, &dims, &opts, &returns)
            }
        }.map_err(fail)?;
        let round = |x: &[f32]| -> Vec<f32> { match precision {
            Precision::F32 => x.to_vec(),
            Precision::BF16 => x.iter().map(|&v| half::bf16::from_f32(v).to_f32()).collect(),
            Precision::F16 => x.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect(),
        }};
        let b_r = bias.map(round);
        let twin = cpu::linear_cross_entropy(&round(&hidden), &round(&weight), b_r.as_deref(), &targets, cw, &dims, &opts).unwrap();
        prop_assert_eq!((gpu.argmax.is_some(), gpu.entropy.is_some()), (extras, extras));
        Tolerance::default().compare_linear(&gpu, &twin).map_err(fail)?;
    }
}
