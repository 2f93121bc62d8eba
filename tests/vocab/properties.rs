//! Vocabulary-parallel cross-entropy: the classes split into K shards
//! (partial → merge → finish) against the unsharded CPU twin, on random splits
//! (K past C included) and every option; the fused linear op split by rows
//! of `W`.

use crate::common::family::{FamilyCase, FamilyOptions};
use crate::common::generators::{
    input_kind_mostly_logits, precision_without_f16, reduction, small_kd_dims, smoothing, softcap,
    temperature, z_loss, zero_or, TargetKind,
};
use crate::common::{ctx, Rng};
use proptest::prelude::*;
use xent::{cpu, CrossEntropyOptions, LinearCrossEntropyOptions, LinearDims, Precision, Tolerance};

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_split_matches_the_unsharded_twin(
        dims in small_kd_dims(),
        shards in prop_oneof![Just(1usize), 2usize..5, 5usize..400],
        seed in any::<u64>(),
        target_kind in prop_oneof![Just(TargetKind::I64), Just(TargetKind::U8), Just(TargetKind::Probs)],
        input in input_kind_mostly_logits(),
        reduction in reduction(),
        class_weights in any::<bool>(),
        sample_weights in any::<bool>(),
        ignore in any::<bool>(),
        label_smoothing in smoothing(),
        z in z_loss(),
        extras in any::<bool>(),
        softcap in softcap(),
        temperature in temperature(),
    ) {
        let Some(ctx) = ctx() else { return Ok(()) };
        let case = FamilyCase::draw(&dims, seed, input, ignore);
        let family = FamilyOptions { target_kind, input, reduction, label_smoothing, z_loss: z, softcap, temperature, extras };
        let (opts, returns) = family.call();
        let (targets, weights) = (case.targets(target_kind), case.weights(class_weights, sample_weights));
        let fail = |e: xent::Error| TestCaseError::fail(e.to_string());
        let gpu = ctx.cross_entropy_sharded(&case.x, &dims, targets, weights, &opts, &returns, shards).map_err(fail)?;
        let want = cpu::cross_entropy_with(&case.x, &dims, targets, weights, &opts).map_err(fail)?;
        family.check(&gpu, &want)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// The fused op with `W`, `b` and the class weights split by rows:
    /// ∂L/∂h summed over shards, ∂L/∂W and ∂L/∂b put together.
    #[test]
    fn fused_split_matches_the_unsharded_twin(
        n in prop_oneof![Just(0usize), 1usize..=4, 60usize..=70],
        h in prop_oneof![1usize..=5, 31usize..=34],
        v in prop_oneof![Just(1usize), 2usize..=9, 60usize..=70, 128usize..=140],
        shards in prop_oneof![Just(1usize), 2usize..=5, 10usize..=150],
        window in prop::option::of(1usize..=70),
        bias in any::<bool>(),
        weighted in any::<bool>(),
        ignore in any::<bool>(),
        reduction in reduction(),
        smoothing in zero_or(0.1),
        z_loss in zero_or(1e-3),
        softcap in softcap(),
        temperature in temperature(),
        extras in any::<bool>(),
        precision in precision_without_f16(),
        seed in any::<u64>(),
    ) {
        let Some(ctx) = ctx() else { return Ok(()) };
        let mut rng = Rng(seed);
        let scale = 2.0 / (h as f32).sqrt();
        let hidden: Vec<f32> = (0..n * h).map(|_| rng.uniform(-scale, scale)).collect();
        let weight: Vec<f32> = (0..v * h).map(|_| rng.uniform(-2.0, 2.0)).collect();
        let b: Vec<f32> = (0..v).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let cw: Vec<f32> = (0..v).map(|_| rng.uniform(0.5, 2.0)).collect();
        let targets: Vec<i64> = (0..n).map(|_| if ignore && rng.below(4) == 0 { -100 } else { rng.below(v) as i64 }).collect();
        let dims = LinearDims { n, h, v };
        let opts = LinearCrossEntropyOptions {
            loss: CrossEntropyOptions {
                reduction, label_smoothing: smoothing, z_loss, softcap, temperature, ..Default::default()
            },
            // Windows of a few rows: several chunks per shard.
            scratch_budget: window.map(|w| (64 << 10) + (w * v * 4) as u64),
            ..Default::default()
        };
        let returns = xent::Returns { lse: extras, correct: extras, argmax: extras, entropy: extras, ..Default::default() };
        let (bias, cw) = (bias.then_some(&b[..]), weighted.then_some(&cw[..]));
        let fail = |e: xent::Error| TestCaseError::fail(format!("{dims:?} {shards} shards {precision:?}: {e}"));
        let gpu = match precision {
            Precision::BF16 => {
                let to = |x: &[f32]| x.iter().map(|&v| half::bf16::from_f32(v)).collect::<Vec<_>>();
                let b = bias.map(to);
                ctx.linear_cross_entropy_sharded(&to(&hidden), &to(&weight), b.as_deref(), &targets, cw, &dims, &opts, &returns, shards)
            }
            _ => ctx.linear_cross_entropy_sharded(&hidden, &weight, bias, &targets, cw, &dims, &opts, &returns, shards),
        }.map_err(fail)?;
        let round = |x: &[f32]| -> Vec<f32> { match precision {
            Precision::BF16 => x.iter().map(|&v| half::bf16::from_f32(v).to_f32()).collect(),
            _ => x.to_vec(),
        }};
        let b_r = bias.map(round);
        let twin = cpu::linear_cross_entropy(&round(&hidden), &round(&weight), b_r.as_deref(), &targets, cw, &dims, &opts).unwrap();
        prop_assert_eq!((gpu.argmax.is_some(), gpu.entropy.is_some()), (extras, extras));
        Tolerance::default().compare_linear(&gpu, &twin).map_err(fail)?;
    }
}
