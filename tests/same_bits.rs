//! Same inputs, same bits: a call's results depend on its shapes, options,
//! precision and adapter, never on how far the caller's buffers reach past
//! their tensors, where in a buffer a region starts, nor on whether the host
//! or the recording API ran it.
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

/// Where a call's tensors lie: each in a region starting `at` bytes into
/// its buffer (filler before it) and reaching `pad` bytes past the tensor's
/// bytes rounded up to a word (filler after it).
#[derive(Clone, Copy, Debug)]
struct Place {
    at: u64,
    pad: u64,
}

/// Exactly the tensor's words.
const EXACT: Place = Place { at: 0, pad: 0 };
/// 16 bytes more: where vec4 views reach past the last element.
const PADDED: Place = Place { at: 0, pad: 16 };
/// A region 256 bytes into its buffer: a multiple of every device's
/// storage offset alignment (256 at most).
const OFFSET: Place = Place { at: 256, pad: 0 };

/// A buffer holding `contents` placed as `place` says; filler is 0x5a.
fn placed(ctx: &xent::Context, contents: &[u8], place: Place) -> wgpu::Buffer {
    let mut bytes = vec![0x5a; place.at as usize];
    bytes.extend_from_slice(contents);
    let end = (bytes.len() as u64).next_multiple_of(4) + place.pad;
    bytes.resize(end as usize, 0x5a);
    ctx.device()
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("same bits"),
            contents: &bytes,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        })
}

/// The region of a buffer made by [`placed`].
fn region(buffer: &wgpu::Buffer, place: Place) -> wgpu::BufferSlice<'_> {
    buffer.slice(place.at..)
}

/// The first `len` bytes of the region.
fn read_region(ctx: &xent::Context, buffer: &wgpu::Buffer, place: Place, len: usize) -> Vec<u8> {
    let at = place.at as usize;
    read_bytes(ctx, buffer)[at..at + len].to_vec()
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

/// One recorded cross-entropy call with every buffer placed as `place`
/// says: the bytes of the gradient (the input's, in place), the loss, the
/// lse and the argmax count.
fn recorded(
    ctx: &xent::Context,
    dims: &[usize],
    x: &[f32],
    targets: &[i32],
    case: Case<'_>,
    place: Place,
) -> Vec<Vec<u8>> {
    let init = |contents: &[u8]| placed(ctx, contents, place);
    let bytes = stored(x, case.precision);
    let len = bytes.len();
    let input = init(&bytes);
    let grad = init(&vec![0xa5; len]);
    let t = match case.probs {
        Some(q) => init(bytemuck::cast_slice(q)),
        None => init(bytemuck::cast_slice(targets)),
    };
    let rows = targets.len().max(1);
    let weights: Vec<f32> = (0..dims[1]).map(|c| 0.5 + (c % 7) as f32 / 4.0).collect();
    let weights = init(bytemuck::cast_slice(&weights));
    let (loss, lse) = (init(&vec![0; 4 * rows]), init(&vec![0; 4 * rows]));
    let (correct, status) = (init(&[0; 4]), init(&[0; 16]));
    let r = |b| region(b, place);
    let b = CrossEntropyBuffers {
        in_place: case.in_place,
        precision: case.precision,
        weights: case.extras.then_some(r(&weights)),
        lse: case.extras.then_some(r(&lse)),
        correct: case.extras.then_some(r(&correct)),
        ..CrossEntropyBuffers::new(
            r(&input),
            match case.probs {
                Some(_) => TargetBuffer::Probs(r(&t)),
                None => TargetBuffer::ClassI32(r(&t)),
            },
            r(&loss),
            (!case.in_place).then_some(r(&grad)),
            r(&status),
        )
    };
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    ctx.record_cross_entropy(&mut encoder, dims, case.opts, &b)
        .unwrap();
    ctx.queue().submit([encoder.finish()]);
    let out = if case.in_place { &input } else { &grad };
    vec![
        read_region(ctx, out, place, len),
        read_region(ctx, &loss, place, 4 * rows),
        read_region(ctx, &lse, place, 4 * rows),
        read_region(ctx, &correct, place, 4),
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
fn cross_entropy_bits_do_not_depend_on_buffer_sizes_or_offsets() {
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
    // The argmax count: a correct buffer given (the extras).
    let counted = CrossEntropyOptions::default();
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
                    let run = |place| recorded(ctx, dims, &x, &t, case, place);
                    let exact = run(EXACT);
                    for place in [PADDED, OFFSET] {
                        let other = run(place);
                        for (j, what) in ["grad", "loss", "lse", "correct"].iter().enumerate() {
                            assert!(
                                exact[j] == other[j],
                                "{dims:?} {precision:?} in place {in_place}, case {k}, \
                                 {place:?}: {what} differs"
                            );
                        }
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
            .cross_entropy_with(
                &x,
                dims,
                Targets::I64(&t64),
                Weights::none(),
                &opts,
                &Default::default(),
            )
            .unwrap();
        let host_grad: Vec<u8> = bytemuck::cast_slice(&host.grad.unwrap()).to_vec();
        let case = |precision| Case {
            opts: &opts,
            precision,
            in_place: false,
            probs: None,
            extras: false,
        };
        for place in [EXACT, PADDED, OFFSET] {
            let out = recorded(ctx, dims, &x, &t, case(Precision::F32), place);
            let (grad, loss) = (&out[0], &out[1]);
            assert!(*grad == host_grad, "{dims:?}, {place:?}: gradients differ");
            let host_loss = bytemuck::cast_slice::<f32, u8>(&host.loss);
            assert_eq!(&loss[..4], host_loss, "{dims:?}");
        }
        let bf: Vec<half::bf16> = x.iter().map(|&v| half::bf16::from_f32(v)).collect();
        let host = ctx
            .cross_entropy_with(
                &bf,
                dims,
                Targets::I64(&t64),
                Weights::none(),
                &opts,
                &Default::default(),
            )
            .unwrap();
        let host_grad = stored(&host.grad.unwrap(), Precision::BF16);
        for place in [EXACT, PADDED, OFFSET] {
            let grad = &recorded(ctx, dims, &x, &t, case(Precision::BF16), place)[0];
            assert!(
                *grad == host_grad,
                "{dims:?} bf16, {place:?}: gradients differ"
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
    let run = |place| recorded(ctx, &dims, &x, &t, case, place);
    let exact = run(EXACT);
    assert!(exact == run(PADDED), "padded: results differ");
    assert!(exact == run(OFFSET), "at an offset: results differ");
}

/// `out = A·B` recorded with A and B stored from element `offset` of
/// their regions (the rest zero), every buffer placed as `place` says: the
/// output's bits.
fn product_at(
    ctx: &xent::Context,
    (a, b): (&[f32], &[f32]),
    (m, k, n): (usize, usize, usize),
    (offset, place): (usize, Place),
    kernel: xent::ProductKernel,
) -> Vec<u8> {
    let at = |v: &[f32]| {
        let mut padded = vec![0.0f32; offset];
        padded.extend_from_slice(v);
        placed(ctx, bytemuck::cast_slice(&padded), place)
    };
    let (a_buf, b_buf) = (at(a), at(b));
    let out = placed(ctx, &vec![0; 4 * m * n], place);
    let view = |buffer, cols| xent::MatrixView {
        offset: offset as u64,
        ..xent::MatrixView::dense(buffer, Precision::F32, cols)
    };
    let buffers = xent::ProductBuffers {
        a: view(region(&a_buf, place), k),
        b: view(region(&b_buf, place), n),
        bias: None,
        out: region(&out, place),
        out_offset: 0,
        out_stride: n as u64,
        accumulate: false,
    };
    let opts = xent::MatmulOptions {
        kernel,
        ..Default::default()
    };
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    ctx.record_matmul(&mut encoder, &xent::MatmulDims { m, k, n }, &opts, &buffers)
        .unwrap();
    ctx.queue().submit([encoder.finish()]);
    read_region(ctx, &out, place, 4 * m * n)
}

#[test]
fn product_bits_do_not_depend_on_the_operands_alignment_or_region() {
    // Offset 0 reads runs of 4 as vec4s, offset 1 element by element: the
    // same values in the same order of k, so the same bits.
    let Some(ctx) = ctx() else { return };
    // Rows of k = 72 and n = 48 elements: runs of 4 aligned at offset 0.
    let (m, k, n) = (37, 72, 48);
    let mut rng = Rng(3);
    let a: Vec<f32> = (0..m * k).map(|_| rng.uniform(-2.0, 2.0)).collect();
    let b: Vec<f32> = (0..k * n).map(|_| rng.uniform(-2.0, 2.0)).collect();
    for kernel in [xent::ProductKernel::Tiled, xent::ProductKernel::Blocks] {
        let run = |at| product_at(ctx, (&a, &b), (m, k, n), at, kernel);
        let aligned = run((0, EXACT));
        for at in [(1, EXACT), (0, PADDED), (0, OFFSET), (1, OFFSET)] {
            assert!(aligned == run(at), "{kernel:?} {at:?}: products differ");
        }
    }
}

#[test]
fn elementwise_and_softmax_bits_do_not_depend_on_buffer_sizes_or_offsets() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(11);
    // 4 099 elements: not a multiple of 4; rows of 4 099 and 1 030 classes.
    let dims = [1usize, 4099];
    let x: Vec<f32> = (0..4099).map(|_| rng.uniform(-4.0, 4.0)).collect();
    let y: Vec<f32> = (0..4099).map(|_| rng.uniform(0.0, 1.0)).collect();
    let f32s = |v: &[f32], place| placed(ctx, bytemuck::cast_slice(v), place);
    let elementwise = |place| {
        let (input, target) = (f32s(&x, place), f32s(&y, place));
        let (loss, grad) = (f32s(&[0.0], place), f32s(&x, place));
        let status = f32s(&[0.0; 4], place);
        let r = |b| region(b, place);
        let b = xent::ElementwiseBuffers::new(
            r(&input),
            r(&target),
            r(&loss),
            Some(r(&grad)),
            r(&status),
        );
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        let loss_kind = xent::ElementwiseLoss::BceWithLogits;
        ctx.record_elementwise_loss(
            &mut encoder,
            &dims,
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
    };
    let exact = elementwise(EXACT);
    for place in [PADDED, OFFSET] {
        assert!(
            exact == elementwise(place),
            "{place:?}: elementwise results differ"
        );
    }
    for dims in [[1usize, 4099], [3, 1030]] {
        let len = dims[0] * dims[1];
        let softmax = |place| {
            let (input, output) = (f32s(&x[..len], place), f32s(&x[..len], place));
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            ctx.record_softmax(
                &mut encoder,
                &dims,
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
            read_region(ctx, &output, place, 4 * len)
        };
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

#[test]
fn linear_cross_entropy_bits_do_not_depend_on_the_api_buffer_sizes_or_offsets() {
    let Some(ctx) = ctx() else { return };
    // Several windows of 8 rows: ∂L/∂W and ∂L/∂b summed over chunks.
    let dims = xent::LinearDims {
        n: 37,
        h: 24,
        v: 301,
    };
    let mut rng = Rng(29);
    let mut draw =
        |len: usize, r: f32| -> Vec<f32> { (0..len).map(|_| rng.uniform(-r, r)).collect() };
    let (h, w, b) = (
        draw(dims.n * dims.h, 1.0),
        draw(dims.v * dims.h, 0.5),
        draw(dims.v, 0.5),
    );
    let t: Vec<i32> = (0..dims.n as i32)
        .map(|i| (i * 37) % dims.v as i32)
        .collect();
    let opts = xent::LinearCrossEntropyOptions {
        scratch_budget: 8 * dims.v as u64 * 4,
        ..Default::default()
    };
    let t64: Vec<i64> = t.iter().map(|&v| i64::from(v)).collect();
    let host = ctx
        .linear_cross_entropy(
            &h,
            &w,
            Some(&b),
            &t64,
            None,
            &dims,
            &opts,
            &Default::default(),
        )
        .unwrap();
    let bytes = |v: &[f32]| bytemuck::cast_slice::<f32, u8>(v).to_vec();
    let want = [
        bytes(&host.loss),
        bytes(&host.grad_hidden.unwrap()),
        bytes(&host.grad_weight.unwrap()),
        bytes(&host.grad_bias.unwrap()),
    ];
    for place in [EXACT, PADDED, OFFSET] {
        let f32s = |v: &[f32]| placed(ctx, bytemuck::cast_slice(v), place);
        let (hb, wb, bb) = (f32s(&h), f32s(&w), f32s(&b));
        let tb = placed(ctx, bytemuck::cast_slice(&t), place);
        let (loss, status) = (f32s(&[0.0]), f32s(&[0.0; 4]));
        let (gh, gw, gb) = (f32s(&h), f32s(&w), f32s(&b));
        let r = |buffer| region(buffer, place);
        let buffers = xent::LinearBuffers {
            bias: Some(r(&bb)),
            grad_hidden: Some(r(&gh)),
            grad_weight: Some(r(&gw)),
            grad_bias: Some(r(&gb)),
            ..xent::LinearBuffers::new(
                r(&hb),
                r(&wb),
                xent::TargetBuffer::ClassI32(r(&tb)),
                r(&loss),
                r(&status),
            )
        };
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        ctx.record_linear_cross_entropy(&mut encoder, &dims, &opts, &buffers)
            .unwrap();
        ctx.queue().submit([encoder.finish()]);
        let got = [
            (&loss, 4),
            (&gh, want[1].len()),
            (&gw, want[2].len()),
            (&gb, want[3].len()),
        ]
        .map(|(buffer, len)| read_region(ctx, buffer, place, len));
        for (what, (got, want)) in ["loss", "grad_hidden", "grad_weight", "grad_bias"]
            .iter()
            .zip(got.iter().zip(&want))
        {
            assert!(got == want, "{place:?}: {what} differs from the host API's");
        }
    }
}

#[test]
fn vocabulary_parallel_bits_do_not_depend_on_the_api_or_offsets() {
    let Some(ctx) = ctx() else { return };
    let (dims, shards) = ([6usize, 50], 3);
    let (x, t) = data(&dims, 61);
    let t64: Vec<i64> = t.iter().map(|&v| i64::from(v)).collect();
    let opts = CrossEntropyOptions::default();
    let host = ctx
        .cross_entropy_sharded(
            &x,
            &dims,
            Targets::I64(&t64),
            Weights::none(),
            &opts,
            &Default::default(),
            shards,
        )
        .unwrap();
    let host_grad = host.grad.unwrap();
    let ranges = xent::ClassRange::split(dims[1], shards).unwrap();
    let block = dims[0] as u64 * xent::VOCAB_RECORD_BYTES;
    for place in [EXACT, PADDED, OFFSET] {
        let targets = placed(ctx, bytemuck::cast_slice(&t), place);
        let gathered = placed(ctx, &vec![0; (block * shards as u64) as usize], place);
        let merged = placed(ctx, &vec![0; block as usize], place);
        let columns = |range: &xent::ClassRange, v: &[f32]| -> Vec<f32> {
            v.chunks(dims[1])
                .flat_map(|row| row[range.start..range.end].to_vec())
                .collect()
        };
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        let mut logits = Vec::new();
        for (k, range) in ranges.iter().enumerate() {
            let shard = placed(ctx, bytemuck::cast_slice(&columns(range, &x)), place);
            let partial = placed(ctx, &vec![0; block as usize], place);
            let b = xent::VocabPartialBuffers {
                logits: region(&shard, place),
                targets: TargetBuffer::ClassI32(region(&targets, place)),
                weights: None,
                precision: Precision::F32,
                partial: region(&partial, place),
            };
            ctx.record_vocab_partial(&mut encoder, &dims, *range, &opts, &b)
                .unwrap();
            let to = place.at + k as u64 * block;
            encoder.copy_buffer_to_buffer(&partial, place.at, &gathered, to, block);
            logits.push(shard);
        }
        ctx.record_vocab_merge(
            &mut encoder,
            &xent::MergeDims {
                rows: dims[0],
                shards,
            },
            &opts,
            &xent::VocabMergeBuffers {
                gathered: region(&gathered, place),
                merged: region(&merged, place),
            },
        )
        .unwrap();
        let mut outputs = Vec::new();
        for (range, shard) in ranges.iter().zip(&logits) {
            let len = dims[0] * range.len();
            let (loss, grad, status) = (
                placed(ctx, &[0; 4], place),
                placed(ctx, &vec![0; 4 * len], place),
                placed(ctx, &[0; 16], place),
            );
            let b = CrossEntropyBuffers::new(
                region(shard, place),
                TargetBuffer::ClassI32(region(&targets, place)),
                region(&loss, place),
                Some(region(&grad, place)),
                region(&status, place),
            );
            ctx.record_vocab_finish(
                &mut encoder,
                &dims,
                *range,
                &opts,
                &xent::VocabFinishBuffers {
                    shard: b,
                    merged: region(&merged, place),
                },
            )
            .unwrap();
            outputs.push((loss, grad, len));
        }
        ctx.queue().submit([encoder.finish()]);
        for (range, (loss, grad, len)) in ranges.iter().zip(&outputs) {
            let want: &[u8] = bytemuck::cast_slice(&host.loss);
            assert!(
                read_region(ctx, loss, place, 4) == want,
                "{place:?}: loss differs"
            );
            let want = columns(range, &host_grad);
            assert!(
                read_region(ctx, grad, place, 4 * len) == bytemuck::cast_slice::<f32, u8>(&want),
                "{place:?} {range:?}: gradient differs from the host API's"
            );
        }
    }
}
