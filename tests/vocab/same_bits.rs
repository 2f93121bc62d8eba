//! Same inputs, same bits: the vocabulary split recorded by the caller,
//! whatever its buffers' offsets, gives the host API's bits.

use crate::common::ctx;
use crate::common::placed::{
    placed, read_region, region, rows_and_classes as data, Place, EXACT, OFFSET, PADDED,
};
use xent::{CrossEntropyBuffers, CrossEntropyOptions, Precision, TargetBuffer, Targets, Weights};

/// The columns of `range` of each row (of `classes` values) of `v`.
fn columns(classes: usize, range: &xent::ClassRange, v: &[f32]) -> Vec<f32> {
    v.chunks(classes)
        .flat_map(|row| row[range.start..range.end].to_vec())
        .collect()
}

/// A split call's shape: dims, its shards' class ranges, options.
type Split<'a> = (
    &'a [usize; 2],
    &'a [xent::ClassRange],
    &'a CrossEntropyOptions,
);

#[test]
fn vocabulary_parallel_bits_do_not_depend_on_the_api_or_offsets() {
    let Some(ctx) = ctx() else { return };
    let (dims, shards) = ([6usize, 50], 3);
    let (x, t) = data(&dims, 61);
    let t64: Vec<i64> = t.iter().map(|&v| i64::from(v)).collect();
    let opts = CrossEntropyOptions::default();
    let host = ctx
        .cross_entropy_sharded(
            &x,
            &dims,
            Targets::I64(&t64),
            Weights::none(),
            &opts,
            &Default::default(),
            shards,
        )
        .unwrap();
    let host_grad = host.grad.unwrap();
    let ranges = xent::ClassRange::split(dims[1], shards).unwrap();
    let split = (&dims, &ranges[..], &opts);
    let block = dims[0] as u64 * xent::VOCAB_RECORD_BYTES;
    for place in [EXACT, PADDED, OFFSET] {
        let targets = placed(ctx, bytemuck::cast_slice(&t), place);
        let merged = placed(ctx, &vec![0; block as usize], place);
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        let logits =
            record_partials_and_merge(ctx, &mut encoder, split, &x, [&targets, &merged], place);
        let outputs = record_finishes(
            ctx,
            &mut encoder,
            split,
            &logits,
            [&targets, &merged],
            place,
        );
        ctx.queue().submit([encoder.finish()]);
        for (range, (loss, grad, len)) in ranges.iter().zip(&outputs) {
            let want: &[u8] = bytemuck::cast_slice(&host.loss);
            assert!(
                read_region(ctx, loss, place, 4) == want,
                "{place:?}: loss differs"
            );
            let want = columns(dims[1], range, &host_grad);
            assert!(
                read_region(ctx, grad, place, 4 * len) == bytemuck::cast_slice::<f32, u8>(&want),
                "{place:?} {range:?}: gradient differs from the host API's"
            );
        }
    }
}

/// Records each shard's partial of logits `x` into a gathered buffer and
/// their merge into `merged`, every buffer placed at `place`; returns the
/// shards' logits.
fn record_partials_and_merge(
    ctx: &xent::Context,
    encoder: &mut wgpu::CommandEncoder,
    (dims, ranges, opts): Split<'_>,
    x: &[f32],
    [targets, merged]: [&wgpu::Buffer; 2],
    place: Place,
) -> Vec<wgpu::Buffer> {
    let shards = ranges.len();
    let block = dims[0] as u64 * xent::VOCAB_RECORD_BYTES;
    let gathered = placed(ctx, &vec![0; (block * shards as u64) as usize], place);
    let mut logits = Vec::new();
    for (k, range) in ranges.iter().enumerate() {
        let shard = placed(
            ctx,
            bytemuck::cast_slice(&columns(dims[1], range, x)),
            place,
        );
        let partial = placed(ctx, &vec![0; block as usize], place);
        let b = xent::VocabPartialBuffers {
            logits: region(&shard, place),
            targets: TargetBuffer::ClassI32(region(targets, place)),
            weights: None,
            precision: Precision::F32,
            partial: region(&partial, place),
        };
        ctx.record_vocab_partial(encoder, dims, *range, opts, &b)
            .unwrap();
        let to = place.at + k as u64 * block;
        encoder.copy_buffer_to_buffer(&partial, place.at, &gathered, to, block);
        logits.push(shard);
    }
    ctx.record_vocab_merge(
        encoder,
        &xent::MergeDims {
            rows: dims[0],
            shards,
        },
        opts,
        &xent::VocabMergeBuffers {
            gathered: region(&gathered, place),
            merged: region(merged, place),
        },
    )
    .unwrap();
    logits
}

/// Records each shard's finish from `merged`, into buffers placed at
/// `place`: each shard's (loss, gradient, gradient's length).
fn record_finishes(
    ctx: &xent::Context,
    encoder: &mut wgpu::CommandEncoder,
    (dims, ranges, opts): Split<'_>,
    logits: &[wgpu::Buffer],
    [targets, merged]: [&wgpu::Buffer; 2],
    place: Place,
) -> Vec<(wgpu::Buffer, wgpu::Buffer, usize)> {
    let mut outputs = Vec::new();
    for (range, shard) in ranges.iter().zip(logits) {
        let len = dims[0] * range.len();
        let (loss, grad, status) = (
            placed(ctx, &[0; 4], place),
            placed(ctx, &vec![0; 4 * len], place),
            placed(ctx, &[0; 16], place),
        );
        let b = CrossEntropyBuffers::new(
            region(shard, place),
            TargetBuffer::ClassI32(region(targets, place)),
            region(&loss, place),
            Some(region(&grad, place)),
            region(&status, place),
        );
        ctx.record_vocab_finish(
            encoder,
            dims,
            *range,
            opts,
            &xent::VocabFinishBuffers {
                shard: b,
                merged: region(merged, place),
            },
        )
        .unwrap();
        outputs.push((loss, grad, len));
    }
    outputs
}
