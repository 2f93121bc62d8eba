//! Same inputs, same bits: a call's results depend on its shapes, options,
//! precision and adapter, never on how far the caller's buffers reach past
//! their tensors, nor on whether the host or the recording API ran it.
//!
//! The shapes include rows of C % 4 != 0 and C >= 128, whose kernel walks
//! rows through vec4 views where the buffers reach the vec4 holding the
//! tensor's last element and through scalar views where they do not
//! (`rows_wide_mixed` and `rows_wide_quads`): an exact buffer and one padded
//! by 16 bytes take the two views.

mod common;

use common::{ctx, read_bytes, Rng};
use wgpu::util::DeviceExt;
use xent::{
    CrossEntropyBuffers, CrossEntropyOptions, Precision, Reduction, TargetBuffer, Targets, Weights,
};

/// `values` stored in `precision`, as bytes.
fn stored(values: &[f32], precision: Precision) -> Vec<u8> {
    match precision {
        Precision::F32 => bytemuck::cast_slice(values).to_vec(),
        Precision::F16 => values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
        _ => values
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect(),
    }
}

/// What one recorded cross-entropy call runs with besides its input.
#[derive(Clone, Copy)]
struct Case<'a> {
    opts: &'a CrossEntropyOptions,
    precision: Precision,
    in_place: bool,
    /// Probability targets (the input's shape) instead of class ids.
    probs: Option<&'a [f32]>,
    /// Class weights, lse and the argmax count.
    extras: bool,
}

/// One recorded cross-entropy call whose input and gradient buffers hold
/// the tensor plus `pad` bytes (the tensor's bytes rounded up to a word at
/// least): the bytes of the gradient (the input's, in place), the loss, the
/// lse and the argmax count.
fn recorded(
    ctx: &xent::Context,
    dims: &[usize],
    x: &[f32],
    targets: &[i32],
    case: Case<'_>,
    pad: u64,
) -> Vec<Vec<u8>> {
    let dev = ctx.device();
    let usage =
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    let mut bytes = stored(x, case.precision);
    let len = bytes.len();
    let size = (len as u64).next_multiple_of(4) + pad;
    bytes.resize(size as usize, 0x5a);
    let init = |contents: &[u8]| {
        dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("same bits"),
            contents,
            usage,
        })
    };
    let input = init(&bytes);
    let grad = init(&vec![0xa5; size as usize]);
    let t = match case.probs {
        Some(q) => init(bytemuck::cast_slice(q)),
        None => init(bytemuck::cast_slice(targets)),
    };
    let rows = targets.len().max(1);
    let weights: Vec<f32> = (0..dims[1]).map(|c| 0.5 + (c % 7) as f32 / 4.0).collect();
    let weights = init(bytemuck::cast_slice(&weights));
    let (loss, lse) = (init(&vec![0; 4 * rows]), init(&vec![0; 4 * rows]));
    let (correct, status) = (init(&[0; 4]), init(&[0; 16]));
    let b = CrossEntropyBuffers {
        in_place: case.in_place,
        precision: case.precision,
        weights: case.extras.then_some(&weights),
        lse: case.extras.then_some(&lse),
        correct: case.extras.then_some(&correct),
        ..CrossEntropyBuffers::new(
            &input,
            match case.probs {
                Some(_) => TargetBuffer::Probs(&t),
                None => TargetBuffer::ClassI32(&t),
            },
            &loss,
            (!case.in_place).then_some(&grad),
            &status,
        )
    };
    let mut encoder = dev.create_command_encoder(&Default::default());
    ctx.record_cross_entropy(&mut encoder, dims, case.opts, &b)
        .unwrap();
    ctx.queue().submit([encoder.finish()]);
    let out = if case.in_place { &input } else { &grad };
    let g = read_bytes(ctx, out)[..len].to_vec();
    vec![
        g,
        read_bytes(ctx, &loss),
        read_bytes(ctx, &lse),
        read_bytes(ctx, &correct),
    ]
}

fn data(dims: &[usize], seed: u64) -> (Vec<f32>, Vec<i32>) {
    let mut rng = Rng(seed);
    let (rows, classes) = (dims[0], dims[1]);
    let x = (0..rows * classes)
        .map(|_| rng.uniform(-8.0, 8.0))
        .collect();
    let t = (0..rows).map(|_| rng.below(classes) as i32).collect();
    (x, t)
}

#[test]
fn cross_entropy_bits_do_not_depend_on_buffer_sizes() {
    let Some(ctx) = ctx() else { return };
    let half = ctx.device().features().contains(wgpu::Features::SHADER_F16);
    let precisions = [Precision::F32, Precision::BF16, Precision::F16];
    let smoothing = CrossEntropyOptions {
        label_smoothing: 0.1,
        ..Default::default()
    };
    let none = CrossEntropyOptions {
        reduction: Reduction::None,
        z_loss: 1e-3,
        softcap: Some(15.0),
        ..Default::default()
    };
    let counted = CrossEntropyOptions {
        count_correct: true,
        ..Default::default()
    };
    // C % 4 != 0 past 128 (the mixed walk, rows starting at every offset
    // within a vec4), and C % 4 == 0 for contrast.
    let shapes: [&[usize]; 5] = [&[3, 1030], &[2, 4099], &[5, 131], &[7, 257], &[3, 1028]];
    for (i, dims) in shapes.into_iter().enumerate() {
        let (x, t) = data(dims, 17 + i as u64);
        let probs = common::soft_targets(&x, dims);
        for precision in precisions {
            if precision == Precision::F16 && !half {
                continue;
            }
            for in_place in [false, true] {
                let case = Case {
                    opts: &smoothing,
                    precision,
                    in_place,
                    probs: None,
                    extras: false,
                };
                let cases = [
                    case,
                    Case {
                        opts: &none,
                        extras: true,
                        ..case
                    },
                    Case {
                        opts: &counted,
                        extras: true,
                        ..case
                    },
                    Case {
                        probs: Some(&probs),
                        ..case
                    },
                ];
                for (k, case) in cases.into_iter().enumerate() {
                    let run = |pad| recorded(ctx, dims, &x, &t, case, pad);
                    let (exact, padded) = (run(0), run(16));
                    for (j, what) in ["grad", "loss", "lse", "correct"].iter().enumerate() {
                        assert!(
                            exact[j] == padded[j],
                            "{dims:?} {precision:?} in place {in_place}, case {k}: {what} differs"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn cross_entropy_host_and_recording_give_the_same_bits() {
    let Some(ctx) = ctx() else { return };
    for (i, dims) in [[3usize, 1030], [2, 4099], [64, 100]].iter().enumerate() {
        let (x, t) = data(dims, 41 + i as u64);
        let t64: Vec<i64> = t.iter().map(|&v| i64::from(v)).collect();
        let opts = CrossEntropyOptions::default();
        let host = ctx
            .cross_entropy_with(&x, dims, Targets::I64(&t64), Weights::none(), &opts)
            .unwrap();
        let host_grad: Vec<u8> = bytemuck::cast_slice(&host.grad.unwrap()).to_vec();
        let case = |precision| Case {
            opts: &opts,
            precision,
            in_place: false,
            probs: None,
            extras: false,
        };
        for pad in [0, 16] {
            let out = recorded(ctx, dims, &x, &t, case(Precision::F32), pad);
            let (grad, loss) = (&out[0], &out[1]);
            assert!(*grad == host_grad, "{dims:?}, pad {pad}: gradients differ");
            let host_loss = bytemuck::cast_slice::<f32, u8>(&host.loss);
            assert_eq!(&loss[..4], host_loss, "{dims:?}");
        }
        let bf: Vec<half::bf16> = x.iter().map(|&v| half::bf16::from_f32(v)).collect();
        let host = ctx
            .cross_entropy_bf16(&bf, dims, Targets::I64(&t64), Weights::none(), &opts)
            .unwrap();
        let host_grad = stored(&host.grad.unwrap(), Precision::BF16);
        for pad in [0, 16] {
            let grad = &recorded(ctx, dims, &x, &t, case(Precision::BF16), pad)[0];
            assert!(
                *grad == host_grad,
                "{dims:?} bf16, pad {pad}: gradients differ"
            );
        }
    }
}

#[test]
fn the_scalar_views_keep_the_bits_at_the_loop_bound() {
    // 524 099 classes: the longest rows of C % 4 != 0 the mixed walk takes
    // on 8-invocation workgroups (tests/loop_bounds.rs holds the vec4 views
    // to the CPU there).
    let Some(ctx) = ctx() else { return };
    let dims = [4usize, 524_099];
    let (x, t) = data(&dims, 5);
    let opts = CrossEntropyOptions::default();
    let case = Case {
        opts: &opts,
        precision: Precision::F32,
        in_place: false,
        probs: None,
        extras: false,
    };
    let run = |pad| recorded(ctx, &dims, &x, &t, case, pad);
    assert!(run(0) == run(16), "results differ");
}

/// `out = A·B` recorded with A and B stored from element `offset` of their
/// buffers (the rest zero): the output's bits.
fn product_at(
    ctx: &xent::Context,
    a: &[f32],
    b: &[f32],
    (m, k, n): (usize, usize, usize),
    offset: usize,
    kernel: xent::ProductKernel,
) -> Vec<u8> {
    let dev = ctx.device();
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let at = |v: &[f32]| {
        let mut padded = vec![0.0f32; offset];
        padded.extend_from_slice(v);
        dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("operand"),
            contents: bytemuck::cast_slice(&padded),
            usage,
        })
    };
    let (a_buf, b_buf) = (at(a), at(b));
    let out = dev.create_buffer(&wgpu::BufferDescriptor {
        label: Some("product"),
        size: (4 * m * n) as u64,
        usage,
        mapped_at_creation: false,
    });
    let view = |buffer, cols| xent::MatrixView {
        offset: offset as u64,
        ..xent::MatrixView::dense(buffer, Precision::F32, cols)
    };
    let buffers = xent::ProductBuffers {
        a: view(&a_buf, k),
        b: view(&b_buf, n),
        bias: None,
        out: &out,
        out_offset: 0,
        out_stride: n as u64,
        accumulate: false,
        kernel,
    };
    let mut encoder = dev.create_command_encoder(&Default::default());
    ctx.record_matmul(&mut encoder, xent::MatmulDims { m, k, n }, &buffers)
        .unwrap();
    ctx.queue().submit([encoder.finish()]);
    read_bytes(ctx, &out)
}

#[test]
fn product_bits_do_not_depend_on_the_operands_alignment() {
    // Offset 0 reads runs of 4 as vec4s, offset 1 element by element: the
    // same values in the same order of k, so the same bits.
    let Some(ctx) = ctx() else { return };
    // Rows of k = 72 and n = 48 elements: runs of 4 aligned at offset 0.
    let (m, k, n) = (37, 72, 48);
    let mut rng = Rng(3);
    let a: Vec<f32> = (0..m * k).map(|_| rng.uniform(-2.0, 2.0)).collect();
    let b: Vec<f32> = (0..k * n).map(|_| rng.uniform(-2.0, 2.0)).collect();
    for kernel in [xent::ProductKernel::Tiled, xent::ProductKernel::Blocks] {
        let aligned = product_at(ctx, &a, &b, (m, k, n), 0, kernel);
        let unaligned = product_at(ctx, &a, &b, (m, k, n), 1, kernel);
        assert!(aligned == unaligned, "{kernel:?}: products differ");
    }
}

/// A buffer holding `values` in f32 and `pad` more bytes.
fn padded_buffer(ctx: &xent::Context, values: &[f32], pad: usize) -> wgpu::Buffer {
    let mut bytes = bytemuck::cast_slice::<f32, u8>(values).to_vec();
    bytes.resize(bytes.len() + pad, 0x5a);
    ctx.device()
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("same bits"),
            contents: &bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        })
}

#[test]
fn elementwise_and_softmax_bits_do_not_depend_on_buffer_sizes() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(11);
    // 4 099 elements: not a multiple of 4; rows of 4 099 and 1 030 classes.
    let dims = [1usize, 4099];
    let x: Vec<f32> = (0..4099).map(|_| rng.uniform(-4.0, 4.0)).collect();
    let y: Vec<f32> = (0..4099).map(|_| rng.uniform(0.0, 1.0)).collect();
    let elementwise = |pad| {
        let (input, target) = (padded_buffer(ctx, &x, pad), padded_buffer(ctx, &y, pad));
        let (loss, grad) = (padded_buffer(ctx, &[0.0], 0), padded_buffer(ctx, &x, pad));
        let b = xent::ElementwiseBuffers::new(&input, &target, &loss, Some(&grad));
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        let loss_kind = xent::ElementwiseLoss::BceWithLogits;
        ctx.record_elementwise_loss(&mut encoder, loss_kind, &dims, &b, Reduction::Mean)
            .unwrap();
        ctx.queue().submit([encoder.finish()]);
        (
            read_bytes(ctx, &grad)[..4 * 4099].to_vec(),
            read_bytes(ctx, &loss),
        )
    };
    assert!(
        elementwise(0) == elementwise(16),
        "elementwise results differ"
    );
    for dims in [[1usize, 4099], [3, 1030]] {
        let len = dims[0] * dims[1];
        let softmax = |pad| {
            let input = padded_buffer(ctx, &x[..len], pad);
            let output = padded_buffer(ctx, &x[..len], pad);
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            let kind = xent::SoftmaxKind::LogSoftmax;
            ctx.record_softmax(&mut encoder, &dims, kind, &input, &output)
                .unwrap();
            ctx.queue().submit([encoder.finish()]);
            read_bytes(ctx, &output)[..4 * len].to_vec()
        };
        assert!(
            softmax(0) == softmax(16),
            "{dims:?}: softmax results differ"
        );
    }
}
