//! Vocabulary-parallel cross-entropy: the classes split into K shards
//! (partial → merge → finish) against the unsharded CPU twin, on random
//! splits (K past C included), every option; bit-identical repeats; the
//! record layout; errors.

mod common;

use common::{ctx, to_kind, Rng};
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

/// Reads `buffer` (COPY_SRC) as u32 words.
fn words(ctx: &xent::Context, buffer: &wgpu::Buffer) -> Vec<u32> {
    common::read_f32(ctx, buffer)
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

fn buffer(ctx: &xent::Context, contents: &[u8]) -> wgpu::Buffer {
    use wgpu::util::DeviceExt;
    ctx.device()
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: if contents.is_empty() {
                &[0; 4]
            } else {
                contents
            },
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        })
}

/// A record's words, by hand: the row [1, 2, 3, 4], target 3 (weight 2),
/// shard [2, 4) and the empty shard [4, 4); then the merge of [0, 2) and
/// [2, 4) against the closed form.
#[test]
fn records_hold_the_documented_layout() {
    let Some(ctx) = ctx() else { return };
    let opts = CrossEntropyOptions {
        label_smoothing: 0.25,
        ..Default::default()
    };
    let targets = buffer(ctx, bytemuck::cast_slice(&[3i32]));
    let partial = |range: ClassRange, values: &[f32], w: &[f32]| {
        let (logits, weights) = (
            buffer(ctx, bytemuck::cast_slice(values)),
            buffer(ctx, bytemuck::cast_slice(w)),
        );
        let out = buffer(ctx, &[0xab; 48]);
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        let b = xent::VocabPartialBuffers {
            logits: logits.slice(..),
            targets: xent::TargetBuffer::ClassI32(targets.slice(..)),
            weights: Some(weights.slice(..)),
            precision: Precision::F32,
            partial: out.slice(..),
        };
        ctx.record_vocab_partial(&mut encoder, &[1, 4], range, &opts, &b)
            .unwrap();
        ctx.queue().submit([encoder.finish()]);
        out
    };
    let high = partial(ClassRange::new(2, 4), &[3.0, 4.0], &[0.5, 2.0]);
    let w = words(ctx, &high);
    let f = |i: usize| f32::from_bits(w[i]);
    let s = 1.0 + (-1.0f32).exp();
    assert_eq!((f(0), f(2), f(3)), (4.0, 4.0, 2.0), "m, x_t, r");
    assert!((f(1) - s).abs() < 1e-6, "s {}", f(1));
    // a = 0.5·(3 − 4) + 2·(4 − 4), b = 0.5 + 2.
    assert!(
        (f(4) + 0.5).abs() < 1e-6 && f(5) == 2.5,
        "a {} b {}",
        f(4),
        f(5)
    );
    assert_eq!(
        (w[6], f(7), w[8], w[10], w[11]),
        (3, 4.0, u32::MAX, 2, 5),
        "argmax, count, class sum"
    );
    let empty = partial(ClassRange::new(4, 4), &[], &[]);
    let none = f32::NEG_INFINITY.to_bits();
    assert_eq!(
        words(ctx, &empty),
        [
            f32::MIN.to_bits(),
            0,
            0,
            0,
            0,
            0,
            u32::MAX,
            none,
            u32::MAX,
            none,
            0,
            0
        ],
        "an empty range: the merge's identity"
    );

    // The GPU merge of records gathered in the given order.
    let merge = |records: &[Vec<u32>]| -> Vec<u32> {
        let (gathered, merged) = (
            buffer(ctx, bytemuck::cast_slice(&records.concat())),
            buffer(ctx, &[0; 48]),
        );
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        ctx.record_vocab_merge(
            &mut encoder,
            &xent::MergeDims {
                rows: 1,
                shards: records.len(),
            },
            &opts,
            &xent::VocabMergeBuffers {
                gathered: gathered.slice(..),
                merged: merged.slice(..),
            },
        )
        .unwrap();
        ctx.queue().submit([encoder.finish()]);
        words(ctx, &merged)
    };
    // The merge, [0, 2) then [2, 4) then the empty range.
    let low = partial(ClassRange::new(0, 2), &[1.0, 2.0], &[1.0, 1.5]);
    let (low, high, empty) = (words(ctx, &low), words(ctx, &high), words(ctx, &empty));
    let m = merge(&[low.clone(), high.clone(), empty.clone()]);
    let f = |i: usize| f64::from(f32::from_bits(m[i]));
    let x = [1.0f64, 2.0, 3.0, 4.0];
    let cw = [1.0f64, 1.5, 0.5, 2.0];
    let sum: f64 = x.iter().map(|v| (v - 4.0).exp()).sum();
    let a: f64 = x.iter().zip(cw).map(|(v, w)| w * (v - 4.0)).sum();
    assert_eq!(f(0), 4.0);
    assert!(
        (f(1) - sum).abs() < 1e-6 && (f(4) - a).abs() < 1e-5,
        "s {} a {}",
        f(1),
        f(4)
    );
    assert_eq!((f(2), f(3), f(5)), (4.0, 2.0, 5.0), "x_t, r, b");
    assert_eq!((m[6], m[10], m[11]), (3, 4, 6), "argmax, count, class sum");
    // The empty range first instead of last: the identity, the same bits.
    assert_eq!(merge(&[empty, low, high]), m, "an empty record first");

    // The MAX-then-SUM recipe of the layout's documentation, as an engine
    // without an all-gather would run it, on the row moved below 0 (where
    // an all-zero empty record would win the max): the GPU merge's record.
    let x = [-9.0f32, -8.0, -7.0, -6.0];
    let records: Vec<Vec<u32>> = [
        partial(ClassRange::new(0, 2), &x[..2], &[1.0, 1.5]),
        partial(ClassRange::new(2, 4), &x[2..], &[0.5, 2.0]),
        partial(ClassRange::new(4, 4), &[], &[]),
    ]
    .iter()
    .map(|b| words(ctx, b))
    .collect();
    let g = |r: &[u32], i: usize| f64::from(f32::from_bits(r[i]));
    // MAX over word 0; each record rescaled to it; SUM; MAXLOC for the argmax.
    let top = records.iter().map(|r| g(r, 0)).fold(f64::MIN, f64::max);
    let sum = |i: usize, shift: &dyn Fn(&[u32]) -> f64| -> f64 {
        records.iter().map(|r| g(r, i) + shift(r)).sum()
    };
    let s = records
        .iter()
        .map(|r| g(r, 1) * (g(r, 0) - top).exp())
        .sum::<f64>();
    let a = sum(4, &|r| g(r, 5) * (g(r, 0) - top));
    let (xt, r, b) = (sum(2, &|_| 0.0), sum(3, &|_| 0.0), sum(5, &|_| 0.0));
    let best = records
        .iter()
        .max_by(|p, q| g(p, 7).total_cmp(&g(q, 7)).then(q[6].cmp(&p[6])))
        .unwrap();
    let count: u32 = records.iter().map(|r| r[10]).sum();
    let m = merge(&records);
    let f = |i: usize| g(&m, i);
    assert_eq!((f(0), top), (-6.0, -6.0), "m");
    for (i, want) in [(1, s), (2, xt), (3, r), (4, a), (5, b)] {
        assert!((f(i) - want).abs() < 1e-5, "word {i}: {} vs {want}", f(i));
    }
    let csum = records.iter().fold(0u32, |a, r| a.wrapping_add(r[11]));
    assert_eq!(
        (m[6], best[6], m[10], count, m[11], csum),
        (3, 3, 4, 4, 6, 6),
        "argmax, count, class sum"
    );
}

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
        scratch_budget: 64 << 10,
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
    let returns = xent::Returns {
        lse: true,
        correct: true,
        ..Default::default()
    };
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
        common::assert_matches_cpu(&format!("{dims:?}, {shards} shards"), &got, &want);
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
    let Some(ctx) = common::small_grid_ctx(160) else {
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
    let returns = xent::Returns {
        lse: true,
        correct: true,
        ..Default::default()
    };
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

/// Merged records that do not cover each of the call's classes once (a
/// shard missing from the gather, gathered twice, or in another's place
/// with a range of the same size) make the finish's status an error naming
/// the merged buffer, plain and fused; the right gather passes, in order or
/// not.
#[test]
fn records_that_miss_or_repeat_a_shard_are_a_typed_error() {
    let Some(ctx) = ctx() else { return };
    let (n, h, v) = (3usize, 2usize, 4usize);
    let dims = [n, v];
    let layout = xent::Layout::from_dims(&dims).unwrap();
    let mut rng = Rng(4);
    let x: Vec<f32> = (0..n * v).map(|_| rng.uniform(-3.0, 3.0)).collect();
    let hidden: Vec<f32> = (0..n * h).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let weight: Vec<f32> = (0..v * h).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let targets = buffer(ctx, bytemuck::cast_slice(&[3i32, 0, 2]));
    let ranges = ClassRange::split(v, 2).unwrap();
    let opts = CrossEntropyOptions::default();
    let lopts = LinearCrossEntropyOptions::default();
    let ldims = LinearDims { n, h, v };
    let submit = |encoder: wgpu::CommandEncoder| ctx.queue().submit([encoder.finish()]);
    // Each shard's logits, weight rows and records (plain, fused).
    let mut shard = Vec::new();
    for r in &ranges {
        let logits: Vec<f32> = x
            .chunks(v)
            .flat_map(|row| row[r.start..r.end].to_vec())
            .collect();
        let (logits, w) = (
            buffer(ctx, bytemuck::cast_slice(&logits)),
            buffer(ctx, bytemuck::cast_slice(&weight[r.start * h..r.end * h])),
        );
        let (plain, fused) = (buffer(ctx, &[0; 3 * 48]), buffer(ctx, &[0; 3 * 48]));
        let hid = buffer(ctx, bytemuck::cast_slice(&hidden));
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        let b = xent::VocabPartialBuffers {
            logits: logits.slice(..),
            targets: xent::TargetBuffer::ClassI32(targets.slice(..)),
            weights: None,
            precision: Precision::F32,
            partial: plain.slice(..),
        };
        ctx.record_vocab_partial(&mut encoder, &dims, *r, &opts, &b)
            .unwrap();
        let b = xent::LinearPartialBuffers {
            hidden: hid.slice(..),
            weight: w.slice(..),
            bias: None,
            targets: xent::TargetBuffer::ClassI32(targets.slice(..)),
            weights: None,
            partial: fused.slice(..),
            precision: Precision::F32,
        };
        ctx.record_linear_vocab_partial(&mut encoder, &ldims, *r, &lopts, &b)
            .unwrap();
        submit(encoder);
        shard.push((logits, w, hid, words(ctx, &plain), words(ctx, &fused)));
    }
    // Shard 0's finish from a merge of `order`'s records.
    let finish = |order: &[usize], fused: bool| -> xent::Result<()> {
        let all: Vec<u32> = order
            .iter()
            .flat_map(|&k| {
                if fused {
                    shard[k].4.clone()
                } else {
                    shard[k].3.clone()
                }
            })
            .collect();
        let (gathered, merged) = (
            buffer(ctx, bytemuck::cast_slice(&all)),
            buffer(ctx, &[0; 3 * 48]),
        );
        let (loss, status, grad) = (
            buffer(ctx, &[0; 4]),
            // Word 3 already flagged: the finish must clear it.
            buffer(ctx, bytemuck::cast_slice(&[0u32, 0, 0, 2])),
            buffer(ctx, &[0; 64]),
        );
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        ctx.record_vocab_merge(
            &mut encoder,
            &xent::MergeDims {
                rows: n,
                shards: order.len(),
            },
            &opts,
            &xent::VocabMergeBuffers {
                gathered: gathered.slice(..),
                merged: merged.slice(..),
            },
        )?;
        let (logits, w, hid, _, _) = &shard[0];
        if fused {
            let b = xent::LinearBuffers {
                grad_hidden: Some(grad.slice(..)),
                ..xent::LinearBuffers::new(
                    hid.slice(..),
                    w.slice(..),
                    xent::TargetBuffer::ClassI32(targets.slice(..)),
                    loss.slice(..),
                    status.slice(..),
                )
            };
            ctx.record_linear_vocab_finish(
                &mut encoder,
                &ldims,
                ranges[0],
                &lopts,
                &xent::LinearFinishBuffers {
                    shard: b,
                    merged: merged.slice(..),
                },
            )?;
        } else {
            let b = xent::CrossEntropyBuffers::new(
                logits.slice(..),
                xent::TargetBuffer::ClassI32(targets.slice(..)),
                loss.slice(..),
                Some(grad.slice(..)),
                status.slice(..),
            );
            ctx.record_vocab_finish(
                &mut encoder,
                &dims,
                ranges[0],
                &opts,
                &xent::VocabFinishBuffers {
                    shard: b,
                    merged: merged.slice(..),
                },
            )?;
        }
        submit(encoder);
        let bytes: Vec<u8> = bytemuck::cast_slice(&words(ctx, &status)).to_vec();
        <xent::CrossEntropyStatus as xent::OpStatus>::from_bytes(&bytes).check(&layout, -100)
    };
    for fused in [false, true] {
        // Each class once: in order, or out of it (the same sums).
        for order in [[0usize, 1], [1, 0]] {
            finish(&order, fused).unwrap_or_else(|e| panic!("fused {fused}, {order:?}: {e}"));
        }
        // A shard missing, one twice (the same count as the right gather:
        // the ranges are equal), one in another's place, one more.
        for order in [&[0usize][..], &[0, 0], &[1, 1], &[0, 1, 1]] {
            let r = finish(order, fused);
            assert!(
                matches!(&r, Err(xent::Error::BadBuffer { what: "merged", reason })
                    if reason.contains("4 classes")),
                "fused {fused}, shards {order:?}: {r:?}"
            );
        }
    }
}

/// Misuse is a typed error naming the bad value.
#[test]
fn misuse_is_a_typed_error() {
    let Some(ctx) = ctx() else { return };
    let x = [0.0f32; 10];
    let t = [1i64, 2];
    let opts = CrossEntropyOptions::default();
    let r = ctx.cross_entropy_sharded(
        &x,
        &[2, 5],
        Targets::I64(&t),
        Weights::none(),
        &opts,
        &Default::default(),
        0,
    );
    assert!(
        matches!(
            r,
            Err(xent::Error::InvalidOption {
                name: "vocab_shards",
                ..
            })
        ),
        "{r:?}"
    );
    // A range past C.
    let (logits, targets, out) = (
        buffer(ctx, &[0; 40]),
        buffer(ctx, &[0; 8]),
        buffer(ctx, &[0; 96]),
    );
    let b = xent::VocabPartialBuffers {
        logits: logits.slice(..),
        targets: xent::TargetBuffer::ClassI32(targets.slice(..)),
        weights: None,
        precision: Precision::F32,
        partial: out.slice(..),
    };
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let r = ctx.record_vocab_partial(&mut encoder, &[2, 5], ClassRange::new(3, 6), &opts, &b);
    assert!(
        matches!(
            r,
            Err(xent::Error::InvalidOption {
                name: "class range",
                ..
            })
        ),
        "{r:?}"
    );
    // Records too small for the rows.
    let small = buffer(ctx, &[0; 48]);
    let r = ctx.record_vocab_partial(
        &mut encoder,
        &[2, 5],
        ClassRange::new(0, 5),
        &opts,
        &xent::VocabPartialBuffers {
            partial: small.slice(..),
            ..b
        },
    );
    assert!(
        matches!(
            r,
            Err(xent::Error::BadBuffer {
                what: "partial",
                ..
            })
        ),
        "{r:?}"
    );
    // The merge: no shards, too many, the same buffer twice.
    for shards in [0, 16_385] {
        let r = ctx.record_vocab_merge(
            &mut encoder,
            &xent::MergeDims { rows: 2, shards },
            &opts,
            &xent::VocabMergeBuffers {
                gathered: out.slice(..),
                merged: small.slice(..),
            },
        );
        assert!(
            matches!(r, Err(xent::Error::InvalidOption { name: "shards", .. })),
            "{r:?}"
        );
    }
    let r = ctx.record_vocab_merge(
        &mut encoder,
        &xent::MergeDims { rows: 2, shards: 1 },
        &opts,
        &xent::VocabMergeBuffers {
            gathered: out.slice(..),
            merged: out.slice(..),
        },
    );
    assert!(matches!(r, Err(xent::Error::BadBuffer { .. })), "{r:?}");
}
