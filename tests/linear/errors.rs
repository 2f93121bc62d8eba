//! Misuse of the fused linear cross-entropy is a typed error.

use crate::common::ctx;
use xent::{CrossEntropyOptions, LinearCrossEntropyOptions, LinearDims};

#[test]
fn misuse_is_a_typed_error() {
    let Some(ctx) = ctx() else { return };
    let dims = LinearDims { n: 2, h: 3, v: 4 };
    let (h, w, t) = (vec![0.0f32; 6], vec![0.0f32; 12], vec![0i64, 3]);
    let o = LinearCrossEntropyOptions::default();
    let run =
        |h: &[f32], w: &[f32], b: Option<&[f32]>, t: &[i64], o: &LinearCrossEntropyOptions| {
            ctx.linear_cross_entropy(h, w, b, t, None, &dims, o, &Default::default())
                .unwrap_err()
        };
    assert!(matches!(
        run(&h[..5], &w, None, &t, &o),
        xent::Error::ShapeMismatch { what: "hidden", .. }
    ));
    assert!(matches!(
        run(&h, &w[..8], None, &t, &o),
        xent::Error::ShapeMismatch { what: "weight", .. }
    ));
    assert!(matches!(
        run(&h, &w, Some(&[0.0; 3]), &t, &o),
        xent::Error::ShapeMismatch { what: "bias", .. }
    ));
    assert!(matches!(
        run(&h, &w, None, &t[..1], &o),
        xent::Error::ShapeMismatch {
            what: "targets",
            ..
        }
    ));
    assert!(matches!(
        run(&h, &w, None, &[0, 4], &o),
        xent::Error::TargetOutOfRange { value: 4, .. }
    ));
    let capped = LinearCrossEntropyOptions {
        loss: CrossEntropyOptions {
            softcap: Some(0.0),
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(matches!(
        run(&h, &w, None, &t, &capped),
        xent::Error::InvalidOption {
            name: "softcap",
            ..
        }
    ));
    let tight = LinearCrossEntropyOptions {
        scratch_budget: Some(40),
        ..Default::default()
    };
    assert!(matches!(
        run(&h, &w, None, &t, &tight),
        xent::Error::InvalidOption {
            name: "scratch_budget",
            ..
        }
    ));
    an_empty_batch_writes_zero_gradients(ctx, &w, &o);
}

/// An empty batch: mean NaN, and the gradients of W and b written as
/// zeros (over buffers that held ones: no chunk writes them).
fn an_empty_batch_writes_zero_gradients(
    ctx: &xent::Context,
    w: &[f32],
    o: &LinearCrossEntropyOptions,
) {
    use wgpu::util::DeviceExt;
    let empty = LinearDims { n: 0, h: 3, v: 4 };
    let dev = ctx.device();
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let init = |v: &[f32]| {
        dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: bytemuck::cast_slice(v),
            usage,
        })
    };
    let (hidden, weight, bias, targets) =
        (init(&[0.0; 4]), init(w), init(&[0.0; 4]), init(&[0.0; 4]));
    let (loss, status, gw, gb) = (
        init(&[1.0]),
        init(&[0.0; 4]),
        init(&[1.0; 12]),
        init(&[1.0; 4]),
    );
    let buffers = xent::LinearBuffers {
        bias: Some(bias.slice(..)),
        grad_weight: Some(gw.slice(..)),
        grad_bias: Some(gb.slice(..)),
        ..xent::LinearBuffers::new(
            hidden.slice(..),
            weight.slice(..),
            xent::TargetBuffer::ClassI32(targets.slice(..)),
            loss.slice(..),
            status.slice(..),
        )
    };
    let mut encoder = dev.create_command_encoder(&Default::default());
    ctx.record_linear_cross_entropy(&mut encoder, &empty, o, &buffers)
        .unwrap();
    ctx.queue().submit([encoder.finish()]);
    assert!(crate::common::read_f32(ctx, &loss)[0].is_nan());
    assert_eq!(crate::common::read_f32(ctx, &gw), vec![0.0; 12]);
    assert_eq!(crate::common::read_f32(ctx, &gb), vec![0.0; 4]);
}

#[test]
fn bad_probability_targets_are_typed_errors() {
    let Some(ctx) = ctx() else { return };
    let dims = LinearDims { n: 2, h: 3, v: 4 };
    let (h, w) = (vec![0.0f32; 6], vec![0.0f32; 12]);
    let run = |p: &[f32], o: &LinearCrossEntropyOptions| {
        let t = xent::Targets::Probs(p);
        let gpu =
            ctx.linear_cross_entropy_with(&h, &w, None, t, None, &dims, o, &Default::default());
        let cpu = xent::cpu::linear_cross_entropy_with(&h, &w, None, t, None, &dims, o);
        (gpu.unwrap_err(), cpu.unwrap_err())
    };
    let o = LinearCrossEntropyOptions::default();
    for e in <[xent::Error; 2]>::from(run(&[0.25; 7], &o)) {
        assert!(
            matches!(
                e,
                xent::Error::ShapeMismatch {
                    what: "probability targets",
                    ..
                }
            ),
            "{e}"
        );
    }
    let mut p = vec![0.25f32; 8];
    p[5] = -0.5;
    for e in <[xent::Error; 2]>::from(run(&p, &o)) {
        assert!(
            matches!(e, xent::Error::InvalidProbability { value, .. } if value == -0.5),
            "{e}"
        );
    }
    let ignoring = LinearCrossEntropyOptions {
        loss: CrossEntropyOptions {
            ignore_index: 0,
            ..Default::default()
        },
        ..Default::default()
    };
    for e in <[xent::Error; 2]>::from(run(&[0.25; 8], &ignoring)) {
        assert!(
            matches!(
                e,
                xent::Error::InvalidOption {
                    name: "ignore_index",
                    ..
                }
            ),
            "{e}"
        );
    }
    crate::common::still_works();
}

#[test]
fn shapes_that_are_not_hidden_and_weight_name_themselves() {
    use xent::{Error, LinearDims};
    for (hidden, weight, named) in [
        (&[][..], &[4usize, 3][..], &[][..]),
        (&[2, 3], &[4, 2, 3], &[4, 2, 3]),
        (&[2, 3], &[12], &[12]),
        (&[2, 3], &[4, 5], &[4, 5]),
    ] {
        let e = LinearDims::from_shapes(hidden, weight).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidShape { shape, .. } if shape == named),
            "{e}"
        );
    }
    let d = LinearDims::from_shapes(&[0, 7, 3], &[4, 3]).unwrap();
    assert_eq!(d, LinearDims { n: 0, h: 3, v: 4 });
}
