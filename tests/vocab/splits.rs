//! Vocabulary splits against the unsharded twin: bit-identical repeats,
//! long shards, a grid that spills into y, bf16 shards; and verify mode
//! catching a corrupted split.

use crate::common::{ctx, Rng};
use xent::{
    cpu, CrossEntropyOptions, LinearCrossEntropyOptions, LinearDims, Reduction, Targets, Tolerance,
    Weights,
};

/// The same split gives the same bits, run after run, and every shard
/// writes the same loss; the fused op likewise.
#[test]
fn a_split_repeats_bit_for_bit() {
    let Some(ctx) = ctx() else { return };
    let dims = [37usize, 1000];
    let mut rng = Rng(5);
    let x: Vec<f32> = (0..37_000).map(|_| rng.uniform(-6.0, 6.0)).collect();
    let t: Vec<i64> = (0..37).map(|_| rng.below(1000) as i64).collect();
    let opts = CrossEntropyOptions {
        label_smoothing: 0.1,
        z_loss: 1e-3,
        ..Default::default()
    };
    let run = || {
        ctx.cross_entropy_sharded(
            &x,
            &dims,
            Targets::I64(&t),
            Weights::none(),
            &opts,
            &Default::default(),
            3,
        )
        .unwrap()
    };
    let (a, b) = (run(), run());
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a.loss), bits(&b.loss));
    assert_eq!(
        bits(a.grad.as_ref().unwrap()),
        bits(b.grad.as_ref().unwrap())
    );

    let (n, h, v) = (70, 24, 333);
    let hidden: Vec<f32> = (0..n * h).map(|_| rng.uniform(-0.5, 0.5)).collect();
    let weight: Vec<f32> = (0..v * h).map(|_| rng.uniform(-0.5, 0.5)).collect();
    let targets: Vec<i64> = (0..n).map(|_| rng.below(v) as i64).collect();
    let dims = LinearDims { n, h, v };
    let lopts = LinearCrossEntropyOptions {
        scratch_budget: Some(64 << 10),
        ..Default::default()
    };
    let run = || {
        ctx.linear_cross_entropy_sharded(
            &hidden,
            &weight,
            None,
            &targets,
            None,
            &dims,
            &lopts,
            &Default::default(),
            4,
        )
        .unwrap()
    };
    let (a, b) = (run(), run());
    assert_eq!(bits(&a.loss), bits(&b.loss));
    for (x, y) in [
        (&a.grad_hidden, &b.grad_hidden),
        (&a.grad_weight, &b.grad_weight),
    ] {
        assert_eq!(bits(x.as_ref().unwrap()), bits(y.as_ref().unwrap()));
    }
}

/// Shards long enough that their partial and finish walk several spans
/// (the split kernels' loop bound), against the twin.
#[test]
fn long_shards_walk_several_spans() {
    let Some(ctx) = ctx() else { return };
    let dims = [2usize, 600_000];
    let mut rng = Rng(9);
    let x: Vec<f32> = (0..1_200_000).map(|_| rng.uniform(-4.0, 4.0)).collect();
    let t = [599_999i64, 3];
    let opts = CrossEntropyOptions {
        label_smoothing: 0.05,
        ..Default::default()
    };
    let returns = xent::Returns::ROWS;
    let targets = Targets::I64(&t);
    splits_match(ctx, &x, &dims, targets, (&opts, &returns), &[1, 2, 5]);
}

/// The call split into each of `splits` shard counts, against the
/// unsharded CPU twin.
fn splits_match(
    ctx: &xent::Context,
    x: &[f32],
    dims: &[usize],
    targets: Targets<'_>,
    (opts, returns): (&CrossEntropyOptions, &xent::Returns),
    splits: &[usize],
) {
    let want = cpu::cross_entropy_with(x, dims, targets, Weights::none(), opts).unwrap();
    for &shards in splits {
        let got = ctx
            .cross_entropy_sharded(x, dims, targets, Weights::none(), opts, returns, shards)
            .unwrap();
        let asked = (returns.argmax, returns.entropy);
        assert_eq!((got.argmax.is_some(), got.entropy.is_some()), asked);
        crate::common::assert_matches_cpu(&format!("{dims:?}, {shards} shards"), &got, &want);
    }
}

/// A device that dispatches at most 160 workgroups per grid dimension:
/// 10 300 rows need 161 workgroups of the invocation-per-row kernels (the
/// record, the merge, the loss), so their grid spills into y and each must
/// find its row from both coordinates. One, three and ten shards (an empty
/// range among them). (The fused op runs the same kernels on its windows,
/// but its products tile 32 rows a workgroup and refuse a grid this small
/// before the rows could spill.)
#[test]
fn shards_of_a_grid_that_spills_into_y() {
    let Some(ctx) = crate::common::small_grid_ctx(160) else {
        return;
    };
    let (n, v) = (10_300usize, 9usize);
    let dims = [n, v];
    let mut rng = Rng(21);
    let x: Vec<f32> = (0..n * v).map(|_| rng.uniform(-6.0, 6.0)).collect();
    let t: Vec<i64> = (0..n).map(|_| rng.below(v) as i64).collect();
    let opts = CrossEntropyOptions {
        reduction: Reduction::Sum,
        label_smoothing: 0.1,
        z_loss: 1e-3,
        ..Default::default()
    };
    let returns = xent::Returns::ROWS;
    let targets = Targets::I64(&t);
    // 10 shards of 9 classes: the last range is empty (vocab_empty spills too).
    splits_match(&ctx, &x, &dims, targets, (&opts, &returns), &[1, 3, 10]);
}

/// Half-precision shards, held to their type's tolerance.
#[test]
fn bf16_shards_match_the_twin() {
    let Some(ctx) = ctx() else { return };
    let dims = [9usize, 130, 3];
    let mut rng = Rng(4);
    let x: Vec<f32> = (0..9 * 130 * 3).map(|_| rng.uniform(-5.0, 5.0)).collect();
    let t: Vec<i64> = (0..27).map(|_| rng.below(130) as i64).collect();
    let opts = CrossEntropyOptions::default();
    let xb: Vec<half::bf16> = x.iter().map(|&v| half::bf16::from_f32(v)).collect();
    let got = ctx
        .cross_entropy_sharded(
            &xb,
            &dims,
            Targets::I64(&t),
            Weights::none(),
            &opts,
            &Default::default(),
            4,
        )
        .unwrap();
    let rounded: Vec<f32> = xb.iter().map(|v| v.to_f32()).collect();
    let want =
        cpu::cross_entropy_with(&rounded, &dims, Targets::I64(&t), Weights::none(), &opts).unwrap();
    Tolerance::default()
        .compare_cross_entropy(&got, &want, &Tolerance::BF16)
        .unwrap();
}

/// Verify mode catches a corrupted split result (a mutation check of the
/// comparison the property tests make).
#[test]
fn verify_mode_catches_a_corrupted_split() {
    if ctx().is_none() {
        return;
    }
    let ctx = xent::Context::from_env()
        .unwrap()
        .with_verify(Tolerance::default())
        .with_fault(xent::Fault::SwapClasses);
    let mut rng = Rng(3);
    let x: Vec<f32> = (0..4 * 50).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let t = [0i64, 10, 20, 49];
    let r = ctx.cross_entropy_sharded(
        &x,
        &[4, 50],
        Targets::I64(&t),
        Weights::none(),
        &Default::default(),
        &Default::default(),
        3,
    );
    assert!(matches!(r, Err(xent::Error::Mismatch { .. })), "{r:?}");
}
