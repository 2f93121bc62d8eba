//! The vocabulary split's records: their documented layout, by hand, and
//! records that miss or repeat a shard as a typed error.

use crate::common::{ctx, Rng};
use xent::{ClassRange, CrossEntropyOptions, LinearCrossEntropyOptions, LinearDims, Precision};

/// Reads `buffer` (COPY_SRC) as u32 words.
pub fn words(ctx: &xent::Context, buffer: &wgpu::Buffer) -> Vec<u32> {
    crate::common::read_f32(ctx, buffer)
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

pub fn buffer(ctx: &xent::Context, contents: &[u8]) -> wgpu::Buffer {
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

/// The record of logits `values` of the classes in `range` of the row
/// [1, 4] (target 3, class weights `w`), recorded into a buffer of 0xab.
fn partial_record(
    ctx: &xent::Context,
    opts: &CrossEntropyOptions,
    targets: &wgpu::Buffer,
    range: ClassRange,
    values: &[f32],
    w: &[f32],
) -> wgpu::Buffer {
    let (logits, weights) = (
        buffer(ctx, bytemuck::cast_slice(values)),
        buffer(ctx, bytemuck::cast_slice(w)),
    );
    let out = buffer(ctx, &[0xab; xent::VOCAB_RECORD_BYTES as usize]);
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let b = xent::VocabPartialBuffers {
        logits: logits.slice(..),
        targets: xent::TargetBuffer::ClassI32(targets.slice(..)),
        weights: Some(weights.slice(..)),
        precision: Precision::F32,
        partial: out.slice(..),
    };
    ctx.record_vocab_partial(&mut encoder, &[1, 4], range, opts, &b)
        .unwrap();
    ctx.queue().submit([encoder.finish()]);
    out
}

/// The GPU merge of one row's records gathered in the given order.
fn merged_record(
    ctx: &xent::Context,
    opts: &CrossEntropyOptions,
    records: &[Vec<u32>],
) -> Vec<u32> {
    let (gathered, merged) = (
        buffer(ctx, bytemuck::cast_slice(&records.concat())),
        buffer(ctx, &[0; xent::VOCAB_RECORD_BYTES as usize]),
    );
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    ctx.record_vocab_merge(
        &mut encoder,
        &xent::MergeDims {
            rows: 1,
            shards: records.len(),
        },
        opts,
        &xent::VocabMergeBuffers {
            gathered: gathered.slice(..),
            merged: merged.slice(..),
        },
    )
    .unwrap();
    ctx.queue().submit([encoder.finish()]);
    words(ctx, &merged)
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
        words(ctx, &partial_record(ctx, &opts, &targets, range, values, w))
    };
    let high = partial(ClassRange::new(2, 4), &[3.0, 4.0], &[0.5, 2.0]);
    the_shard_2_4_holds_its_words(&high);
    let empty = partial(ClassRange::new(4, 4), &[], &[]);
    assert_eq!(
        empty,
        [
            f32::MIN.to_bits(),
            0,
            0,
            0,
            0,
            0,
            u32::MAX,
            0,
            u32::MAX,
            0,
            0,
            0,
            0
        ],
        "an empty range: the merge's identity"
    );

    // The GPU merge of records gathered in the given order.
    let merge = |records: &[Vec<u32>]| merged_record(ctx, &opts, records);
    // The merge, [0, 2) then [2, 4) then the empty range.
    let low = partial(ClassRange::new(0, 2), &[1.0, 2.0], &[1.0, 1.5]);
    let m = merge(&[low.clone(), high.clone(), empty.clone()]);
    the_merge_is_the_closed_form(&m);
    // The empty range first instead of last: the identity, the same bits.
    assert_eq!(merge(&[empty, low, high]), m, "an empty record first");

    // The MAX-then-SUM recipe of the layout's documentation, as an engine
    // without an all-gather would run it, on the row moved below 0 (where
    // an all-zero empty record would win the max): the GPU merge's record.
    let x = [-9.0f32, -8.0, -7.0, -6.0];
    let records: Vec<Vec<u32>> = vec![
        partial(ClassRange::new(0, 2), &x[..2], &[1.0, 1.5]),
        partial(ClassRange::new(2, 4), &x[2..], &[0.5, 2.0]),
        partial(ClassRange::new(4, 4), &[], &[]),
    ];
    the_max_then_sum_recipe_gives_the_merge(&records, &merge(&records));
}

/// The words of the record of [3, 4] in [2, 4) with weights [0.5, 2].
fn the_shard_2_4_holds_its_words(w: &[u32]) {
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
    // The argmax's order key: a positive number's bits with the top bit set.
    assert_eq!(
        (w[6], w[7], w[8], w[10], w[11]),
        (3, 4.0f32.to_bits() | 1 << 31, u32::MAX, 2, 5),
        "argmax, its key, count, class sum"
    );
    // t = Σ e^(x − m)·(x − m) = e⁻¹·(−1) + 1·0.
    let t = -(-1.0f32).exp();
    assert!((f(12) - t).abs() < 1e-6, "t {}", f(12));
}

/// The merged record `m` of the row [1, 2, 3, 4] (weights [1, 1.5, 0.5, 2]).
fn the_merge_is_the_closed_form(m: &[u32]) {
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
    let t: f64 = x.iter().map(|v| (v - 4.0).exp() * (v - 4.0)).sum();
    assert!((f(12) - t).abs() < 1e-6, "t {} vs {t}", f(12));
}

/// The MAX-then-SUM recipe over `records` gives the GPU merge's record `m`.
fn the_max_then_sum_recipe_gives_the_merge(records: &[Vec<u32>], m: &[u32]) {
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
    // t_k moved to the top: e^(m_k − m)·(t_k + (m_k − m)·s_k), an empty record 0.
    let t = records
        .iter()
        .map(|r| (g(r, 0) - top).exp() * (g(r, 12) + (g(r, 0) - top) * g(r, 1)))
        .sum::<f64>();
    // MAXLOC over (key as i32 with its top bit flipped, class).
    let key = |r: &[u32]| (r[7] ^ 1 << 31) as i32;
    let best = records
        .iter()
        .max_by(|p, q| key(p).cmp(&key(q)).then(q[6].cmp(&p[6])))
        .unwrap();
    let count: u32 = records.iter().map(|r| r[10]).sum();
    let f = |i: usize| g(m, i);
    assert_eq!((f(0), top), (-6.0, -6.0), "m");
    for (i, want) in [(1, s), (2, xt), (3, r), (4, a), (5, b), (12, t)] {
        assert!((f(i) - want).abs() < 1e-5, "word {i}: {} vs {want}", f(i));
    }
    let csum = records.iter().fold(0u32, |a, r| a.wrapping_add(r[11]));
    assert_eq!(
        (m[6], best[6], m[10], count, m[11], csum),
        (3, 3, 4, 4, 6, 6),
        "argmax, count, class sum"
    );
}

/// The split problem of `records_that_miss_or_repeat_a_shard_are_a_typed_error`:
/// 3 rows, H 2, V 4 in two shards of two classes.
struct Split {
    dims: [usize; 2],
    ldims: LinearDims,
    ranges: Vec<ClassRange>,
    targets: wgpu::Buffer,
    opts: CrossEntropyOptions,
    lopts: LinearCrossEntropyOptions,
    shards: Vec<Shard>,
}

/// A shard's logits, weight rows and hidden, and its records (plain, fused).
struct Shard {
    logits: wgpu::Buffer,
    w: wgpu::Buffer,
    hid: wgpu::Buffer,
    plain: Vec<u32>,
    fused: Vec<u32>,
}

fn split_problem(ctx: &xent::Context) -> Split {
    let (n, h, v) = (3usize, 2usize, 4usize);
    let mut rng = Rng(4);
    let x: Vec<f32> = (0..n * v).map(|_| rng.uniform(-3.0, 3.0)).collect();
    let hidden: Vec<f32> = (0..n * h).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let weight: Vec<f32> = (0..v * h).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let mut split = Split {
        dims: [n, v],
        ldims: LinearDims { n, h, v },
        ranges: ClassRange::split(v, 2).unwrap(),
        targets: buffer(ctx, bytemuck::cast_slice(&[3i32, 0, 2])),
        opts: CrossEntropyOptions::default(),
        lopts: LinearCrossEntropyOptions::default(),
        shards: Vec::new(),
    };
    for r in split.ranges.clone() {
        let shard = shard_records(ctx, &split, r, (&x, &hidden, &weight));
        split.shards.push(shard);
    }
    split
}

/// Each shard's logits, weight rows and records (plain, fused).
fn shard_records(
    ctx: &xent::Context,
    split: &Split,
    r: ClassRange,
    (x, hidden, weight): (&[f32], &[f32], &[f32]),
) -> Shard {
    let (v, h) = (split.ldims.v, split.ldims.h);
    let targets = &split.targets;
    let logits: Vec<f32> = x
        .chunks(v)
        .flat_map(|row| row[r.start..r.end].to_vec())
        .collect();
    let (logits, w) = (
        buffer(ctx, bytemuck::cast_slice(&logits)),
        buffer(ctx, bytemuck::cast_slice(&weight[r.start * h..r.end * h])),
    );
    let (plain, fused) = (
        buffer(ctx, &[0; 3 * xent::VOCAB_RECORD_BYTES as usize]),
        buffer(ctx, &[0; 3 * xent::VOCAB_RECORD_BYTES as usize]),
    );
    let hid = buffer(ctx, bytemuck::cast_slice(hidden));
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let b = xent::VocabPartialBuffers {
        logits: logits.slice(..),
        targets: xent::TargetBuffer::ClassI32(targets.slice(..)),
        weights: None,
        precision: Precision::F32,
        partial: plain.slice(..),
    };
    ctx.record_vocab_partial(&mut encoder, &split.dims, r, &split.opts, &b)
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
    ctx.record_linear_vocab_partial(&mut encoder, &split.ldims, r, &split.lopts, &b)
        .unwrap();
    ctx.queue().submit([encoder.finish()]);
    Shard {
        plain: words(ctx, &plain),
        fused: words(ctx, &fused),
        logits,
        w,
        hid,
    }
}

/// Records the merge of `order`'s records (fused or plain) into a new buffer.
fn record_merge_of(
    ctx: &xent::Context,
    split: &Split,
    encoder: &mut wgpu::CommandEncoder,
    order: &[usize],
    fused: bool,
) -> xent::Result<wgpu::Buffer> {
    let all: Vec<u32> = order
        .iter()
        .flat_map(|&k| {
            if fused {
                split.shards[k].fused.clone()
            } else {
                split.shards[k].plain.clone()
            }
        })
        .collect();
    let (gathered, merged) = (
        buffer(ctx, bytemuck::cast_slice(&all)),
        buffer(ctx, &[0; 3 * xent::VOCAB_RECORD_BYTES as usize]),
    );
    ctx.record_vocab_merge(
        encoder,
        &xent::MergeDims {
            rows: split.dims[0],
            shards: order.len(),
        },
        &split.opts,
        &xent::VocabMergeBuffers {
            gathered: gathered.slice(..),
            merged: merged.slice(..),
        },
    )?;
    Ok(merged)
}

/// Shard 0's finish from a merge of `order`'s records.
fn finish(ctx: &xent::Context, split: &Split, order: &[usize], fused: bool) -> xent::Result<()> {
    let layout = xent::Layout::from_dims(&split.dims).unwrap();
    let (loss, status, grad) = (
        buffer(ctx, &[0; 4]),
        // Word 3 already flagged: the finish must clear it.
        buffer(ctx, bytemuck::cast_slice(&[0u32, 0, 0, 2])),
        buffer(ctx, &[0; 64]),
    );
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let merged = record_merge_of(ctx, split, &mut encoder, order, fused)?;
    let Shard { logits, w, hid, .. } = &split.shards[0];
    let targets = xent::TargetBuffer::ClassI32(split.targets.slice(..));
    if fused {
        let b = xent::LinearBuffers {
            grad_hidden: Some(grad.slice(..)),
            ..xent::LinearBuffers::new(
                hid.slice(..),
                w.slice(..),
                targets,
                loss.slice(..),
                status.slice(..),
            )
        };
        ctx.record_linear_vocab_finish(
            &mut encoder,
            &split.ldims,
            split.ranges[0],
            &split.lopts,
            &xent::LinearFinishBuffers {
                shard: b,
                merged: merged.slice(..),
            },
        )?;
    } else {
        let b = xent::CrossEntropyBuffers::new(
            logits.slice(..),
            targets,
            loss.slice(..),
            Some(grad.slice(..)),
            status.slice(..),
        );
        ctx.record_vocab_finish(
            &mut encoder,
            &split.dims,
            split.ranges[0],
            &split.opts,
            &xent::VocabFinishBuffers {
                shard: b,
                merged: merged.slice(..),
            },
        )?;
    }
    ctx.queue().submit([encoder.finish()]);
    let bytes: Vec<u8> = bytemuck::cast_slice(&words(ctx, &status)).to_vec();
    <xent::CrossEntropyStatus as xent::OpStatus>::from_bytes(&bytes).check(&layout, -100)
}

/// Merged records that do not cover each of the call's classes once (a
/// shard missing from the gather, gathered twice, or in another's place
/// with a range of the same size) make the finish's status an error naming
/// the merged buffer, plain and fused; the right gather passes, in order or
/// not.
#[test]
fn records_that_miss_or_repeat_a_shard_are_a_typed_error() {
    let Some(ctx) = ctx() else { return };
    let split = split_problem(ctx);
    for fused in [false, true] {
        // Each class once: in order, or out of it (the same sums).
        for order in [[0usize, 1], [1, 0]] {
            finish(ctx, &split, &order, fused)
                .unwrap_or_else(|e| panic!("fused {fused}, {order:?}: {e}"));
        }
        // A shard missing, one twice (the same count as the right gather:
        // the ranges are equal), one in another's place, one more.
        for order in [&[0usize][..], &[0, 0], &[1, 1], &[0, 1, 1]] {
            let r = finish(ctx, &split, order, fused);
            assert!(
                matches!(&r, Err(xent::Error::BadBuffer { what: "merged", reason })
                    if reason.contains("4 classes")),
                "fused {fused}, shards {order:?}: {r:?}"
            );
        }
    }
}
