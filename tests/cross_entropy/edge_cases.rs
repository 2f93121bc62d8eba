//! PyTorch's answers on edge cases where xent once differed: values printed
//! by torch 2.15 (`F.cross_entropy`, `F.nll_loss` of `torch.log(p)` for
//! probabilities), checked on the GPU (with verify mode on) and on the CPU.

use xent::{cpu, CrossEntropyOptions, EmptyMean, Error, InputKind, Reduction, Targets, Weights};

use crate::common::verified;

/// Element-wise: NaN where `want` is NaN, the same infinity, or within 1e-5 relative.
fn assert_torch(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= 1e-5 * w.abs().max(1e-30)
        };
        assert!(ok, "{what}[{i}]: xent {g}, torch {w}");
    }
}

fn both(
    x: &[f32],
    dims: &[usize],
    targets: Targets<'_, f32>,
    weights: Option<&[f32]>,
    opts: &CrossEntropyOptions,
) -> Vec<(&'static str, Vec<f32>, Vec<f32>)> {
    let weights = Weights {
        class: weights,
        sample: None,
    };
    let mut out = Vec::new();
    let c = cpu::cross_entropy_with(x, dims, targets, weights, opts).unwrap();
    let f32s = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<f32>>();
    out.push(("cpu", f32s(&c.loss), f32s(c.grad.as_deref().unwrap())));
    if let Some(ctx) = verified() {
        let g = ctx
            .cross_entropy_with(x, dims, targets, weights, opts, &Default::default())
            .unwrap();
        out.push(("gpu", g.loss, g.grad.unwrap()));
    }
    out
}

#[test]
fn a_zero_denominator_with_smoothing_is_nan_as_in_pytorch() {
    // F.cross_entropy([[0, 0]], [0], weight=[0, 1], label_smoothing=0.5):
    // loss nan, grad [[nan, nan]]. xent gave +inf and [+inf, -inf].
    let opts = CrossEntropyOptions {
        label_smoothing: 0.5,
        ..Default::default()
    };
    for (path, loss, grad) in both(
        &[0.0, 0.0],
        &[1, 2],
        Targets::I64(&[0]),
        Some(&[0.0, 1.0]),
        &opts,
    ) {
        assert_torch(&format!("{path} loss"), &loss, &[f32::NAN]);
        assert_torch(&format!("{path} grad"), &grad, &[f32::NAN, f32::NAN]);
    }
    // F.nll_loss([[-0.5, -1]], [0], weight=[0, 1]): loss nan, grad [[nan, 0]].
    let opts = CrossEntropyOptions {
        input: InputKind::LogProbs,
        ..Default::default()
    };
    for (path, loss, grad) in both(
        &[-0.5, -1.0],
        &[1, 2],
        Targets::I64(&[0]),
        Some(&[0.0, 1.0]),
        &opts,
    ) {
        assert_torch(&format!("{path} nll loss"), &loss, &[f32::NAN]);
        assert_torch(&format!("{path} nll grad"), &grad, &[f32::NAN, 0.0]);
    }
    // EmptyMean::Zero: loss 0, gradient 0, whatever the smoothing.
    let opts = CrossEntropyOptions {
        label_smoothing: 0.5,
        empty_mean: EmptyMean::Zero,
        ..Default::default()
    };
    for (path, loss, grad) in both(
        &[0.0, 0.0],
        &[1, 2],
        Targets::I64(&[0]),
        Some(&[0.0, 1.0]),
        &opts,
    ) {
        assert_torch(&format!("{path} zero loss"), &loss, &[0.0]);
        assert_torch(&format!("{path} zero grad"), &grad, &[0.0, 0.0]);
    }
}

#[test]
fn subnormal_probabilities_are_not_flushed() {
    // F.nll_loss(torch.log(p), [0]) for p = [[1e-40, 1]]: loss 92.10341,
    // grad [[-inf, 0]]. The GPU gave 88.02: its log took 1e-40 for another number.
    let opts = CrossEntropyOptions {
        input: InputKind::Probs,
        ..Default::default()
    };
    for (path, loss, grad) in both(&[1e-40, 1.0], &[1, 2], Targets::I64(&[0]), None, &opts) {
        assert_torch(&format!("{path} loss"), &loss, &[92.103_41]);
        assert_torch(&format!("{path} grad"), &grad, &[f32::NEG_INFINITY, 0.0]);
    }
    // torch: p = [[0, 1]], target 1: loss 0, grad [[nan, -1]] (0 / 0 in
    // log's backward); a negative subnormal is a negative probability: loss
    // nan and grad [[inf, 0]] at target 0, loss 0 and grad [[-0, -1]] at 1.
    for (x, t, want_loss, want_grad) in [
        ([0.0f32, 1.0], 1i64, 0.0f32, [f32::NAN, -1.0]),
        ([-1e-40, 1.0], 0, f32::NAN, [f32::INFINITY, 0.0]),
        ([-1e-40, 1.0], 1, 0.0, [-0.0, -1.0]),
    ] {
        for (path, loss, grad) in both(&x, &[1, 2], Targets::I64(&[t]), None, &opts) {
            assert_torch(&format!("{path} {x:?} loss"), &loss, &[want_loss]);
            assert_torch(&format!("{path} {x:?} grad"), &grad, &want_grad);
        }
    }
    // A finite quotient: -w / x = -1e-3 / 1e-39 = -1e36 (torch: the same).
    let sum = CrossEntropyOptions {
        input: InputKind::Probs,
        reduction: Reduction::Sum,
        ..Default::default()
    };
    for (path, loss, grad) in both(
        &[1e-39, 1.0],
        &[1, 2],
        Targets::I64(&[0]),
        Some(&[1e-3, 1.0]),
        &sum,
    ) {
        assert_torch(&format!("{path} weighted loss"), &loss, &[0.089_800_82]);
        assert_torch(&format!("{path} weighted grad"), &grad, &[-1e36, 0.0]);
    }
    // Every subnormal exponent: -ln x against the CPU (which takes them in f64).
    let x: Vec<f32> = (0..23)
        .flat_map(|k| [f32::from_bits(1 << k), f32::from_bits((1 << k) | 1), 1.0])
        .collect();
    let rows = x.len() / 3;
    let t = vec![0i64; rows];
    let opts = CrossEntropyOptions {
        input: InputKind::Probs,
        reduction: Reduction::None,
        ..Default::default()
    };
    if let Some(ctx) = verified() {
        ctx.cross_entropy_with(
            &x,
            &[rows, 3],
            Targets::I64(&t),
            Weights::none(),
            &opts,
            &Default::default(),
        )
        .unwrap();
    }
}

#[test]
fn a_gradient_past_f32_range_is_an_infinity_not_a_mismatch() {
    // Probabilities [[2e-38, 1]], target 1, weights [3, 0.1], smoothing 1,
    // mean: torch's gradient [[-inf, -0.5]], loss 1302.0763 (the smoothing
    // term of nll_loss(log p) written out). -7.5e38 in f64 is -inf in f32.
    let opts = CrossEntropyOptions {
        input: InputKind::Probs,
        label_smoothing: 1.0,
        ..Default::default()
    };
    for (path, loss, grad) in both(
        &[2e-38, 1.0],
        &[1, 2],
        Targets::I64(&[1]),
        Some(&[3.0, 0.1]),
        &opts,
    ) {
        assert_torch(&format!("{path} loss"), &loss, &[1302.0763]);
        assert_torch(&format!("{path} grad"), &grad, &[f32::NEG_INFINITY, -0.5]);
    }
}

#[test]
fn probability_targets_refuse_a_class_to_ignore() {
    // torch: "ignore_index is not supported for floating point target" for
    // any ignore_index >= 0; negative ones (the default -100) are accepted.
    let opts = CrossEntropyOptions {
        ignore_index: 0,
        ..Default::default()
    };
    let probs = [0.5f32, 0.5];
    let refused = |r: xent::Result<xent::CrossEntropyOutput<f32>>| {
        assert!(
            matches!(
                r,
                Err(Error::InvalidOption {
                    name: "ignore_index",
                    ..
                })
            ),
            "{r:?}"
        );
    };
    let c = cpu::cross_entropy_soft(&[0.0f32, 0.0], &[1, 2], &probs, None, &opts);
    assert!(
        matches!(
            c,
            Err(Error::InvalidOption {
                name: "ignore_index",
                ..
            })
        ),
        "{c:?}"
    );
    let Some(ctx) = crate::common::ctx() else {
        return;
    };
    refused(ctx.cross_entropy_soft(
        &[0.0, 0.0],
        &[1, 2],
        &probs,
        None,
        &opts,
        &Default::default(),
    ));
    recording_refuses_a_class_to_ignore(ctx, &opts);
    let fine = CrossEntropyOptions {
        ignore_index: -7,
        ..Default::default()
    };
    let out = ctx
        .cross_entropy_soft(
            &[0.0, 0.0],
            &[1, 2],
            &probs,
            None,
            &fine,
            &Default::default(),
        )
        .unwrap();
    assert_torch("loss", &out.loss, &[std::f32::consts::LN_2]);
}

/// The recording API refuses it too, before recording anything.
fn recording_refuses_a_class_to_ignore(ctx: &xent::Context, opts: &CrossEntropyOptions) {
    let dev = ctx.device();
    let buffer = |size: u64| {
        dev.create_buffer(&wgpu::BufferDescriptor {
            label: Some("test"),
            size,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        })
    };
    let (x, y, loss, status) = (buffer(16), buffer(16), buffer(4), buffer(16));
    let mut encoder = dev.create_command_encoder(&Default::default());
    let buffers = xent::CrossEntropyBuffers::new(
        x.slice(..),
        xent::TargetBuffer::Probs(y.slice(..)),
        loss.slice(..),
        None,
        status.slice(..),
    );
    let r = ctx.record_cross_entropy(&mut encoder, &[1, 2], opts, &buffers);
    assert!(
        matches!(
            r,
            Err(Error::InvalidOption {
                name: "ignore_index",
                ..
            })
        ),
        "{r:?}"
    );
}

#[test]
fn per_pixel_smoothing_over_huge_logits_keeps_f32_precision() {
    // One logit 1e30 per pixel, smoothing 1: the loss is the mean of
    // -logp over the classes, a sum of thousands of terms near 1e30. Summed
    // one by one in f32 it was off by 1.4e-4 relative for 12 785 classes;
    // the CPU's f64 is held to 1e-4 of it (rows_pixels4 and rows_narrow at
    // their largest C).
    let Some(ctx) = verified() else { return };
    for dims in [[1usize, 8065, 4], [1, 12785, 3], [2, 4000, 5]] {
        let layout = xent::Layout::from_dims(&dims).unwrap();
        let mut rng = crate::common::Rng(5);
        let mut x: Vec<f32> = (0..layout.len()).map(|_| rng.uniform(-1.0, 1.0)).collect();
        for row in 0..layout.rows() {
            x[layout.element(row, row % layout.classes)] = 1e30;
        }
        let t: Vec<i64> = (0..layout.rows())
            .map(|r| (r * 13 % layout.classes) as i64)
            .collect();
        for reduction in [Reduction::None, Reduction::Sum] {
            let opts = CrossEntropyOptions {
                label_smoothing: 1.0,
                reduction,
                ..Default::default()
            };
            ctx.cross_entropy(&x, &dims, &t, None, &opts, &Default::default())
                .unwrap_or_else(|e| panic!("{dims:?} {reduction:?}: {e}"));
        }
    }
}

#[test]
fn empty_batches_give_pytorchs_answers() {
    // F.cross_entropy(torch.zeros(0, 5), torch.zeros(0).long()): mean nan,
    // sum 0, none an empty tensor, an empty gradient; also with smoothing,
    // probability targets and an empty spatial axis ((2, 5, 0) gives nan).
    let nothing: [f32; 0] = [];
    for dims in [&[0usize, 5][..], &[2, 5, 0], &[0, 5, 3, 3]] {
        for (reduction, want) in [
            (Reduction::Mean, vec![f32::NAN]),
            (Reduction::Sum, vec![0.0]),
            (Reduction::None, vec![]),
        ] {
            for label_smoothing in [0.0, 0.3] {
                let opts = CrossEntropyOptions {
                    reduction,
                    label_smoothing,
                    ..Default::default()
                };
                let what = format!("{dims:?} {reduction:?} {label_smoothing}");
                let targets: [Targets<'_, f32>; 2] = [Targets::I64(&[]), Targets::Probs(&nothing)];
                for t in targets {
                    for (path, loss, grad) in both(&nothing, dims, t, None, &opts) {
                        assert_torch(&format!("{path} {what} loss"), &loss, &want);
                        assert!(grad.is_empty(), "{path} {what}");
                    }
                }
            }
        }
    }
    let Some(ctx) = verified() else { return };
    assert_eq!(
        ctx.softmax::<f32>(&[], &[0, 5], &xent::SoftmaxOptions::default())
            .unwrap(),
        Vec::<f32>::new()
    );
    assert_eq!(
        ctx.softmax_backward::<f32>(
            &[],
            &[],
            &[3, 5, 0],
            &xent::SoftmaxOptions {
                kind: xent::SoftmaxKind::LogSoftmax
            }
        )
        .unwrap(),
        Vec::<f32>::new()
    );
    // The class axis may not be empty (PyTorch: "Target 0 is out of bounds").
    assert!(matches!(
        ctx.cross_entropy::<f32, _>(
            &[],
            &[3, 0],
            &[0, 0, 0],
            None,
            &Default::default(),
            &Default::default()
        ),
        Err(Error::InvalidShape { .. })
    ));
}

#[test]
fn the_recording_api_takes_an_empty_batch_in_empty_buffers() {
    let Some(ctx) = crate::common::ctx() else {
        return;
    };
    let dev = ctx.device();
    let buffer = |size: u64| {
        dev.create_buffer(&wgpu::BufferDescriptor {
            label: Some("test"),
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    };
    let (logits, targets, grad) = (buffer(0), buffer(0), buffer(0));
    let (loss, status) = (buffer(4), buffer(xent::STATUS_SIZE));
    for (reduction, want) in [(Reduction::Mean, f32::NAN), (Reduction::Sum, 0.0)] {
        let opts = CrossEntropyOptions {
            reduction,
            ..Default::default()
        };
        // Garbage first: the call must write the loss and the status.
        ctx.queue().write_buffer(&loss, 0, &[0x5a; 4]);
        ctx.queue().write_buffer(&status, 0, &[0x5a; 16]);
        let mut encoder = dev.create_command_encoder(&Default::default());
        let buffers = xent::CrossEntropyBuffers::new(
            logits.slice(..),
            xent::TargetBuffer::ClassI32(targets.slice(..)),
            loss.slice(..),
            Some(grad.slice(..)),
            status.slice(..),
        );
        ctx.record_cross_entropy(&mut encoder, &[0, 7], &opts, &buffers)
            .unwrap();
        ctx.queue().submit([encoder.finish()]);
        assert_eq!(
            ctx.read_status::<xent::CrossEntropyStatus>(status.slice(..))
                .unwrap(),
            xent::CrossEntropyStatus::default()
        );
        let got = crate::common::read_f32(ctx, &loss);
        assert_torch(&format!("{reduction:?}"), &got, &[want]);
    }
    let mut encoder = dev.create_command_encoder(&Default::default());
    ctx.record_softmax(
        &mut encoder,
        &[0, 7],
        &xent::SoftmaxOptions {
            kind: xent::SoftmaxKind::Softmax,
        },
        &xent::SoftmaxBuffers {
            input: logits.slice(..),
            output: grad.slice(..),
            precision: xent::Precision::F32,
        },
    )
    .unwrap();
    ctx.queue().submit([encoder.finish()]);
}
