//! Vocabulary-parallel cross-entropy: the classes split into K shards
//! (partial → merge → finish) against the unsharded CPU twin, on random splits
//! (K past C included) and every option; the fused linear op split by rows
//! of `W`.

use crate::common::generators::{
    input_kind_mostly_logits, precision_without_f16, reduction, small_kd_dims, smoothing, softcap,
    z_loss, zero_or, TargetKind,
};
use crate::common::{ctx, to_kind, Rng};
use proptest::prelude::*;
use xent::{
    cpu, CrossEntropyOptions, InputKind, LinearCrossEntropyOptions, LinearDims, Precision, Targets,
    Tolerance, Weights,
};

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
    ) {
        let Some(ctx) = ctx() else { return Ok(()) };
        let layout = xent::Layout::from_dims(&dims).unwrap();
        let mut rng = Rng(seed);
        let mut x: Vec<f32> = (0..layout.len()).map(|_| rng.uniform(-8.0, 8.0)).collect();
        to_kind(&mut x, &dims, input);
        let ignore_index: i64 = 255;
        let class = |rng: &mut Rng| if ignore && rng.below(4) == 0 { ignore_index } else { rng.below(layout.classes) as i64 };
        let idx: Vec<i64> = (0..layout.rows()).map(|_| class(&mut rng)).collect();
        let idx8: Vec<u8> = idx.iter().map(|&t| t as u8).collect();
        let mut probs: Vec<f32> = (0..layout.len()).map(|_| rng.uniform(0.0, 1.0)).collect();
        to_kind(&mut probs, &dims, InputKind::Probs);
        let cw: Vec<f32> = (0..layout.classes).map(|_| rng.uniform(0.2, 2.0)).collect();
        let sw: Vec<f32> = (0..layout.rows()).map(|_| rng.uniform(0.0, 2.0)).collect();
        let targets = match target_kind {
            TargetKind::U8 if layout.classes <= 255 => Targets::U8(&idx8),
            TargetKind::Probs => Targets::Probs(&probs),
            _ => Targets::I64(&idx),
        };
        let logits_only = input == InputKind::Logits;
        let opts = CrossEntropyOptions {
            reduction,
            ignore_index: if target_kind == TargetKind::Probs { -100 } else { ignore_index },
            label_smoothing,
            input,
            z_loss: if logits_only { z } else { 0.0 },
            softcap: softcap.filter(|_| logits_only),
            ..Default::default()
        };
        let returns = xent::Returns {
            lse: extras && logits_only,
            correct: extras,
            ..Default::default()
        };
        let weights = Weights { class: class_weights.then_some(&cw[..]), sample: sample_weights.then_some(&sw[..]) };
        let fail = |e: xent::Error| TestCaseError::fail(e.to_string());
        let gpu = ctx.cross_entropy_sharded(&x, &dims, targets, weights, &opts, &returns, shards).map_err(fail)?;
        let want = cpu::cross_entropy_with(&x, &dims, targets, weights, &opts).map_err(fail)?;
        let tol = Tolerance::default();
        prop_assert_eq!(&gpu.loss_dims, &want.loss_dims);
        tol.check("loss", &gpu.loss, &want.loss_reference()).map_err(fail)?;
        tol.check("grad", gpu.grad.as_deref().unwrap(), &want.grad_reference().unwrap()).map_err(fail)?;
        if let (Some(g), Some(w)) = (&gpu.lse, want.lse_reference()) {
            tol.check("lse", g, &w).map_err(fail)?;
        }
        // The twin counts always; the GPU when asked.
        prop_assert_eq!(gpu.correct, want.correct.filter(|_| extras));
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
                reduction, label_smoothing: smoothing, z_loss, softcap, ..Default::default()
            },
            // Windows of a few rows: several chunks per shard.
            scratch_budget: window.map_or(xent::DEFAULT_SCRATCH_BUDGET, |w| (64 << 10) + (w * v * 4) as u64),
            ..Default::default()
        };
        let returns = xent::Returns { lse: extras, correct: extras, ..Default::default() };
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
        Tolerance::default().compare_linear(&gpu, &twin).map_err(fail)?;
    }
}
