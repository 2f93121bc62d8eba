//! Buffers of another device, destroyed buffers and a lost device: each is
//! a typed error of the ops, never a panic or a hang, that records nothing;
//! the context keeps working.

use crate::common::{
    buffer, ctx, still_works, still_works_on, WORKED_DIMS, WORKED_LOGITS, WORKED_TARGETS,
};
use wgpu::util::DeviceExt;
use xent::{CrossEntropyBuffers, CrossEntropyOptions, Error, TargetBuffer};

pub fn opts() -> CrossEntropyOptions {
    CrossEntropyOptions::default()
}

/// `Err(Error::Gpu)` whose message holds `needle` (from wgpu's message).
fn assert_gpu_error<T: std::fmt::Debug>(what: &str, got: xent::Result<T>, needle: &str) {
    match got {
        Err(Error::Gpu(message)) => assert!(
            message.contains(needle),
            "{what}: the message should hold {needle:?}: {message}"
        ),
        other => panic!("{what}: expected Error::Gpu, got {other:?}"),
    }
}

/// Finishes and submits `encoder` inside an error scope of the context's
/// device, as a caller who ignored a failed call would: nothing may fail,
/// i.e. the failed calls recorded nothing into the encoder.
pub fn submit_cleanly(ctx: &xent::Context, encoder: wgpu::CommandEncoder) {
    let scope = ctx.device().push_error_scope(wgpu::ErrorFilter::Validation);
    ctx.queue().submit([encoder.finish()]);
    let error = pollster::block_on(scope.pop());
    assert!(
        error.is_none(),
        "a failed call left commands in the encoder: {error:?}"
    );
}

#[test]
fn buffers_of_another_device_are_a_gpu_error_not_a_panic() {
    let Some((ctx, other, _other_queue)) = crate::common::ctx_and_other_device() else {
        return;
    };
    let s = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let on = |device: &wgpu::Device, contents: &[u8]| {
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("test"),
            contents,
            usage: s,
        })
    };
    let set = |device: &wgpu::Device| {
        [
            on(device, bytemuck::cast_slice(&WORKED_LOGITS)),
            on(device, bytemuck::cast_slice(&[1i32, 3, 2])),
            on(device, &[0; 4]),
            on(device, &[0; 60]),
            on(device, &[0; 16]),
        ]
    };
    let (mine, theirs) = (set(ctx.device()), set(&other));
    each_foreign_buffer_is_a_gpu_error(&ctx, &mine, &theirs);
    softmax_of_foreign_buffers_is_a_gpu_error(&ctx, &mine, &theirs);
    // The context still works, with its own buffers.
    let good = CrossEntropyBuffers::new(
        mine[0].slice(..),
        TargetBuffer::ClassI32(mine[1].slice(..)),
        mine[2].slice(..),
        Some(mine[3].slice(..)),
        mine[4].slice(..),
    );
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    ctx.record_cross_entropy(&mut encoder, &WORKED_DIMS, &opts(), &good)
        .unwrap();
    submit_cleanly(&ctx, encoder);
    still_works_on(&ctx);
}

/// Cross-entropy's buffers `mine` with one of them from the other device's
/// `theirs`, each in turn.
fn each_foreign_buffer_is_a_gpu_error(
    ctx: &xent::Context,
    mine: &[wgpu::Buffer; 5],
    theirs: &[wgpu::Buffer; 5],
) {
    // Each buffer in turn from the other device.
    for foreign in 0..5 {
        let pick = |i: usize| if i == foreign { &theirs[i] } else { &mine[i] }.slice(..);
        let buffers = CrossEntropyBuffers::new(
            pick(0),
            TargetBuffer::ClassI32(pick(1)),
            pick(2),
            Some(pick(3)),
            pick(4),
        );
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        let got = ctx.record_cross_entropy(&mut encoder, &WORKED_DIMS, &opts(), &buffers);
        assert_gpu_error(&format!("buffer {foreign}"), got, "doesn't match");
        submit_cleanly(ctx, encoder);
    }
}

/// Softmax's input and softmax backward's grad_output from the other device.
fn softmax_of_foreign_buffers_is_a_gpu_error(
    ctx: &xent::Context,
    mine: &[wgpu::Buffer; 5],
    theirs: &[wgpu::Buffer; 5],
) {
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let got = ctx.record_softmax(
        &mut encoder,
        &WORKED_DIMS,
        &xent::SoftmaxOptions {
            kind: xent::SoftmaxKind::Softmax,
        },
        &xent::SoftmaxBuffers {
            input: theirs[0].slice(..),
            output: mine[3].slice(..),
            precision: xent::Precision::F32,
        },
    );
    assert_gpu_error("softmax input", got, "doesn't match");
    let got = ctx.record_softmax_backward(
        &mut encoder,
        &WORKED_DIMS,
        &xent::SoftmaxOptions {
            kind: xent::SoftmaxKind::LogSoftmax,
        },
        &xent::SoftmaxBackwardBuffers {
            output: mine[0].slice(..),
            grad_output: theirs[3].slice(..),
            grad_input: mine[3].slice(..),
            precision: xent::Precision::F32,
        },
    );
    assert_gpu_error("softmax backward grad_output", got, "doesn't match");
    submit_cleanly(ctx, encoder);
}

#[test]
fn a_destroyed_buffer_is_a_gpu_error_not_a_panic() {
    let Some(ctx) = ctx() else { return };
    let s = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let logits = buffer(ctx, bytemuck::cast_slice(&WORKED_LOGITS), s);
    let targets = buffer(ctx, bytemuck::cast_slice(&[1i32, 3, 2]), s);
    let loss = buffer(ctx, &[0; 4], s);
    let grad = buffer(ctx, &[0; 60], s);
    let status = buffer(ctx, &[0; 16], s);
    let destroyed = buffer(ctx, &[0; 60], s);
    destroyed.destroy();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let cases = [("logits", &destroyed, &grad), ("grad", &logits, &destroyed)];
    for (what, logits, grad) in cases {
        let buffers = CrossEntropyBuffers::new(
            logits.slice(..),
            TargetBuffer::ClassI32(targets.slice(..)),
            loss.slice(..),
            Some(grad.slice(..)),
            status.slice(..),
        );
        let got = ctx.record_cross_entropy(&mut encoder, &WORKED_DIMS, &opts(), &buffers);
        assert_gpu_error(what, got, "destroyed");
    }
    let got = ctx.record_softmax(
        &mut encoder,
        &WORKED_DIMS,
        &xent::SoftmaxOptions {
            kind: xent::SoftmaxKind::Softmax,
        },
        &xent::SoftmaxBuffers {
            input: logits.slice(..),
            output: destroyed.slice(..),
            precision: xent::Precision::F32,
        },
    );
    assert_gpu_error("softmax output", got, "destroyed");
    submit_cleanly(ctx, encoder);
    still_works();
}

/// Asserts `got` is `Error::DeviceLost`.
fn lost(what: &str, got: xent::Result<()>) {
    match got {
        Err(Error::DeviceLost(_)) => {}
        other => panic!("{what}: expected Error::DeviceLost, got {other:?}"),
    }
}

#[test]
fn every_call_on_a_lost_device_is_an_error_not_a_panic_or_a_hang() {
    let (done, finished) = std::sync::mpsc::channel();
    let calls = std::thread::spawn(move || {
        if let Some(ctx) = crate::common::own_ctx() {
            calls_on_a_lost_device_are_errors(&ctx);
        }
        done.send(()).unwrap();
    });
    match finished.recv_timeout(std::time::Duration::from_secs(120)) {
        Ok(()) => calls.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(calls.join().unwrap_err())
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("calls on a lost device still running after 120 s")
        }
    }
}

/// Every call on `ctx` after its device is destroyed.
fn calls_on_a_lost_device_are_errors(ctx: &xent::Context) {
    let s = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let logits = buffer(ctx, bytemuck::cast_slice(&WORKED_LOGITS), s);
    let targets = buffer(ctx, bytemuck::cast_slice(&[1i32, 3, 2]), s);
    let (loss, grad, status) = (
        buffer(ctx, &[0; 4], s),
        buffer(ctx, &[0; 60], s),
        buffer(ctx, &[0; 16], s),
    );
    // A lost device, as far as a test can make one (a loss reported by
    // the driver also makes wgpu's `poll` panic, which the host API
    // catches but no test here can cause).
    ctx.device().destroy();
    host_calls_are_device_lost(ctx, status.slice(..));
    let buffers = CrossEntropyBuffers::new(
        logits.slice(..),
        TargetBuffer::ClassI32(targets.slice(..)),
        loss.slice(..),
        Some(grad.slice(..)),
        status.slice(..),
    );
    recorded_calls_are_device_lost(ctx, &buffers);
    lost(
        "Context::new",
        xent::Context::new(ctx.device().clone(), ctx.queue().clone()).map(drop),
    );
}

/// The host API's calls (and reading a status) on a lost device.
fn host_calls_are_device_lost(ctx: &xent::Context, status: wgpu::BufferSlice<'_>) {
    let dims = &WORKED_DIMS;
    lost(
        "cross_entropy",
        ctx.cross_entropy(
            &WORKED_LOGITS,
            dims,
            &WORKED_TARGETS,
            None,
            &opts(),
            &Default::default(),
        )
        .map(drop),
    );
    let probs = [0.2f32; 15];
    lost(
        "cross_entropy_soft",
        ctx.cross_entropy_soft(
            &WORKED_LOGITS,
            dims,
            &probs,
            None,
            &opts(),
            &Default::default(),
        )
        .map(drop),
    );
    lost(
        "softmax",
        ctx.softmax(&WORKED_LOGITS, dims, &xent::SoftmaxOptions::default())
            .map(drop),
    );
    lost(
        "log_softmax_backward",
        ctx.softmax_backward(
            &WORKED_LOGITS,
            &WORKED_LOGITS,
            dims,
            &xent::SoftmaxOptions {
                kind: xent::SoftmaxKind::LogSoftmax,
            },
        )
        .map(drop),
    );
    lost(
        "read_status",
        ctx.read_status::<xent::CrossEntropyStatus>(status)
            .map(drop),
    );
}

/// The recording API's calls on a lost device.
fn recorded_calls_are_device_lost(ctx: &xent::Context, buffers: &CrossEntropyBuffers<'_>) {
    let dims = &WORKED_DIMS;
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    lost(
        "record_cross_entropy",
        ctx.record_cross_entropy(&mut encoder, dims, &opts(), buffers),
    );
    lost(
        "record_softmax",
        ctx.record_softmax(
            &mut encoder,
            dims,
            &xent::SoftmaxOptions {
                kind: xent::SoftmaxKind::Softmax,
            },
            &xent::SoftmaxBuffers {
                input: buffers.logits,
                output: buffers.grad.unwrap(),
                precision: xent::Precision::F32,
            },
        ),
    );
}
