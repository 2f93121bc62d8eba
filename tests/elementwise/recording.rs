//! The elementwise losses through the recording API: the status buffer,
//! the buffers' checks, calls recorded back to back into one encoder, and a
//! last-axis weight as long as the input.

use super::properties::data;
use crate::common::{ctx, read_f32, storage};
use xent::{
    cpu, ElementwiseBuffers, ElementwiseLoss, ElementwiseOptions, ElementwiseStatus, Error,
    LossWeights, Reduction, Tolerance, WeightShape,
};

/// Records the call, submits it and reads its status back.
fn status_of(
    ctx: &xent::Context,
    dims: &[usize],
    opts: &ElementwiseOptions,
    buffers: &ElementwiseBuffers<'_>,
) -> ElementwiseStatus {
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    ctx.record_elementwise_loss(&mut enc, dims, opts, buffers)
        .unwrap();
    ctx.queue().submit([enc.finish()]);
    ctx.read_status(buffers.status).unwrap()
}

#[test]
fn the_recording_api_reports_bce_inputs_in_the_status_buffer() {
    let Some(ctx) = ctx() else { return };
    let x = storage(ctx, &[0.5, 2.0, 0.25, -1.0]);
    let y = storage(ctx, &[1.0; 4]);
    let loss = storage(ctx, &[0.0]);
    let status = storage(ctx, &[0.0; 4]);
    let buffers = ElementwiseBuffers::new(
        x.slice(..),
        y.slice(..),
        loss.slice(..),
        None,
        status.slice(..),
    );
    let opts = xent::ElementwiseOptions {
        reduction: Reduction::Sum,
        ..xent::ElementwiseOptions::new(ElementwiseLoss::Bce)
    };
    let s = status_of(ctx, &[2, 2], &opts, &buffers);
    // The bad elements' losses are NaN, not a plausible number.
    assert!(read_f32(ctx, &loss)[0].is_nan());
    assert!(!s.in_target);
    let err = s.check(&[2, 2]).unwrap_err();
    assert!(
        matches!(err, Error::InputOutOfRange { what: "input", ref position, value, count: 2 } if position == &[0, 1] && value == 2.0),
        "{err}"
    );
    a_bad_target_is_reported_as_the_targets(ctx, &loss, &status);
    every_loss_writes_the_status(ctx, [&x, &y], &status);
    a_written_buffer_in_two_roles_is_refused(ctx, [&x, &y], &loss, &status);
}

/// A bad target is reported as the target's.
fn a_bad_target_is_reported_as_the_targets(
    ctx: &xent::Context,
    loss: &wgpu::Buffer,
    status: &wgpu::Buffer,
) {
    let y_bad = storage(ctx, &[1.0, 1.0, 0.0, 3.0]);
    let x_ok = storage(ctx, &[0.5; 4]);
    let buffers = ElementwiseBuffers::new(
        x_ok.slice(..),
        y_bad.slice(..),
        loss.slice(..),
        None,
        status.slice(..),
    );
    let opts = xent::ElementwiseOptions {
        reduction: Reduction::Mean,
        ..xent::ElementwiseOptions::new(ElementwiseLoss::Bce)
    };
    let s = status_of(ctx, &[4], &opts, &buffers);
    assert!(s.in_target && s.first_position == 3, "{s:?}");
    let err = s.check(&[4]).unwrap_err();
    assert!(
        matches!(err, Error::InputOutOfRange { what: "target", value, count: 1, .. } if value == 3.0),
        "{err}"
    );
}

/// Every loss writes the status: an mse call over the bad call's status,
/// with every reduction, leaves it clear.
fn every_loss_writes_the_status(
    ctx: &xent::Context,
    [x, y]: [&wgpu::Buffer; 2],
    status: &wgpu::Buffer,
) {
    let losses = storage(ctx, &[0.0; 4]);
    for reduction in [Reduction::Sum, Reduction::None] {
        let fine = ElementwiseBuffers::new(
            x.slice(..),
            y.slice(..),
            losses.slice(..),
            None,
            status.slice(..),
        );
        let opts = xent::ElementwiseOptions {
            reduction,
            ..xent::ElementwiseOptions::new(ElementwiseLoss::Mse)
        };
        let s = status_of(ctx, &[4], &opts, &fine);
        assert_eq!(s, ElementwiseStatus::default(), "{reduction:?}");
    }
}

/// A written buffer in two roles is refused, and so is a loss buffer too
/// small for `none`.
fn a_written_buffer_in_two_roles_is_refused(
    ctx: &xent::Context,
    [x, y]: [&wgpu::Buffer; 2],
    loss: &wgpu::Buffer,
    status: &wgpu::Buffer,
) {
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    let in_place = ElementwiseBuffers::new(
        x.slice(..),
        y.slice(..),
        loss.slice(..),
        Some(x.slice(..)),
        status.slice(..),
    );
    let err = ctx
        .record_elementwise_loss(
            &mut enc,
            &[4],
            &xent::ElementwiseOptions {
                reduction: Reduction::Sum,
                ..xent::ElementwiseOptions::new(ElementwiseLoss::Mse)
            },
            &in_place,
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::BadBuffer { what: "grad", .. }),
        "{err}"
    );
    let err = ctx
        .record_elementwise_loss(
            &mut enc,
            &[2, 2],
            &xent::ElementwiseOptions {
                reduction: Reduction::None,
                ..xent::ElementwiseOptions::new(ElementwiseLoss::Mse)
            },
            &ElementwiseBuffers::new(
                x.slice(..),
                y.slice(..),
                loss.slice(..),
                None,
                status.slice(..),
            ),
        )
        .unwrap_err();
    // A one-element loss for four elements of `none`.
    assert!(
        matches!(err, Error::BadBuffer { what: "loss", .. }),
        "{err}"
    );
}

#[test]
fn calls_recorded_back_to_back_into_one_encoder_each_get_their_result() {
    // Both calls share the context's scratch: the second's blocks must not
    // reach the first's reduce.
    let Some(ctx) = ctx() else { return };
    let n = 3 * 4096 + 5;
    let (a, b) = (vec![1.0f32; n], vec![3.0f32; n]);
    let zero = vec![0.0f32; n];
    let (xa, xb, y) = (storage(ctx, &a), storage(ctx, &b), storage(ctx, &zero));
    let (la, lb) = (storage(ctx, &[0.0]), storage(ctx, &[0.0]));
    let status = storage(ctx, &[0.0; 4]);
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    for (x, l) in [(&xa, &la), (&xb, &lb)] {
        let buffers = ElementwiseBuffers::new(
            x.slice(..),
            y.slice(..),
            l.slice(..),
            None,
            status.slice(..),
        );
        ctx.record_elementwise_loss(
            &mut enc,
            &[n],
            &xent::ElementwiseOptions {
                reduction: Reduction::Sum,
                ..xent::ElementwiseOptions::new(ElementwiseLoss::Mse)
            },
            &buffers,
        )
        .unwrap();
    }
    ctx.queue().submit([enc.finish()]);
    assert_eq!(read_f32(ctx, &la), vec![n as f32]);
    assert_eq!(read_f32(ctx, &lb), vec![9.0 * n as f32]);
}

#[test]
fn a_last_axis_weight_as_long_as_the_input_is_read_as_its_shape() {
    // dims [1, 8]: the last axis is the whole input, so the weight is its
    // shape's, on the vec4 kernel's weight view too.
    let Some(ctx) = ctx() else { return };
    let (x, y) = data(ElementwiseLoss::BceWithLogits, 8, 21);
    let w: Vec<f32> = (1..=8).map(|v| v as f32).collect();
    let (xb, yb, wb) = (storage(ctx, &x), storage(ctx, &y), storage(ctx, &w));
    let (loss, grad) = (storage(ctx, &[0.0; 8]), storage(ctx, &[0.0; 8]));
    let status = storage(ctx, &[0.0; 4]);
    for shape in [WeightShape::LastAxis, WeightShape::Full] {
        let buffers = ElementwiseBuffers {
            weight: Some((wb.slice(..), shape)),
            ..ElementwiseBuffers::new(
                xb.slice(..),
                yb.slice(..),
                loss.slice(..),
                Some(grad.slice(..)),
                status.slice(..),
            )
        };
        let mut enc = ctx.device().create_command_encoder(&Default::default());
        ctx.record_elementwise_loss(
            &mut enc,
            &[1, 8],
            &xent::ElementwiseOptions {
                reduction: Reduction::None,
                ..xent::ElementwiseOptions::new(ElementwiseLoss::BceWithLogits)
            },
            &buffers,
        )
        .unwrap();
        ctx.queue().submit([enc.finish()]);
        let got = xent::ElementwiseOutput {
            loss: read_f32(ctx, &loss),
            loss_dims: vec![1, 8],
            grad: Some(read_f32(ctx, &grad)),
            magnitude: None,
        };
        let lw = LossWeights {
            weight: Some(&w),
            pos_weight: None,
        };
        let opts = ElementwiseOptions {
            reduction: Reduction::None,
            ..ElementwiseOptions::new(ElementwiseLoss::Mse)
        };
        let want = cpu::elementwise_loss(
            &x,
            &y,
            &[1, 8],
            lw,
            &xent::ElementwiseOptions {
                loss: ElementwiseLoss::BceWithLogits,
                ..opts
            },
        )
        .unwrap();
        Tolerance::default()
            .compare_elementwise(&got, &want, &Tolerance::default())
            .unwrap_or_else(|e| panic!("{shape:?}: {e}"));
    }
}
