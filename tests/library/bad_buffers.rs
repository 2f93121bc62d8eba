//! Buffers the device cannot use: tensors larger than its largest buffer,
//! mapped buffers and regions at offsets it cannot bind are typed errors of
//! every op, naming the buffer; the context keeps working.

use super::foreign_buffers::{opts, submit_cleanly};
use crate::common::{buffer, ctx, still_works_on, WORKED_DIMS, WORKED_LOGITS, WORKED_TARGETS};
use xent::{CrossEntropyBuffers, Error, Reduction, TargetBuffer};

#[test]
fn tensors_larger_than_the_devices_largest_buffer_are_a_typed_error() {
    let max = 1 << 20;
    let Some(ctx) = crate::common::max_buffer_ctx(max) else {
        return;
    };
    // 2 MiB of f32 logits: (512, 1024).
    let (n, c) = (512, 1024);
    let logits = vec![0.0f32; n * c];
    let targets = vec![0i64; n];
    let too_large = |what: &str, got: Result<(), Error>| match got {
        Err(Error::InvalidShape { reason, .. }) => {
            assert!(reason.contains("max_buffer_size"), "{what}: {reason}")
        }
        other => panic!("{what}: expected Error::InvalidShape, got {other:?}"),
    };
    too_large(
        "cross_entropy",
        ctx.cross_entropy(
            &logits,
            &[n, c],
            &targets,
            None,
            &opts(),
            &Default::default(),
        )
        .map(drop),
    );
    too_large(
        "softmax",
        ctx.softmax(&logits, &[n, c], &xent::SoftmaxOptions::default())
            .map(drop),
    );
    // And the context still works.
    still_works_on(&ctx);
}

/// Asserts `got` is the error of a mapped buffer `what`.
fn is_mapped_error(what: &str, got: Result<(), Error>) {
    match got {
        Err(Error::BadBuffer { what: w, reason }) => {
            assert_eq!(w, what);
            assert!(reason.contains("mapped"), "{reason}");
        }
        other => panic!("{what}: expected Error::BadBuffer, got {other:?}"),
    }
}

#[test]
fn a_mapped_buffer_is_a_typed_error_of_every_op() {
    // wgpu would accept the recording and fail at the submission (a panic in
    // its default error handler); xent names the mapped buffer instead. The
    // context keeps working.
    let Some(ctx) = ctx() else { return };
    let s = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let mapped = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("mapped"),
        size: 64,
        usage: s,
        mapped_at_creation: true,
    });
    let (targets, loss) = (buffer(ctx, &[0; 12], s), buffer(ctx, &[0; 4], s));
    let (grad, status) = (buffer(ctx, &[0; 64], s), buffer(ctx, &[0; 16], s));
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    let b = CrossEntropyBuffers::new(
        mapped.slice(..),
        TargetBuffer::ClassI32(targets.slice(..)),
        loss.slice(..),
        Some(grad.slice(..)),
        status.slice(..),
    );
    is_mapped_error(
        "logits",
        ctx.record_cross_entropy(&mut enc, &WORKED_DIMS, &opts(), &b),
    );
    let b = xent::ElementwiseBuffers::new(
        grad.slice(..),
        grad.slice(..),
        loss.slice(..),
        Some(mapped.slice(..)),
        status.slice(..),
    );
    is_mapped_error(
        "grad",
        ctx.record_elementwise_loss(
            &mut enc,
            &[16],
            &xent::ElementwiseOptions {
                reduction: Reduction::Mean,
                ..xent::ElementwiseOptions::new(xent::ElementwiseLoss::Mse)
            },
            &b,
        ),
    );
    is_mapped_error(
        "output",
        ctx.record_softmax(
            &mut enc,
            &[4, 4],
            &xent::SoftmaxOptions {
                kind: xent::SoftmaxKind::Softmax,
            },
            &xent::SoftmaxBuffers {
                input: grad.slice(..),
                output: mapped.slice(..),
                precision: xent::Precision::F32,
            },
        ),
    );
    drop(enc);
    mapped.unmap();
    let out = ctx
        .cross_entropy(
            &WORKED_LOGITS,
            &WORKED_DIMS,
            &WORKED_TARGETS,
            None,
            &opts(),
            &Default::default(),
        )
        .unwrap();
    assert!((out.loss[0] - 3.7925).abs() < 1e-3);
}

/// Asserts `got` is the error of the region `what`, 4 bytes into its
/// buffer, off the device's `alignment`.
fn is_bad_offset(what: &str, got: Result<(), Error>, alignment: u64) {
    match got {
        Err(Error::BadOffset {
            what: w,
            offset,
            alignment: al,
        }) => {
            assert_eq!((w, offset, al), (what, 4, alignment));
            let message = format!("{}", got.unwrap_err());
            assert!(message.contains("offset 4"), "{message}");
        }
        other => panic!("{what}: expected Error::BadOffset, got {other:?}"),
    }
}

#[test]
fn a_region_at_an_offset_the_device_cannot_bind_is_a_typed_error_naming_it() {
    // Regions must start at a multiple of the storage offset alignment (at
    // least 16 bytes); 4 bytes in never is. Every op names the region, its
    // offset and the alignment, records nothing, and the context keeps
    // working; a region too short past an aligned offset names its size.
    let Some(ctx) = ctx() else { return };
    let s = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let big = buffer(ctx, &[0; 1024], s);
    let (a, b) = (buffer(ctx, &[0; 1024], s), buffer(ctx, &[0; 1024], s));
    let (c, d) = (buffer(ctx, &[0; 1024], s), buffer(ctx, &[0; 1024], s));
    let alignment = u64::from(ctx.device().limits().min_storage_buffer_offset_alignment).max(16);
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    let buffers = (&big, [&a, &b, &c, &d]);
    the_losses_and_softmax_name_the_region(ctx, &mut enc, buffers, alignment);
    the_products_and_the_merge_name_the_region(ctx, &mut enc, buffers, alignment);
    an_aligned_region_too_short_is_named(ctx, &mut enc, buffers, alignment);
    submit_cleanly(ctx, enc);
    let out = ctx
        .cross_entropy(
            &WORKED_LOGITS,
            &WORKED_DIMS,
            &WORKED_TARGETS,
            None,
            &opts(),
            &Default::default(),
        )
        .unwrap();
    assert!((out.loss[0] - 3.7925).abs() < 1e-3);
}

/// `big`'s region 4 bytes in, as cross-entropy's logits, an elementwise
/// target and softmax's output.
fn the_losses_and_softmax_name_the_region(
    ctx: &xent::Context,
    enc: &mut wgpu::CommandEncoder,
    (big, [a, b, c, d]): (&wgpu::Buffer, [&wgpu::Buffer; 4]),
    alignment: u64,
) {
    let bad = |what: &str, got| is_bad_offset(what, got, alignment);
    let ce = CrossEntropyBuffers::new(
        big.slice(4..),
        TargetBuffer::ClassI32(a.slice(..)),
        b.slice(..),
        Some(c.slice(..)),
        d.slice(..),
    );
    bad(
        "logits",
        ctx.record_cross_entropy(enc, &WORKED_DIMS, &opts(), &ce),
    );
    let ew =
        xent::ElementwiseBuffers::new(a.slice(..), big.slice(4..), b.slice(..), None, d.slice(..));
    let mse = xent::ElementwiseLoss::Mse;
    bad(
        "target",
        ctx.record_elementwise_loss(
            enc,
            &[16],
            &xent::ElementwiseOptions {
                reduction: Reduction::Mean,
                ..xent::ElementwiseOptions::new(mse)
            },
            &ew,
        ),
    );
    let sm = xent::SoftmaxBuffers {
        input: a.slice(..),
        output: big.slice(4..),
        precision: xent::Precision::F32,
    };
    let softmax = xent::SoftmaxOptions::default();
    bad("output", ctx.record_softmax(enc, &[4, 4], &softmax, &sm));
}

/// `big`'s region 4 bytes in, as a product's `a`, the fused op's weight and
/// the vocabulary merge's output.
fn the_products_and_the_merge_name_the_region(
    ctx: &xent::Context,
    enc: &mut wgpu::CommandEncoder,
    (big, [a, b, c, d]): (&wgpu::Buffer, [&wgpu::Buffer; 4]),
    alignment: u64,
) {
    let bad = |what: &str, got| is_bad_offset(what, got, alignment);
    let product = xent::ProductBuffers {
        a: xent::MatrixView::dense(big.slice(4..), xent::Precision::F32, 4),
        b: xent::MatrixView::dense(a.slice(..), xent::Precision::F32, 4),
        bias: None,
        out: b.slice(..),
        out_offset: 0,
        out_stride: 4,
        accumulate: false,
    };
    let dims = xent::MatmulDims { m: 4, n: 4, k: 4 };
    let product_opts = xent::MatmulOptions::default();
    bad("a", ctx.record_matmul(enc, &dims, &product_opts, &product));
    let linear = xent::LinearBuffers::new(
        a.slice(..),
        big.slice(4..),
        xent::TargetBuffer::ClassI32(b.slice(..)),
        c.slice(..),
        d.slice(..),
    );
    let ldims = xent::LinearDims { n: 2, h: 3, v: 4 };
    bad(
        "weight",
        ctx.record_linear_cross_entropy(enc, &ldims, &Default::default(), &linear),
    );
    bad(
        "merged",
        ctx.record_vocab_merge(
            enc,
            &xent::MergeDims { rows: 2, shards: 2 },
            &opts(),
            &xent::VocabMergeBuffers {
                gathered: a.slice(..),
                merged: big.slice(4..),
            },
        ),
    );
}

fn an_aligned_region_too_short_is_named(
    ctx: &xent::Context,
    enc: &mut wgpu::CommandEncoder,
    (big, [a, b, c, d]): (&wgpu::Buffer, [&wgpu::Buffer; 4]),
    alignment: u64,
) {
    // Aligned but too short: the size, the offset and the buffer's size named.
    let short = CrossEntropyBuffers {
        logits: big.slice(1024 - alignment..),
        ..CrossEntropyBuffers::new(
            big.slice(4..),
            TargetBuffer::ClassI32(a.slice(..)),
            b.slice(..),
            Some(c.slice(..)),
            d.slice(..),
        )
    };
    match ctx.record_cross_entropy(enc, &[4, 100], &opts(), &short) {
        Err(Error::BadBuffer {
            what: "logits",
            reason,
        }) => {
            assert!(
                reason.contains(&format!("offset {}", 1024 - alignment)),
                "{reason}"
            );
        }
        other => panic!("expected Error::BadBuffer, got {other:?}"),
    }
}
