//! The recording API with the caller's buffers: in place and out of place
//! with the same bits, buffers of odd or oversized sizes, long rows in chunks
//! in and out of place, and an encoder of another device.

use super::recording::record_and_submit;
use crate::common::{ctx, read_f32, Rng, WORKED_DIMS, WORKED_LOGITS};
use wgpu::util::DeviceExt;
use xent::{cpu, CrossEntropyBuffers, CrossEntropyOptions, Reduction, TargetBuffer, Tolerance};

/// A buffer of `ctx`'s device holding `contents` (STORAGE | COPY_SRC).
fn init(ctx: &xent::Context, contents: &[u8]) -> wgpu::Buffer {
    ctx.device()
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("test"),
            contents,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        })
}

#[test]
fn in_place_and_out_of_place_gradients_are_bit_identical() {
    // The host API writes the gradient over its uploaded logits (in place);
    // the recording API with a grad buffer writes it elsewhere. Every row
    // strategy must give the same bits both ways.
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(4);
    for dims in [
        vec![3usize, 20_001],
        vec![3, 256],
        vec![3, 257],
        vec![40, 12],
        vec![40, 13],
        vec![2, 5, 4, 3],
        vec![2, 5, 3, 3],
    ] {
        let layout = xent::Layout::from_dims(&dims).unwrap();
        let logits: Vec<f32> = (0..layout.len())
            .map(|_| rng.uniform(-10.0, 10.0))
            .collect();
        let targets: Vec<i32> = (0..layout.rows())
            .map(|_| rng.below(layout.classes) as i32)
            .collect();
        let opts = CrossEntropyOptions {
            label_smoothing: 0.1,
            ..Default::default()
        };
        let host = ctx
            .cross_entropy(&logits, &dims, &targets, None, &opts, &Default::default())
            .unwrap();
        // Logits and gradient in whole vec4s, as the host API uploads them
        // (exact-size buffers that end mid-vec4 take the same walk through
        // scalar views, with the same bits: same_bits.rs).
        let mut padded = logits.clone();
        padded.resize(layout.len().next_multiple_of(4), 0.0);
        let t = init(ctx, bytemuck::cast_slice(&targets));
        let (loss, status) = (init(ctx, &[0; 4]), init(ctx, &[0; 16]));
        let buffers = [&t, &loss, &status];
        let host = (host.grad.as_deref().unwrap(), host.loss[0]);
        let b = out_of_place_bits(ctx, &dims, &opts, (&logits, &padded), buffers, host);
        let targets = (&targets[..], buffers);
        in_place_gives_the_same_bits(ctx, &dims, &opts, (&logits, &padded), targets, &b);
    }
    in_place_with_a_grad_buffer_is_a_typed_error(ctx);
}

/// The recording API out of place, on the logits `padded` to whole vec4s
/// and the buffers [targets, loss, status]: the host's gradient and loss
/// `host`, bit for bit. Returns the gradient's bits.
fn out_of_place_bits(
    ctx: &xent::Context,
    dims: &[usize],
    opts: &CrossEntropyOptions,
    (logits, padded): (&[f32], &[f32]),
    [t, loss, status]: [&wgpu::Buffer; 3],
    (host_grad, host_loss): (&[f32], f32),
) -> Vec<u32> {
    let layout = xent::Layout::from_dims(dims).unwrap();
    let x = init(ctx, bytemuck::cast_slice(padded));
    let grad = init(ctx, &vec![0; padded.len() * 4]);
    record_and_submit(
        ctx,
        dims,
        opts,
        &CrossEntropyBuffers::new(
            x.slice(..),
            TargetBuffer::ClassI32(t.slice(..)),
            loss.slice(..),
            Some(grad.slice(..)),
            status.slice(..),
        ),
    );
    let out_of_place = read_f32(ctx, &grad);
    // The padding past the tensor keeps what it held.
    assert!(
        out_of_place[layout.len()..].iter().all(|&v| v == 0.0),
        "{dims:?}"
    );
    let a: Vec<u32> = host_grad.iter().map(|v| v.to_bits()).collect();
    let b: Vec<u32> = out_of_place[..layout.len()]
        .iter()
        .map(|v| v.to_bits())
        .collect();
    assert!(
        a == b,
        "{dims:?}: in-place and out-of-place gradients differ"
    );
    assert_eq!(
        read_f32(ctx, loss)[0].to_bits(),
        host_loss.to_bits(),
        "{dims:?}"
    );
    // The logits buffer of the out-of-place call is untouched.
    assert_eq!(read_f32(ctx, &x)[..layout.len()], logits[..]);
    b
}

/// The recording API in place, on an exact-size buffer that ends mid-vec4
/// (long rows of C % 4 != 0 through the scalar views) and on the padded one
/// (through the vec4 views): both held to the CPU and to the bits `b` of
/// the out-of-place run, with `targets` in the first of the buffers
/// [targets, loss, status].
fn in_place_gives_the_same_bits(
    ctx: &xent::Context,
    dims: &[usize],
    opts: &CrossEntropyOptions,
    (logits, padded): (&[f32], &[f32]),
    (targets, [t, loss, status]): (&[i32], [&wgpu::Buffer; 3]),
    b: &[u32],
) {
    let layout = xent::Layout::from_dims(dims).unwrap();
    let t64: Vec<i64> = targets.iter().map(|&v| i64::from(v)).collect();
    let want = cpu::cross_entropy(logits, dims, &t64, None, opts).unwrap();
    let tol = Tolerance::default();
    for contents in [logits, padded] {
        let x_in_place = init(ctx, bytemuck::cast_slice(contents));
        record_and_submit(
            ctx,
            dims,
            opts,
            &CrossEntropyBuffers {
                in_place: true,
                ..CrossEntropyBuffers::new(
                    x_in_place.slice(..),
                    TargetBuffer::ClassI32(t.slice(..)),
                    loss.slice(..),
                    None,
                    status.slice(..),
                )
            },
        );
        let in_place = read_f32(ctx, &x_in_place);
        let in_place = &in_place[..layout.len()];
        tol.check("in-place grad", in_place, &want.grad_reference().unwrap())
            .unwrap_or_else(|e| panic!("{dims:?}: {e}"));
        tol.check(
            "in-place loss",
            &read_f32(ctx, loss),
            &want.loss_reference(),
        )
        .unwrap_or_else(|e| panic!("{dims:?}: {e}"));
        let c: Vec<u32> = in_place.iter().map(|v| v.to_bits()).collect();
        assert!(
            c == b,
            "{dims:?}: in place on {} buffers differs from out of place",
            contents.len()
        );
    }
}

/// in_place with a grad buffer is a typed error.
fn in_place_with_a_grad_buffer_is_a_typed_error(ctx: &xent::Context) {
    let x = init(ctx, &[0; 60]);
    let t = init(ctx, bytemuck::cast_slice(&[1i32, 3, 2]));
    let (loss, grad, status) = (init(ctx, &[0; 4]), init(ctx, &[0; 60]), init(ctx, &[0; 16]));
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let b = CrossEntropyBuffers {
        in_place: true,
        ..CrossEntropyBuffers::new(
            x.slice(..),
            TargetBuffer::ClassI32(t.slice(..)),
            loss.slice(..),
            Some(grad.slice(..)),
            status.slice(..),
        )
    };
    assert!(matches!(
        ctx.record_cross_entropy(&mut encoder, &WORKED_DIMS, &Default::default(), &b),
        Err(xent::Error::BadBuffer { what: "grad", .. })
    ));
}

#[test]
fn caller_buffers_of_odd_or_oversized_sizes_are_bound_by_what_the_shape_needs() {
    // u8 targets in a 13-byte buffer (9 rows need 3 words), loss and gradient
    // buffers larger than the device's largest binding: xent binds the
    // words the shape needs, never the caller's whole buffer.
    let Some(ctx) = crate::common::small_binding_ctx(1 << 20) else {
        return;
    };
    let dev = ctx.device();
    let usage =
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    let buffer = |size: u64| {
        dev.create_buffer(&wgpu::BufferDescriptor {
            label: Some("test"),
            size,
            usage,
            mapped_at_creation: false,
        })
    };
    let dims = [9usize, 5];
    let mut rng = Rng(13);
    let logits: Vec<f32> = (0..45).map(|_| rng.uniform(-4.0, 4.0)).collect();
    let classes: Vec<u8> = (0..9).map(|_| rng.below(5) as u8).collect();
    let x = buffer(45 * 4);
    ctx.queue()
        .write_buffer(&x, 0, bytemuck::cast_slice(&logits));
    let t = buffer(13);
    let mut packed = classes.clone();
    packed.resize(12, 0);
    ctx.queue().write_buffer(&t, 0, &packed);
    let (loss, grad, status) = (buffer(2 << 20), buffer(2 << 20), buffer(16));
    let opts = CrossEntropyOptions {
        reduction: Reduction::None,
        ..Default::default()
    };
    record_and_submit(
        &ctx,
        &dims,
        &opts,
        &CrossEntropyBuffers::new(
            x.slice(..),
            TargetBuffer::ClassU8(t.slice(..)),
            loss.slice(..),
            Some(grad.slice(..)),
            status.slice(..),
        ),
    );
    let targets: Vec<i64> = classes.iter().map(|&c| i64::from(c)).collect();
    let want = cpu::cross_entropy(&logits, &dims, &targets, None, &opts).unwrap();
    let tol = Tolerance::default();
    tol.check("loss", &read_f32(&ctx, &loss)[..9], &want.loss_reference())
        .unwrap();
    tol.check(
        "grad",
        &read_f32(&ctx, &grad)[..45],
        &want.grad_reference().unwrap(),
    )
    .unwrap();
}

#[test]
fn long_rows_of_any_length_in_chunks_in_and_out_of_place() {
    // Long rows whose length is not a multiple of 4 (the vec4 kernel and its
    // seams), out of place and in place, on a device with a 1 MiB binding
    // limit: chunks start at rows that are not 16-byte aligned, and rows
    // share vec4s with their neighbours, across chunks too. Held to the CPU,
    // with smoothing and probability targets through the same kernels.
    let Some(ctx) = crate::common::small_binding_ctx(1 << 20) else {
        return;
    };
    // [301, 1001] and [7, 4097] end mid-vec4: the last vec4 read holds padding.
    for dims in [
        [300usize, 1001],
        [301, 1001],
        [5, 70_001],
        [40, 130],
        [7, 4097],
    ] {
        long_rows_in_chunks(&ctx, dims);
    }
}

/// One shape of `long_rows_of_any_length_in_chunks_in_and_out_of_place`,
/// with class targets and with probability targets.
fn long_rows_in_chunks(ctx: &xent::Context, dims: [usize; 2]) {
    let layout = xent::Layout::from_dims(&dims).unwrap();
    let mut rng = Rng(dims[1] as u64);
    let logits: Vec<f32> = (0..layout.len())
        .map(|_| rng.uniform(-10.0, 10.0))
        .collect();
    let targets: Vec<i32> = (0..layout.rows())
        .map(|_| rng.below(layout.classes) as i32)
        .collect();
    let probs = crate::common::soft_targets(&logits, &dims);
    let opts = CrossEntropyOptions {
        reduction: Reduction::Sum,
        label_smoothing: 0.1,
        ..Default::default()
    };
    // Logits and gradient in whole vec4s, as the host uploads them (the
    // vec4 views); NaN padding would poison any row that used it, and
    // must stay as it is.
    let mut padded = logits.clone();
    padded.resize(layout.len().next_multiple_of(4), f32::NAN);
    let (x, t, p) = (
        init(ctx, bytemuck::cast_slice(&padded)),
        init(ctx, bytemuck::cast_slice(&targets)),
        init(ctx, bytemuck::cast_slice(&probs)),
    );
    let t64: Vec<i64> = targets.iter().map(|&v| i64::from(v)).collect();
    for soft in [false, true] {
        let (target_buffer, targets) = if soft {
            (
                TargetBuffer::Probs(p.slice(..)),
                xent::Targets::Probs(&probs),
            )
        } else {
            (
                TargetBuffer::ClassI32(t.slice(..)),
                xent::Targets::I64(&t64),
            )
        };
        let want =
            cpu::cross_entropy_with(&logits, &dims, targets, xent::Weights::none(), &opts).unwrap();
        let (loss, status) = (init(ctx, &[0; 4]), init(ctx, &[0; 16]));
        let call = (&dims[..], &opts, target_buffer, [&loss, &status]);
        out_of_place_in_chunks(ctx, call, &x, &want, soft);
        in_place_in_chunks(ctx, call, &padded, &want, soft);
    }
}

/// A call of `long_rows_in_chunks`: dims, options, targets, [loss, status].
type ChunkedCall<'a> = (
    &'a [usize],
    &'a CrossEntropyOptions,
    TargetBuffer<'a>,
    [&'a wgpu::Buffer; 2],
);

/// Out of place on the padded logits `x`: the CPU's `want`, the gradient's
/// padding left as it was.
fn out_of_place_in_chunks(
    ctx: &xent::Context,
    (dims, opts, target_buffer, [loss, status]): ChunkedCall<'_>,
    x: &wgpu::Buffer,
    want: &xent::CrossEntropyOutput<f64>,
    soft: bool,
) {
    let tol = Tolerance::default();
    let len = xent::Layout::from_dims(dims).unwrap().len();
    let grad = init(ctx, &vec![0; len.next_multiple_of(4) * 4]);
    record_and_submit(
        ctx,
        dims,
        opts,
        &CrossEntropyBuffers::new(
            x.slice(..),
            target_buffer,
            loss.slice(..),
            Some(grad.slice(..)),
            status.slice(..),
        ),
    );
    tol.check("loss", &read_f32(ctx, loss), &want.loss_reference())
        .unwrap_or_else(|e| panic!("{dims:?} soft {soft}: {e}"));
    let out = read_f32(ctx, &grad);
    tol.check("grad", &out[..len], &want.grad_reference().unwrap())
        .unwrap_or_else(|e| panic!("{dims:?} soft {soft}: {e}"));
    assert!(out[len..].iter().all(|&v| v == 0.0), "{dims:?}");
}

/// In place over the padded logits: the CPU's `want`, the NaN padding left
/// as it was.
fn in_place_in_chunks(
    ctx: &xent::Context,
    (dims, opts, target_buffer, [loss, status]): ChunkedCall<'_>,
    padded: &[f32],
    want: &xent::CrossEntropyOutput<f64>,
    soft: bool,
) {
    let tol = Tolerance::default();
    let len = xent::Layout::from_dims(dims).unwrap().len();
    let x_in_place = init(ctx, bytemuck::cast_slice(padded));
    record_and_submit(
        ctx,
        dims,
        opts,
        &CrossEntropyBuffers {
            in_place: true,
            ..CrossEntropyBuffers::new(
                x_in_place.slice(..),
                target_buffer,
                loss.slice(..),
                None,
                status.slice(..),
            )
        },
    );
    tol.check(
        "in-place loss",
        &read_f32(ctx, loss),
        &want.loss_reference(),
    )
    .unwrap_or_else(|e| panic!("{dims:?} soft {soft}: {e}"));
    let out = read_f32(ctx, &x_in_place);
    tol.check(
        "in-place grad",
        &out[..len],
        &want.grad_reference().unwrap(),
    )
    .unwrap_or_else(|e| panic!("{dims:?} soft {soft}: {e}"));
    assert!(out[len..].iter().all(|v| v.is_nan()), "{dims:?}");
}

/// An encoder of another device cannot be detected by xent (wgpu exposes no
/// encoder's device, and wgpu checks a pass's objects when the encoder is
/// finished): the call records and returns `Ok`, and wgpu reports the
/// mismatch on the encoder's device at `finish()` (a panic there without an
/// error scope or `on_uncaptured_error`), then on xent's device at submit.
/// Pinned here as documented on `Context::record_cross_entropy`.
#[test]
fn an_encoder_of_another_device_fails_at_the_callers_finish() {
    let Some((ctx, other, _other_queue)) = crate::common::ctx_and_other_device() else {
        return;
    };
    let s = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let init = |contents: &[u8]| {
        ctx.device()
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("test"),
                contents,
                usage: s,
            })
    };
    let logits = init(bytemuck::cast_slice(&WORKED_LOGITS));
    let targets = init(bytemuck::cast_slice(&[1i32, 3, 2]));
    let (loss, grad, status) = (init(&[0; 4]), init(&[0; 60]), init(&[0; 16]));
    let buffers = CrossEntropyBuffers::new(
        logits.slice(..),
        TargetBuffer::ClassI32(targets.slice(..)),
        loss.slice(..),
        Some(grad.slice(..)),
        status.slice(..),
    );
    let mut encoder = other.create_command_encoder(&Default::default());
    ctx.record_cross_entropy(&mut encoder, &WORKED_DIMS, &Default::default(), &buffers)
        .expect("xent cannot tell whose encoder it is");
    let scope = other.push_error_scope(wgpu::ErrorFilter::Validation);
    let commands = encoder.finish();
    let at_finish = pollster::block_on(scope.pop()).expect("an error at finish()");
    assert!(
        at_finish.to_string().contains("doesn't match"),
        "{at_finish}"
    );
    let scope = ctx.device().push_error_scope(wgpu::ErrorFilter::Validation);
    ctx.queue().submit([commands]);
    assert!(
        pollster::block_on(scope.pop()).is_some(),
        "an error at submit"
    );
    // xent's device is unharmed.
    record_and_submit(&ctx, &WORKED_DIMS, &Default::default(), &buffers);
    let grad = read_f32(&ctx, &grad);
    assert!(grad.iter().all(|g| g.is_finite()) && grad.iter().any(|&g| g != 0.0));
}
