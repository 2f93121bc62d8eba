//! Misuse of the vocabulary-parallel calls is a typed error.

use super::records::buffer;
use crate::common::ctx;
use xent::{ClassRange, CrossEntropyOptions, Precision, Targets, Weights};

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
    bad_merges_are_typed_errors(ctx, &mut encoder, [&out, &small], &opts);
}

/// The merge: no shards, too many, the same buffer twice.
fn bad_merges_are_typed_errors(
    ctx: &xent::Context,
    encoder: &mut wgpu::CommandEncoder,
    [out, small]: [&wgpu::Buffer; 2],
    opts: &CrossEntropyOptions,
) {
    for shards in [0, 16_385] {
        let r = ctx.record_vocab_merge(
            encoder,
            &xent::MergeDims { rows: 2, shards },
            opts,
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
        encoder,
        &xent::MergeDims { rows: 2, shards: 1 },
        opts,
        &xent::VocabMergeBuffers {
            gathered: out.slice(..),
            merged: out.slice(..),
        },
    );
    assert!(matches!(r, Err(xent::Error::BadBuffer { .. })), "{r:?}");
}

/// The fused op's split takes class indices: probabilities are refused,
/// naming them, before anything is recorded.
#[test]
fn the_fused_split_refuses_probability_targets() {
    let Some(ctx) = ctx() else { return };
    let dims = xent::LinearDims { n: 2, h: 3, v: 4 };
    let (hidden, weight) = (buffer(ctx, &[0; 24]), buffer(ctx, &[0; 48]));
    let (probs, partial) = (buffer(ctx, &[0; 32]), buffer(ctx, &[0; 256]));
    let b = xent::LinearPartialBuffers {
        hidden: hidden.slice(..),
        weight: weight.slice(..),
        bias: None,
        targets: xent::TargetBuffer::Probs(probs.slice(..)),
        weights: None,
        partial: partial.slice(..),
        precision: Precision::F32,
    };
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let r = ctx.record_linear_vocab_partial(
        &mut encoder,
        &dims,
        ClassRange::new(0, 4),
        &Default::default(),
        &b,
    );
    assert!(
        matches!(
            r,
            Err(xent::Error::Unsupported {
                what: "probability targets",
                ..
            })
        ),
        "{r:?}"
    );
}
