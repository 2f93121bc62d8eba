//! Same inputs, same bits: repeated elementwise calls, and the elementwise
//! and softmax results of the recording API whatever their buffers' sizes and
//! offsets (and the host API's softmax).

use super::properties::data;
use crate::common::placed::{placed, read_region, region, Place, EXACT, OFFSET, PADDED};
use crate::common::{ctx, Rng};
use xent::{ElementwiseLoss, Reduction};

#[test]
fn the_same_inputs_give_the_same_bits() {
    let Some(ctx) = ctx() else { return };
    let n = 1 << 20;
    let (x, y) = data(ElementwiseLoss::BceWithLogits, n, 11);
    let run = || {
        ctx.elementwise_loss(
            &x,
            &y,
            &[n],
            Default::default(),
            &xent::ElementwiseOptions::new(ElementwiseLoss::BceWithLogits),
            &Default::default(),
        )
        .unwrap()
    };
    let (a, b) = (run(), run());
    assert_eq!(a.loss[0].to_bits(), b.loss[0].to_bits());
    assert_eq!(a.grad, b.grad);
}

/// Bce with logits' mean of input `x` and target `y` recorded on buffers
/// placed at `place`: the bytes of (gradient, loss).
fn elementwise_at(
    ctx: &xent::Context,
    dims: &[usize],
    (x, y): (&[f32], &[f32]),
    place: Place,
) -> (Vec<u8>, Vec<u8>) {
    let f32s = |v: &[f32]| placed(ctx, bytemuck::cast_slice(v), place);
    let (input, target) = (f32s(x), f32s(y));
    let (loss, grad) = (f32s(&[0.0]), f32s(x));
    let status = f32s(&[0.0; 4]);
    let r = |b| region(b, place);
    let b =
        xent::ElementwiseBuffers::new(r(&input), r(&target), r(&loss), Some(r(&grad)), r(&status));
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let loss_kind = xent::ElementwiseLoss::BceWithLogits;
    ctx.record_elementwise_loss(
        &mut encoder,
        dims,
        &xent::ElementwiseOptions {
            reduction: Reduction::Mean,
            ..xent::ElementwiseOptions::new(loss_kind)
        },
        &b,
    )
    .unwrap();
    ctx.queue().submit([encoder.finish()]);
    (
        read_region(ctx, &grad, place, 4 * 4099),
        read_region(ctx, &loss, place, 4),
    )
}

/// The log-softmax of `x` recorded on buffers placed at `place`: its bytes.
fn log_softmax_at(ctx: &xent::Context, dims: &[usize], x: &[f32], place: Place) -> Vec<u8> {
    let f32s = |v: &[f32]| placed(ctx, bytemuck::cast_slice(v), place);
    let (input, output) = (f32s(x), f32s(x));
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    ctx.record_softmax(
        &mut encoder,
        dims,
        &xent::SoftmaxOptions {
            kind: xent::SoftmaxKind::LogSoftmax,
        },
        &xent::SoftmaxBuffers {
            input: region(&input, place),
            output: region(&output, place),
            precision: xent::Precision::F32,
        },
    )
    .unwrap();
    ctx.queue().submit([encoder.finish()]);
    read_region(ctx, &output, place, 4 * x.len())
}

#[test]
fn elementwise_and_softmax_bits_do_not_depend_on_buffer_sizes_or_offsets() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(11);
    // 4 099 elements: not a multiple of 4; rows of 4 099 and 1 030 classes.
    let dims = [1usize, 4099];
    let x: Vec<f32> = (0..4099).map(|_| rng.uniform(-4.0, 4.0)).collect();
    let y: Vec<f32> = (0..4099).map(|_| rng.uniform(0.0, 1.0)).collect();
    let elementwise = |place| elementwise_at(ctx, &dims, (&x, &y), place);
    let exact = elementwise(EXACT);
    for place in [PADDED, OFFSET] {
        assert!(
            exact == elementwise(place),
            "{place:?}: elementwise results differ"
        );
    }
    for dims in [[1usize, 4099], [3, 1030]] {
        let len = dims[0] * dims[1];
        let softmax = |place| log_softmax_at(ctx, &dims, &x[..len], place);
        let exact = softmax(EXACT);
        for place in [PADDED, OFFSET] {
            assert!(
                exact == softmax(place),
                "{dims:?} {place:?}: softmax results differ"
            );
        }
        let host = ctx
            .softmax(
                &x[..len],
                &dims,
                &xent::SoftmaxOptions {
                    kind: xent::SoftmaxKind::LogSoftmax,
                },
            )
            .unwrap();
        assert!(
            bytemuck::cast_slice::<f32, u8>(&host) == exact,
            "{dims:?}: host and recording differ"
        );
    }
}
