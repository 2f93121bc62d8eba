//! Vocabulary-parallel cross-entropy: the classes split into K shards
//! (partial → merge → finish) against the unsharded CPU twin, on random
//! splits (K past C included), every option; bit-identical repeats; the
//! record layout; errors.

mod common;

use common::{ctx, Rng};
use proptest::prelude::*;
use xent::{
    cpu, ClassRange, CrossEntropyOptions, InputKind, LinearCrossEntropyOptions, LinearDims,
    Precision, Reduction, Targets, Tolerance, Weights,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    I64,
    U8,
    Probs,
}

fn dims_strategy() -> impl Strategy<Value = Vec<usize>> {
    let classes = prop_oneof![Just(1usize), 2usize..9, 60usize..70, 250usize..=300];
    let spatial = prop::collection::vec(prop_oneof![Just(1usize), Just(3usize), 2usize..6], 0..=2);
    (prop::bool::weighted(0.1), 0usize..5, classes, spatial).prop_map(
        |(unbatched, n, c, spatial)| {
            if unbatched && spatial.is_empty() {
                vec![c]
            } else {
                let mut d = vec![n, c];
                d.extend(spatial);
                d
            }
        },
    )
}

fn to_kind(x: &mut [f32], dims: &[usize], kind: InputKind) {
    let y = match kind {
        InputKind::Logits => return,
        InputKind::LogProbs => cpu::log_softmax(x, dims).unwrap(),
        InputKind::Probs => cpu::softmax(x, dims).unwrap(),
    };
    for (a, b) in x.iter_mut().zip(y) {
        *a = b as f32;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_split_matches_the_unsharded_twin(
        dims in dims_strategy(),
        shards in prop_oneof![Just(1usize), 2usize..5, 5usize..400],
        seed in any::<u64>(),
        target_kind in prop_oneof![Just(Kind::I64), Just(Kind::U8), Just(Kind::Probs)],
        input in prop_oneof![Just(InputKind::Logits), Just(InputKind::Logits), Just(InputKind::LogProbs), Just(InputKind::Probs)],
        reduction in prop_oneof![Just(Reduction::Mean), Just(Reduction::Sum), Just(Reduction::None)],
        class_weights in any::<bool>(),
        sample_weights in any::<bool>(),
        ignore in any::<bool>(),
        label_smoothing in prop_oneof![Just(0.0f64), 0.0f64..1.0],
        z in prop_oneof![Just(0.0f64), 1e-4f64..1e-2],
        extras in any::<bool>(),
        softcap in prop_oneof![Just(None), Just(Some(3.0f64))],
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
            Kind::U8 if layout.classes <= 255 => Targets::U8(&idx8),
            Kind::I64 | Kind::U8 => Targets::I64(&idx),
            Kind::Probs => Targets::Probs(&probs),
        };
        let logits_only = input == InputKind::Logits;
        let opts = CrossEntropyOptions {
            reduction,
            ignore_index: if target_kind == Kind::Probs { -100 } else { ignore_index },
            label_smoothing,
            input,
            z_loss: if logits_only { z } else { 0.0 },
            softcap: softcap.filter(|_| logits_only),
            return_lse: extras && logits_only,
            count_correct: extras,
            ..Default::default()
        };
        let weights = Weights { class: class_weights.then_some(&cw[..]), sample: sample_weights.then_some(&sw[..]) };
        let fail = |e: xent::Error| TestCaseError::fail(e.to_string());
        let gpu = ctx.cross_entropy_sharded(&x, &dims, targets, weights, &opts, shards, Precision::F32).map_err(fail)?;
        let want = cpu::cross_entropy_with(&x, &dims, targets, weights, &opts).map_err(fail)?;
        let tol = Tolerance::default();
        prop_assert_eq!(&gpu.loss_dims, &want.loss_dims);
        tol.check("loss", &gpu.loss, &want.loss_reference()).map_err(fail)?;
        tol.check("grad", gpu.grad.as_deref().unwrap(), &want.grad_reference().unwrap()).map_err(fail)?;
        if let (Some(g), Some(w)) = (&gpu.lse, want.lse_reference()) {
            tol.check("lse", g, &w).map_err(fail)?;
        }
        prop_assert_eq!(gpu.correct, want.correct);
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
        reduction in prop_oneof![Just(Reduction::Mean), Just(Reduction::Sum), Just(Reduction::None)],
        smoothing in prop_oneof![Just(0.0f64), Just(0.1)],
        z_loss in prop_oneof![Just(0.0f64), Just(1e-3)],
        softcap in prop_oneof![Just(None), Just(Some(3.0f64))],
        extras in any::<bool>(),
        precision in prop_oneof![Just(Precision::F32), Just(Precision::BF16)],
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
                reduction, label_smoothing: smoothing, z_loss, softcap,
                return_lse: extras, count_correct: extras, ..Default::default()
            },
            precision,
            // Windows of a few rows: several chunks per shard.
            scratch_budget: window.map_or(xent::DEFAULT_SCRATCH_BUDGET, |w| (64 << 10) + (w * v * 4) as u64),
            ..Default::default()
        };
        let (bias, cw) = (bias.then_some(&b[..]), weighted.then_some(&cw[..]));
        let fail = |e: xent::Error| TestCaseError::fail(format!("{dims:?} {shards} shards {precision:?}: {e}"));
        let gpu = ctx.linear_cross_entropy_sharded(&hidden, &weight, bias, &targets, cw, dims, &opts, shards).map_err(fail)?;
        let round = |x: &[f32]| -> Vec<f32> { match precision {
            Precision::BF16 => x.iter().map(|&v| half::bf16::from_f32(v).to_f32()).collect(),
            _ => x.to_vec(),
        }};
        let b_r = bias.map(round);
        let twin = cpu::linear_cross_entropy(&round(&hidden), &round(&weight), b_r.as_deref(), &targets, cw, dims, &opts).unwrap();
        Tolerance::default().compare_linear(&gpu, &twin).map_err(fail)?;
    }
}
