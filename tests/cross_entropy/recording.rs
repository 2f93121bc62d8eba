//! The recording API with the test's own buffers and encoder, and
//! bit-identical repeat runs.

use crate::common::{assert_close, ctx, read_f32, Rng, WORKED_DIMS, WORKED_LOGITS};
use wgpu::util::DeviceExt;
use xent::{cpu, CrossEntropyBuffers, CrossEntropyOptions, Reduction, TargetBuffer, Tolerance};

/// Records one cross-entropy call into an encoder of its own and submits it.
pub fn record_and_submit(
    ctx: &xent::Context,
    dims: &[usize],
    opts: &CrossEntropyOptions,
    buffers: &CrossEntropyBuffers<'_>,
) {
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    ctx.record_cross_entropy(&mut encoder, dims, opts, buffers)
        .unwrap();
    ctx.queue().submit([encoder.finish()]);
}

#[test]
fn gradient_lands_in_the_callers_buffer_inside_a_larger_pipeline() {
    let Some(ctx) = ctx() else { return };
    let dev = ctx.device();
    let usage =
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    let init = |contents: &[u8]| {
        dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("test"),
            contents,
            usage,
        })
    };
    let logits = init(bytemuck::cast_slice(&WORKED_LOGITS));
    let targets = init(bytemuck::cast_slice(&[1i32, 3, 2]));
    let loss = init(&[0xff; 4]);
    // Pre-filled with garbage: every element must be overwritten.
    let grad = init(&[0xff; 60]);
    let status = init(&[0xff; 16]);
    let copy_of_grad = init(&[0; 60]);

    let mut encoder = dev.create_command_encoder(&Default::default());
    ctx.record_cross_entropy(
        &mut encoder,
        &WORKED_DIMS,
        &CrossEntropyOptions::default(),
        &CrossEntropyBuffers::new(
            logits.slice(..),
            TargetBuffer::ClassI32(targets.slice(..)),
            loss.slice(..),
            Some(grad.slice(..)),
            status.slice(..),
        ),
    )
    .unwrap();
    // The caller's own next step in the same encoder, reading xent's output.
    encoder.copy_buffer_to_buffer(&grad, 0, &copy_of_grad, 0, 60);
    ctx.queue().submit([encoder.finish()]);

    let want = cpu::cross_entropy(
        &WORKED_LOGITS,
        &WORKED_DIMS,
        &[1, 3, 2],
        None,
        &Default::default(),
    )
    .unwrap();
    let tol = Tolerance::default();
    tol.check(
        "grad",
        &read_f32(ctx, &copy_of_grad),
        &want.grad_reference().unwrap(),
    )
    .unwrap();
    tol.check("loss", &read_f32(ctx, &loss), &want.loss_reference())
        .unwrap();
    assert_eq!(
        ctx.read_status::<xent::CrossEntropyStatus>(status.slice(..))
            .unwrap(),
        xent::CrossEntropyStatus::default()
    );
}

#[test]
fn status_buffer_reports_a_bad_target_without_faulting() {
    let Some(ctx) = ctx() else { return };
    let dev = ctx.device();
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let init = |contents: &[u8]| {
        dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("test"),
            contents,
            usage,
        })
    };
    let logits = init(bytemuck::cast_slice(&WORKED_LOGITS));
    let targets = init(bytemuck::cast_slice(&[1i32, 42, 2]));
    let loss = init(&[0; 12]);
    let status = init(&[0; 16]);
    let mut encoder = dev.create_command_encoder(&Default::default());
    let opts = CrossEntropyOptions {
        reduction: Reduction::None,
        ..Default::default()
    };
    ctx.record_cross_entropy(
        &mut encoder,
        &WORKED_DIMS,
        &opts,
        &CrossEntropyBuffers::new(
            logits.slice(..),
            TargetBuffer::ClassI32(targets.slice(..)),
            loss.slice(..),
            None,
            status.slice(..),
        ),
    )
    .unwrap();
    ctx.queue().submit([encoder.finish()]);
    let s: xent::CrossEntropyStatus = ctx.read_status(status.slice(..)).unwrap();
    assert_eq!((s.bad_targets, s.first_position, s.first_value), (1, 1, 42));
    let layout = xent::Layout::from_dims(&WORKED_DIMS).unwrap();
    assert!(matches!(
        s.check(&layout, -100),
        Err(xent::Error::TargetOutOfRange { value: 42, .. })
    ));
    // The bad row's loss is NaN, never a plausible number; the others are right.
    let l = read_f32(ctx, &loss);
    assert!(l[1].is_nan());
    assert_close(
        "loss",
        &[l[0], l[2]],
        &[8.000467167833863, 0.02147625869973374],
        1e-5,
    );
}

#[test]
fn repeated_runs_are_bit_identical() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(99);
    for dims in [vec![64usize, 1000], vec![4096, 10], vec![2, 7, 33, 31]] {
        let layout = xent::Layout::from_dims(&dims).unwrap();
        let logits: Vec<f32> = (0..layout.len())
            .map(|_| rng.uniform(-10.0, 10.0))
            .collect();
        let targets: Vec<i64> = (0..layout.rows())
            .map(|_| rng.below(layout.classes) as i64)
            .collect();
        let weights: Vec<f32> = (0..layout.classes).map(|_| rng.uniform(0.5, 2.0)).collect();
        let opts = CrossEntropyOptions {
            label_smoothing: 0.1,
            ..Default::default()
        };
        let first = ctx
            .cross_entropy(
                &logits,
                &dims,
                &targets,
                Some(&weights),
                &opts,
                &Default::default(),
            )
            .unwrap();
        for _ in 0..3 {
            let again = ctx
                .cross_entropy(
                    &logits,
                    &dims,
                    &targets,
                    Some(&weights),
                    &opts,
                    &Default::default(),
                )
                .unwrap();
            assert_eq!(first.loss[0].to_bits(), again.loss[0].to_bits(), "{dims:?}");
            let a: Vec<u32> = first
                .grad
                .as_ref()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect();
            let b: Vec<u32> = again
                .grad
                .as_ref()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect();
            assert!(a == b, "{dims:?}: gradients differ between runs");
        }
    }
}

#[test]
fn two_calls_recorded_into_one_encoder_do_not_interfere() {
    // Scratch buffers are shared between calls; passes run in order, so two
    // recordings in one encoder must each see their own statistics.
    let Some(ctx) = ctx() else { return };
    let dev = ctx.device();
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let init = |contents: &[u8]| {
        dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("test"),
            contents,
            usage,
        })
    };
    let logits = init(bytemuck::cast_slice(&WORKED_LOGITS));
    let t1 = init(bytemuck::cast_slice(&[1i32, 3, 2]));
    let t2 = init(bytemuck::cast_slice(&[1i32, -100, 2]));
    let (l1, l2, s1, s2) = (init(&[0; 4]), init(&[0; 4]), init(&[0; 16]), init(&[0; 16]));
    let mut encoder = dev.create_command_encoder(&Default::default());
    for (t, l, s) in [(&t1, &l1, &s1), (&t2, &l2, &s2)] {
        ctx.record_cross_entropy(
            &mut encoder,
            &WORKED_DIMS,
            &Default::default(),
            &CrossEntropyBuffers::new(
                logits.slice(..),
                TargetBuffer::ClassI32(t.slice(..)),
                l.slice(..),
                None,
                s.slice(..),
            ),
        )
        .unwrap();
    }
    ctx.queue().submit([encoder.finish()]);
    assert_close("first", &read_f32(ctx, &l1), &[3.7924786392503727], 1e-5);
    assert_close("second", &read_f32(ctx, &l2), &[4.010971713266798], 1e-5);
}
