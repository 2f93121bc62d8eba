//! One test per class of bad input, asserting the typed error variant — and
//! that the context still works afterwards (no panic, no lost device).

mod common;

use common::{ctx, WORKED_DIMS, WORKED_LOGITS, WORKED_TARGETS};
use wgpu::util::DeviceExt;
use xent::{cpu, CrossEntropyBuffers, CrossEntropyOptions, Error, Reduction, TargetBuffer};

fn opts() -> CrossEntropyOptions {
    CrossEntropyOptions::default()
}

/// The same error from the GPU host path (when an adapter exists) and the CPU path.
fn both(
    logits: &[f32],
    dims: &[usize],
    targets: &[i64],
    weights: Option<&[f32]>,
    o: &CrossEntropyOptions,
) -> Vec<Error> {
    let mut errors = vec![cpu::cross_entropy(logits, dims, targets, weights, o).unwrap_err()];
    if let Some(ctx) = ctx() {
        errors.push(
            ctx.cross_entropy(logits, dims, targets, weights, o, &Default::default())
                .unwrap_err(),
        );
        still_works();
    }
    errors
}

fn still_works() {
    if let Some(ctx) = ctx() {
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
        assert_eq!(format!("{:.4}", out.loss[0]), "3.7925");
    }
}

#[test]
fn logits_that_do_not_fit_the_shape() {
    for e in both(
        &WORKED_LOGITS[..14],
        &WORKED_DIMS,
        &WORKED_TARGETS,
        None,
        &opts(),
    ) {
        assert!(
            matches!(
                e,
                Error::ShapeMismatch {
                    what: "input",
                    expected: 15,
                    actual: 14,
                    ..
                }
            ),
            "{e}"
        );
    }
}

#[test]
fn targets_that_do_not_fit_the_shape() {
    for e in both(&WORKED_LOGITS, &WORKED_DIMS, &[1, 2], None, &opts()) {
        assert!(
            matches!(
                e,
                Error::ShapeMismatch {
                    what: "targets",
                    expected: 3,
                    actual: 2,
                    ..
                }
            ),
            "{e}"
        );
    }
}

#[test]
fn empty_inputs() {
    // A scalar, or an empty class axis (PyTorch: "Target 0 is out of bounds").
    // Empty batches are not errors (tests/edge_cases.rs).
    for (dims, targets) in [
        (&[][..], &[][..]),
        (&[3, 0][..], &[0, 0, 0][..]),
        (&[0][..], &[0][..]),
    ] {
        for e in both(&[], dims, targets, None, &opts()) {
            assert!(matches!(e, Error::InvalidShape { .. }), "{dims:?}: {e}");
        }
    }
    // Axes past 32 bits, even in an empty batch: refused, never truncated.
    for dims in [&[0, 3, 1 << 40, 1 << 40][..], &[0, 5_000_000_000]] {
        for e in both(&[], dims, &[], None, &opts()) {
            assert!(matches!(e, Error::InvalidShape { .. }), "{dims:?}: {e}");
        }
    }
}

#[test]
fn weights_of_the_wrong_length() {
    for e in both(
        &WORKED_LOGITS,
        &WORKED_DIMS,
        &WORKED_TARGETS,
        Some(&[1.0; 4]),
        &opts(),
    ) {
        assert!(
            matches!(
                e,
                Error::WeightsLength {
                    classes: 5,
                    actual: 4
                }
            ),
            "{e}"
        );
    }
}

#[test]
fn nan_weights() {
    let w = [1.0, f32::NAN, 1.0, 1.0, 1.0];
    for e in both(
        &WORKED_LOGITS,
        &WORKED_DIMS,
        &WORKED_TARGETS,
        Some(&w),
        &opts(),
    ) {
        assert!(
            matches!(
                e,
                Error::InvalidOption {
                    name: "weights",
                    ..
                }
            ),
            "{e}"
        );
    }
}

#[test]
fn smoothing_outside_0_1_or_nan() {
    for s in [-0.1f64, 1.5, f64::NAN, f64::INFINITY] {
        let o = CrossEntropyOptions {
            label_smoothing: s,
            ..opts()
        };
        for e in both(&WORKED_LOGITS, &WORKED_DIMS, &WORKED_TARGETS, None, &o) {
            assert!(
                matches!(
                    e,
                    Error::InvalidOption {
                        name: "label_smoothing",
                        ..
                    }
                ),
                "{s}: {e}"
            );
        }
    }
}

#[test]
fn ignore_index_outside_i32() {
    let o = CrossEntropyOptions {
        ignore_index: 1 << 40,
        ..opts()
    };
    for e in both(&WORKED_LOGITS, &WORKED_DIMS, &WORKED_TARGETS, None, &o) {
        assert!(
            matches!(
                e,
                Error::InvalidOption {
                    name: "ignore_index",
                    ..
                }
            ),
            "{e}"
        );
    }
}

#[test]
fn targets_out_of_range_name_position_and_value() {
    for (targets, value) in [
        ([1i64, 5, 2], 5i64),
        ([1, -1, 2], -1),
        ([1, 3, 1 << 40], 1 << 40),
    ] {
        for e in both(&WORKED_LOGITS, &WORKED_DIMS, &targets, None, &opts()) {
            let pos = targets.iter().position(|&t| t == value).unwrap();
            match &e {
                Error::TargetOutOfRange {
                    position,
                    value: v,
                    classes: 5,
                    count: 1,
                    ..
                } => {
                    assert_eq!(position, &vec![pos]);
                    assert_eq!(*v, value);
                }
                _ => panic!("{e}"),
            }
            assert!(e.to_string().contains(&value.to_string()));
        }
    }
}

#[test]
fn out_of_range_target_in_a_map_is_found_on_the_gpu() {
    // (N, C, H, W) = (2, 3, 2, 2); a bad class at (n=1, h=0, w=1).
    let logits = vec![0.5f32; 2 * 3 * 2 * 2];
    let mut targets = vec![0i64; 8];
    targets[5] = 7;
    targets[7] = 9;
    for e in both(&logits, &[2, 3, 2, 2], &targets, None, &opts()) {
        match e {
            Error::TargetOutOfRange {
                position,
                value: 7,
                count: 2,
                ..
            } => assert_eq!(position, vec![1, 0, 1]),
            _ => panic!("{e}"),
        }
    }
}

#[test]
fn the_first_bad_target_is_found_across_blocks_of_rows() {
    // Targets are checked in blocks of at most 8 192 rows (rows / blocks,
    // rounded up to a multiple of 4). 20 000 rows: three blocks of 6 668,
    // the bad targets in the second and third. 600 000 rows: 74 blocks of
    // 8 112, more than the 64 invocations that merge them, so blocks 65 and
    // 72 are folded into the partials of blocks 1 and 8 before the tree. 20 003 rows: both
    // in the last rows, which are read after the blocks' quads of four. The
    // first bad target is named each time.
    for (rows, first, second) in [
        (20_000, 9_000, 17_000),
        (600_000, 530_000, 590_000),
        (20_003, 20_001, 20_002),
    ] {
        let logits = vec![0.25f32; rows * 3];
        let mut targets = vec![1i64; rows];
        targets[second] = 9;
        targets[first] = 7;
        for e in both(&logits, &[rows, 3], &targets, None, &opts()) {
            match e {
                Error::TargetOutOfRange {
                    position,
                    value: 7,
                    count: 2,
                    ..
                } => assert_eq!(position, vec![first], "{rows} rows"),
                _ => panic!("{rows} rows: {e}"),
            }
        }
    }
}

fn buffer(ctx: &xent::Context, contents: &[u8], usage: wgpu::BufferUsages) -> wgpu::Buffer {
    ctx.device()
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("test"),
            contents,
            usage,
        })
}

#[test]
fn recording_rejects_bad_buffers() {
    let Some(ctx) = ctx() else { return };
    let s = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let logits = buffer(ctx, bytemuck::cast_slice(&WORKED_LOGITS), s);
    let targets = buffer(ctx, bytemuck::cast_slice(&[1i32, 3, 2]), s);
    let loss = buffer(ctx, &[0; 4], s);
    let grad = buffer(ctx, &[0; 60], s);
    let status = buffer(ctx, &[0; 16], s);
    let short = buffer(ctx, &[0; 56], s);
    let not_storage = buffer(ctx, &[0; 60], wgpu::BufferUsages::COPY_SRC);
    let weights4 = buffer(ctx, &[0; 16], s);
    let good = CrossEntropyBuffers::new(
        logits.slice(..),
        TargetBuffer::ClassI32(targets.slice(..)),
        loss.slice(..),
        Some(grad.slice(..)),
        status.slice(..),
    );
    let record = |b: &CrossEntropyBuffers, o: &CrossEntropyOptions| {
        let mut enc = ctx.device().create_command_encoder(&Default::default());
        ctx.record_cross_entropy(&mut enc, &WORKED_DIMS, o, b)
    };
    let cases: Vec<(&str, CrossEntropyBuffers, CrossEntropyOptions)> = vec![
        (
            "grad",
            CrossEntropyBuffers {
                grad: Some(short.slice(..)),
                ..good
            },
            opts(),
        ),
        (
            "logits",
            CrossEntropyBuffers {
                logits: short.slice(..),
                ..good
            },
            opts(),
        ),
        (
            "grad",
            CrossEntropyBuffers {
                grad: Some(not_storage.slice(..)),
                ..good
            },
            opts(),
        ),
        (
            "weights",
            CrossEntropyBuffers {
                weights: Some(weights4.slice(..)),
                ..good
            },
            opts(),
        ),
        (
            "loss",
            CrossEntropyBuffers {
                loss: loss.slice(..),
                ..good
            },
            CrossEntropyOptions {
                reduction: Reduction::None,
                ..opts()
            },
        ),
        (
            "logits",
            CrossEntropyBuffers {
                grad: Some(logits.slice(..)),
                ..good
            },
            opts(),
        ),
    ];
    for (what, b, o) in cases {
        match record(&b, &o) {
            Err(Error::BadBuffer { what: w, .. }) => assert_eq!(w, what),
            other => panic!("{what}: {other:?}"),
        }
    }
    assert!(record(&good, &opts()).is_ok());
    still_works();
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
fn submit_cleanly(ctx: &xent::Context, encoder: wgpu::CommandEncoder) {
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
    let Some((ctx, other, _other_queue)) = common::ctx_and_other_device() else {
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
        submit_cleanly(&ctx, encoder);
    }
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
    submit_cleanly(&ctx, encoder);
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
    assert_eq!(format!("{:.4}", out.loss[0]), "3.7925");
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

#[test]
fn every_call_on_a_lost_device_is_an_error_not_a_panic_or_a_hang() {
    let (done, finished) = std::sync::mpsc::channel();
    let calls = std::thread::spawn(move || {
        let Some(ctx) = common::own_ctx() else {
            return done.send(()).unwrap();
        };
        let s = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
        let logits = buffer(&ctx, bytemuck::cast_slice(&WORKED_LOGITS), s);
        let targets = buffer(&ctx, bytemuck::cast_slice(&[1i32, 3, 2]), s);
        let (loss, grad, status) = (
            buffer(&ctx, &[0; 4], s),
            buffer(&ctx, &[0; 60], s),
            buffer(&ctx, &[0; 16], s),
        );
        // A lost device, as far as a test can make one (a loss reported by
        // the driver also makes wgpu's `poll` panic, which the host API
        // catches but no test here can cause).
        ctx.device().destroy();
        let lost = |what: &str, got: xent::Result<()>| match got {
            Err(Error::DeviceLost(_)) => {}
            other => panic!("{what}: expected Error::DeviceLost, got {other:?}"),
        };
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
            ctx.read_status::<xent::CrossEntropyStatus>(status.slice(..))
                .map(drop),
        );
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        let buffers = CrossEntropyBuffers::new(
            logits.slice(..),
            TargetBuffer::ClassI32(targets.slice(..)),
            loss.slice(..),
            Some(grad.slice(..)),
            status.slice(..),
        );
        lost(
            "record_cross_entropy",
            ctx.record_cross_entropy(&mut encoder, dims, &opts(), &buffers),
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
                    input: logits.slice(..),
                    output: grad.slice(..),
                    precision: xent::Precision::F32,
                },
            ),
        );
        lost(
            "Context::new",
            xent::Context::new(ctx.device().clone(), ctx.queue().clone()).map(drop),
        );
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

#[test]
fn tensors_larger_than_the_devices_largest_buffer_are_a_typed_error() {
    let max = 1 << 20;
    let Some(ctx) = common::max_buffer_ctx(max) else {
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
    assert_eq!(format!("{:.4}", out.loss[0]), "3.7925");
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
    let is_mapped_error = |what: &str, got: Result<(), Error>| match got {
        Err(Error::BadBuffer { what: w, reason }) => {
            assert_eq!(w, what);
            assert!(reason.contains("mapped"), "{reason}");
        }
        other => panic!("{what}: expected Error::BadBuffer, got {other:?}"),
    };
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
    let bad = |what: &str, got: Result<(), Error>| match got {
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
    };
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    let ce = CrossEntropyBuffers::new(
        big.slice(4..),
        TargetBuffer::ClassI32(a.slice(..)),
        b.slice(..),
        Some(c.slice(..)),
        d.slice(..),
    );
    bad(
        "logits",
        ctx.record_cross_entropy(&mut enc, &WORKED_DIMS, &opts(), &ce),
    );
    let ew =
        xent::ElementwiseBuffers::new(a.slice(..), big.slice(4..), b.slice(..), None, d.slice(..));
    let mse = xent::ElementwiseLoss::Mse;
    bad(
        "target",
        ctx.record_elementwise_loss(
            &mut enc,
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
    bad(
        "output",
        ctx.record_softmax(&mut enc, &[4, 4], &softmax, &sm),
    );
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
    bad(
        "a",
        ctx.record_matmul(&mut enc, &dims, &product_opts, &product),
    );
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
        ctx.record_linear_cross_entropy(&mut enc, &ldims, &Default::default(), &linear),
    );
    bad(
        "merged",
        ctx.record_vocab_merge(
            &mut enc,
            &xent::MergeDims { rows: 2, shards: 2 },
            &opts(),
            &xent::VocabMergeBuffers {
                gathered: a.slice(..),
                merged: big.slice(4..),
            },
        ),
    );
    // Aligned but too short: the size, the offset and the buffer's size named.
    let short = CrossEntropyBuffers {
        logits: big.slice(1024 - alignment..),
        ..ce
    };
    match ctx.record_cross_entropy(&mut enc, &[4, 100], &opts(), &short) {
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
