//! The elementwise losses on the GPU against their CPU twin: property tests
//! over shapes around the kernels' switch points (the 4 096-element blocks,
//! vec4 or scalar, chunks past a binding), every loss, weight layout and
//! reduction; the recording API's status buffer, checks and back-to-back
//! calls; bit-reproducibility; and verify mode catching a corrupted result.

mod common;

use common::{ctx, read_f32, small_binding_ctx, Rng};
use proptest::prelude::*;
use wgpu::util::DeviceExt;
use xent::{
    cpu, Context, ElementwiseBuffers, ElementwiseLoss, ElementwiseOptions, ElementwiseStatus,
    Error, LossWeights, Reduction, Tolerance, WeightShape,
};

/// Inputs for `loss`: probabilities (with exact 0 and 1) for bce, logits
/// with some large ones for bce-with-logits, values around 0 for the rest;
/// targets in [0, 1] for the binary losses (exact 0 and 1 among them).
fn data(loss: ElementwiseLoss, n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut r = Rng(seed);
    let binary_target = |r: &mut Rng| match r.below(4) {
        0 => 0.0,
        1 => 1.0,
        _ => r.uniform(0.0, 1.0),
    };
    let mut x = Vec::with_capacity(n);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let (a, b) = match loss {
            ElementwiseLoss::Bce => {
                let p = match r.below(16) {
                    0 => 0.0,
                    1 => 1.0,
                    _ => r.uniform(0.0, 1.0),
                };
                (p, binary_target(&mut r))
            }
            ElementwiseLoss::BceWithLogits => {
                let scale = if r.below(8) == 0 { 60.0 } else { 6.0 };
                (r.uniform(-scale, scale), binary_target(&mut r))
            }
            _ => {
                let x = r.uniform(-3.0, 3.0);
                // Some elements equal their target (L1's zero gradient).
                let y = if r.below(8) == 0 {
                    x
                } else {
                    r.uniform(-3.0, 3.0)
                };
                (x, y)
            }
        };
        x.push(a);
        y.push(b);
    }
    (x, y)
}

fn weights(n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng(seed);
    (0..n).map(|_| r.uniform(0.0, 2.0)).collect()
}

/// Every loss, with parameters at and around their special values.
fn losses() -> impl Strategy<Value = ElementwiseLoss> {
    prop_oneof![
        Just(ElementwiseLoss::BceWithLogits),
        Just(ElementwiseLoss::Bce),
        Just(ElementwiseLoss::Mse),
        Just(ElementwiseLoss::L1),
        prop_oneof![Just(0.0f64), Just(0.5), Just(1.0), Just(2.5)]
            .prop_map(|beta| ElementwiseLoss::SmoothL1 { beta }),
        prop_oneof![Just(0.25f64), Just(1.0), Just(2.0)]
            .prop_map(|delta| ElementwiseLoss::Huber { delta }),
    ]
}

/// Shapes of 0 to 3 axes whose element counts sit around the block size
/// (4 096) and its multiples, odd and multiple-of-4 counts alike.
fn shapes() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        Just(vec![]),
        (0usize..12).prop_map(|n| vec![n]),
        (1usize..6, 1usize..9).prop_map(|(a, b)| vec![a, b]),
        (4094usize..=4098).prop_map(|n| vec![n]),
        (1usize..4, 4095usize..=4097).prop_map(|(a, b)| vec![a, b]),
        (1usize..3, 1usize..4, 1usize..300).prop_map(|(a, b, c)| vec![a, b, c]),
        (8190usize..=8194).prop_map(|n| vec![2, n / 2]),
    ]
}

fn reductions() -> impl Strategy<Value = Reduction> {
    prop_oneof![
        Just(Reduction::None),
        Just(Reduction::Mean),
        Just(Reduction::Sum)
    ]
}

/// The GPU result and the CPU's under the one tolerance.
fn check(
    ctx: &Context,
    loss: ElementwiseLoss,
    dims: &[usize],
    weight: Option<WeightShape>,
    pos_weight: bool,
    reduction: Reduction,
    seed: u64,
) -> Result<(), String> {
    let n: usize = dims.iter().product();
    let last = dims.last().copied().unwrap_or(1);
    let (x, y) = data(loss, n, seed);
    let w = weight.map(|s| weights(if s == WeightShape::Full { n } else { last }, seed + 1));
    let pw = pos_weight.then(|| weights(last, seed + 2));
    let lw = LossWeights {
        weight: w.as_deref(),
        pos_weight: pw.as_deref(),
    };
    let opts = ElementwiseOptions {
        reduction,
        ..ElementwiseOptions::new(ElementwiseLoss::Mse)
    };
    let what = format!("{loss:?} {dims:?} weight {weight:?} pos_weight {pos_weight} {reduction:?}");
    let gpu = ctx
        .elementwise_loss(
            &x,
            &y,
            dims,
            lw,
            &xent::ElementwiseOptions { loss, ..opts },
            &Default::default(),
        )
        .map_err(|e| format!("{what}: gpu: {e}"))?;
    let want = cpu::elementwise_loss(&x, &y, dims, lw, &xent::ElementwiseOptions { loss, ..opts })
        .map_err(|e| format!("{what}: cpu: {e}"))?;
    Tolerance::default()
        .compare_elementwise(&gpu, &want, &Tolerance::default())
        .map_err(|e| format!("{what}: {e}"))?;
    if gpu.loss_dims != want.loss_dims {
        return Err(format!(
            "{what}: loss dims {:?} vs {:?}",
            gpu.loss_dims, want.loss_dims
        ));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_loss_matches_the_cpu_at_the_block_boundaries(
        loss in losses(),
        dims in shapes(),
        weight in prop_oneof![Just(None), Just(Some(WeightShape::Full)), Just(Some(WeightShape::LastAxis))],
        pos_weight in any::<bool>(),
        reduction in reductions(),
        seed in any::<u64>(),
    ) {
        let Some(ctx) = ctx() else { return Ok(()) };
        let weight = if loss.takes_weight() { weight } else { None };
        let pos_weight = pos_weight && loss.takes_pos_weight();
        check(ctx, loss, &dims, weight, pos_weight, reduction, seed).map_err(TestCaseError::fail)?;
    }
}

#[test]
fn tensors_past_a_binding_are_chunked() {
    // 64 KiB bindings: 16 384 elements per chunk. Odd and vec4 counts, with
    // weights of both layouts (the last axis's phase moves between chunks).
    let Some(ctx) = small_binding_ctx(64 * 1024) else {
        return;
    };
    for dims in [[10usize, 5000], [7, 7001]] {
        for (loss, weight, pos_weight) in [
            (
                ElementwiseLoss::BceWithLogits,
                Some(WeightShape::LastAxis),
                true,
            ),
            (ElementwiseLoss::Bce, Some(WeightShape::Full), false),
            (ElementwiseLoss::Huber { delta: 0.5 }, None, false),
        ] {
            for reduction in [Reduction::None, Reduction::Mean] {
                check(&ctx, loss, &dims, weight, pos_weight, reduction, 5).unwrap();
            }
        }
    }
    // The first bad bce input lies in the third chunk.
    let n = 50_000;
    let mut x = vec![0.5f32; n];
    x[40_000] = 1.5;
    x[45_000] = -0.5;
    let err = ctx
        .elementwise_loss(
            &x,
            &vec![0.0; n],
            &[n],
            Default::default(),
            &xent::ElementwiseOptions::new(ElementwiseLoss::Bce),
            &Default::default(),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::InputOutOfRange { what: "input", ref position, value, count: 2 } if position == &[40_000] && value == 1.5),
        "{err}"
    );
}

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

#[test]
fn bad_calls_are_the_same_typed_error_on_both_paths() {
    let Some(ctx) = ctx() else { return };
    let x = [0.5f32; 6];
    let w3 = [1.0f32; 3];
    let w4 = [1.0f32; 4];
    let cases: Vec<(ElementwiseLoss, &[f32], LossWeights<'_>, &str)> = vec![
        (
            ElementwiseLoss::SmoothL1 { beta: -1.0 },
            &x,
            LossWeights::default(),
            "beta",
        ),
        (
            ElementwiseLoss::SmoothL1 { beta: f64::NAN },
            &x,
            LossWeights::default(),
            "beta",
        ),
        (
            ElementwiseLoss::Huber { delta: 0.0 },
            &x,
            LossWeights::default(),
            "delta",
        ),
        (
            ElementwiseLoss::Mse,
            &x,
            LossWeights {
                weight: Some(&w3),
                pos_weight: None,
            },
            "weight",
        ),
        (
            ElementwiseLoss::Bce,
            &x,
            LossWeights {
                weight: None,
                pos_weight: Some(&w3),
            },
            "pos_weight",
        ),
        (
            ElementwiseLoss::Bce,
            &x,
            LossWeights {
                weight: Some(&w4),
                pos_weight: None,
            },
            "weight has 4",
        ),
        (
            ElementwiseLoss::BceWithLogits,
            &x,
            LossWeights {
                weight: None,
                pos_weight: Some(&w4),
            },
            "pos_weight has 4",
        ),
        (
            ElementwiseLoss::Mse,
            &x[..5],
            LossWeights::default(),
            "input has 5",
        ),
    ];
    for (loss, input, lw, names) in cases {
        let opts = ElementwiseOptions::new(ElementwiseLoss::Mse);
        let gpu = ctx
            .elementwise_loss(
                input,
                &[0.0; 6],
                &[2, 3],
                lw,
                &xent::ElementwiseOptions { loss, ..opts },
                &Default::default(),
            )
            .unwrap_err();
        let cpu = cpu::elementwise_loss(
            input,
            &[0.0; 6],
            &[2, 3],
            lw,
            &xent::ElementwiseOptions { loss, ..opts },
        )
        .unwrap_err();
        assert_eq!(gpu.to_string(), cpu.to_string());
        assert!(gpu.to_string().contains(names), "{names}: {gpu}");
    }
    // A bce target outside [0, 1] is an error too, as in PyTorch; where both
    // of an element's values are bad, its input is named.
    for (x5, y, what, value, count) in [
        (0.5f32, [0.0f32, 1.0, 1.5, -0.5, 0.0, 1.0], "target", 1.5, 2),
        (2.0, [0.0, 1.0, 0.5, 0.5, 0.0, 1.0], "input", 2.0, 1),
        (
            0.5,
            [0.0, 1.0, 0.5, 0.5, 0.0, f32::NAN],
            "target",
            f64::NAN,
            1,
        ),
    ] {
        let x = [0.25f32, 0.5, 0.75, 1.0, 0.0, x5];
        let mut y = y;
        if what == "input" {
            y[5] = -3.0;
        }
        let opts = ElementwiseOptions::new(ElementwiseLoss::Mse);
        let gpu = ctx
            .elementwise_loss(
                &x,
                &y,
                &[2, 3],
                Default::default(),
                &xent::ElementwiseOptions {
                    loss: ElementwiseLoss::Bce,
                    ..opts
                },
                &Default::default(),
            )
            .unwrap_err();
        let cpu = cpu::elementwise_loss(
            &x,
            &y,
            &[2, 3],
            Default::default(),
            &xent::ElementwiseOptions {
                loss: ElementwiseLoss::Bce,
                ..opts
            },
        )
        .unwrap_err();
        assert_eq!(gpu.to_string(), cpu.to_string());
        assert!(
            matches!(gpu, Error::InputOutOfRange { what: w, value: v, count: c, .. }
                if w == what && c == count && (v == value || (v.is_nan() && value.is_nan()))),
            "{gpu}"
        );
    }
    // NaN and values just outside [0, 1] are bad bce inputs; -0 and 1 are not.
    for (bad, at) in [(f32::NAN, 3), (1.000_000_1, 0), (-1e-45, 5)] {
        let mut x = [0.5f32, -0.0, 1.0, 0.0, 0.25, 0.75];
        x[at] = bad;
        let gpu = ctx
            .elementwise_loss(
                &x,
                &[1.0; 6],
                &[2, 3],
                Default::default(),
                &xent::ElementwiseOptions::new(ElementwiseLoss::Bce),
                &Default::default(),
            )
            .unwrap_err();
        let cpu = cpu::elementwise_loss(
            &x,
            &[1.0; 6],
            &[2, 3],
            Default::default(),
            &xent::ElementwiseOptions::new(ElementwiseLoss::Bce),
        )
        .unwrap_err();
        assert_eq!(gpu.to_string(), cpu.to_string());
        assert!(
            matches!(gpu, Error::InputOutOfRange { what: "input", ref position, count: 1, .. } if position == &[at / 3, at % 3]),
            "{gpu}"
        );
    }
}

fn storage(ctx: &Context, v: &[f32]) -> wgpu::Buffer {
    ctx.device()
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: bytemuck::cast_slice(v),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        })
}

#[test]
fn the_recording_api_reports_bce_inputs_in_the_status_buffer() {
    let Some(ctx) = ctx() else { return };
    let x = storage(ctx, &[0.5, 2.0, 0.25, -1.0]);
    let y = storage(ctx, &[1.0; 4]);
    let loss = storage(ctx, &[0.0]);
    let status = storage(ctx, &[0.0; 4]);
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    let buffers = ElementwiseBuffers::new(
        x.slice(..),
        y.slice(..),
        loss.slice(..),
        None,
        status.slice(..),
    );
    ctx.record_elementwise_loss(
        &mut enc,
        &[2, 2],
        &xent::ElementwiseOptions {
            reduction: Reduction::Sum,
            ..xent::ElementwiseOptions::new(ElementwiseLoss::Bce)
        },
        &buffers,
    )
    .unwrap();
    ctx.queue().submit([enc.finish()]);
    // The bad elements' losses are NaN, not a plausible number.
    assert!(read_f32(ctx, &loss)[0].is_nan());
    let s: ElementwiseStatus = ctx.read_status(status.slice(..)).unwrap();
    assert!(!s.in_target);
    let err = s.check(&[2, 2]).unwrap_err();
    assert!(
        matches!(err, Error::InputOutOfRange { what: "input", ref position, value, count: 2 } if position == &[0, 1] && value == 2.0),
        "{err}"
    );
    // A bad target is reported as the target's.
    let y_bad = storage(ctx, &[1.0, 1.0, 0.0, 3.0]);
    let x_ok = storage(ctx, &[0.5; 4]);
    let buffers = ElementwiseBuffers::new(
        x_ok.slice(..),
        y_bad.slice(..),
        loss.slice(..),
        None,
        status.slice(..),
    );
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    ctx.record_elementwise_loss(
        &mut enc,
        &[4],
        &xent::ElementwiseOptions {
            reduction: Reduction::Mean,
            ..xent::ElementwiseOptions::new(ElementwiseLoss::Bce)
        },
        &buffers,
    )
    .unwrap();
    ctx.queue().submit([enc.finish()]);
    let s: ElementwiseStatus = ctx.read_status(status.slice(..)).unwrap();
    assert!(s.in_target && s.first_position == 3, "{s:?}");
    let err = s.check(&[4]).unwrap_err();
    assert!(
        matches!(err, Error::InputOutOfRange { what: "target", value, count: 1, .. } if value == 3.0),
        "{err}"
    );
    // Every loss writes the status: an mse call over the bad call's status,
    // with every reduction, leaves it clear.
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
        let mut enc = ctx.device().create_command_encoder(&Default::default());
        ctx.record_elementwise_loss(&mut enc, &[4], &opts, &fine)
            .unwrap();
        ctx.queue().submit([enc.finish()]);
        let s: ElementwiseStatus = ctx.read_status(status.slice(..)).unwrap();
        assert_eq!(s, ElementwiseStatus::default(), "{reduction:?}");
    }
    // A written buffer in two roles is refused.
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
fn verify_mode_catches_a_corrupted_gradient() {
    // The mutation check: the same call passes clean and fails corrupted.
    let Some(clean) = common::own_ctx() else {
        return;
    };
    let (x, y) = data(ElementwiseLoss::BceWithLogits, 600, 3);
    let call = |ctx: &Context| {
        ctx.elementwise_loss(
            &x,
            &y,
            &[6, 100],
            Default::default(),
            &xent::ElementwiseOptions::new(ElementwiseLoss::BceWithLogits),
            &Default::default(),
        )
    };
    call(&clean.with_verify(Tolerance::default())).unwrap();
    for fault in [xent::Fault::ZeroTail, xent::Fault::SwapClasses] {
        let Some(ctx) = common::own_ctx() else { return };
        let err = call(&ctx.with_verify(Tolerance::default()).with_fault(fault)).unwrap_err();
        assert!(
            matches!(err, Error::Mismatch { what: "grad", .. }),
            "{fault:?}: {err}"
        );
    }
}

#[test]
fn an_empty_input_has_a_nan_mean_and_a_zero_sum() {
    let Some(ctx) = ctx() else { return };
    for loss in ElementwiseLoss::ALL {
        let mean = ctx
            .elementwise_loss::<f32>(
                &[],
                &[],
                &[0, 3],
                Default::default(),
                &xent::ElementwiseOptions::new(loss),
                &Default::default(),
            )
            .unwrap();
        assert!(
            mean.loss[0].is_nan() && mean.grad == Some(vec![]),
            "{loss:?}: {mean:?}"
        );
        let opts = ElementwiseOptions {
            reduction: Reduction::Sum,
            ..ElementwiseOptions::new(ElementwiseLoss::Mse)
        };
        let sum = ctx
            .elementwise_loss::<f32>(
                &[],
                &[],
                &[0],
                Default::default(),
                &xent::ElementwiseOptions { loss, ..opts },
                &Default::default(),
            )
            .unwrap();
        assert_eq!(sum.loss, vec![0.0], "{loss:?}");
    }
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

#[test]
fn the_tolerance_of_a_difference_scales_with_the_difference() {
    // x and y are exact f32 values and the GPU's x − y is rounded once, so
    // a difference of large values is as exact as any other number: wrong
    // values near it must fail (they passed when the magnitude was |x| + |y|).
    let sum = ElementwiseOptions {
        reduction: Reduction::Sum,
        ..ElementwiseOptions::new(ElementwiseLoss::Mse)
    };
    let cases: [(ElementwiseLoss, f32, f32, f32, f32); 5] = [
        (ElementwiseLoss::Mse, 1000.0, 999.0, 300.0, 2.0),
        (ElementwiseLoss::Mse, 1000.0, 1000.0, 399.0, 0.39),
        (ElementwiseLoss::L1, 1000.0, 999.0, 1.19, 1.0),
        (
            ElementwiseLoss::Huber { delta: 1.0 },
            1000.0,
            999.5,
            0.2249,
            0.5,
        ),
        (ElementwiseLoss::Bce, 0.999, 0.998, 0.0, 1.2),
    ];
    for (loss, x, y, bad_loss, bad_grad) in cases {
        let want = cpu::elementwise_loss(
            &[x],
            &[y],
            &[1],
            Default::default(),
            &xent::ElementwiseOptions { loss, ..sum },
        )
        .unwrap();
        let right = xent::ElementwiseOutput {
            loss: vec![want.loss[0] as f32],
            loss_dims: vec![],
            grad: Some(vec![want.grad.as_ref().unwrap()[0] as f32]),
            magnitude: None,
        };
        let tol = Tolerance::default();
        tol.compare_elementwise(&right, &want, &tol).unwrap();
        let wrong_loss = xent::ElementwiseOutput {
            loss: vec![bad_loss],
            ..right.clone()
        };
        let wrong_grad = xent::ElementwiseOutput {
            grad: Some(vec![bad_grad]),
            ..right.clone()
        };
        if loss != ElementwiseLoss::Bce {
            assert!(
                tol.compare_elementwise(&wrong_loss, &want, &tol).is_err(),
                "{loss:?} loss {bad_loss}"
            );
        }
        if bad_grad != right.grad.as_ref().unwrap()[0] {
            assert!(
                tol.compare_elementwise(&wrong_grad, &want, &tol).is_err(),
                "{loss:?} grad {bad_grad}"
            );
        }
    }
}

#[test]
fn nan_and_infinite_differences_give_pytorchs_gradients() {
    // PyTorch 2.15, float32, one element each, reduction sum:
    // x = [nan, inf, 1, 0], y = [0, inf, nan, 0]: l1 and smooth_l1 with
    // beta 0 give gradients [0, 0, 0, 0]; smooth_l1 with beta 1, huber and
    // mse [nan, nan, nan, 0]; every loss [nan, nan, nan, 0].
    let Some(ctx) = ctx() else { return };
    let x = [f32::NAN, f32::INFINITY, 1.0, 0.0];
    let y = [0.0, f32::INFINITY, f32::NAN, 0.0];
    let opts = ElementwiseOptions {
        reduction: Reduction::None,
        ..ElementwiseOptions::new(ElementwiseLoss::Mse)
    };
    for (loss, nan_grad) in [
        (ElementwiseLoss::L1, false),
        (ElementwiseLoss::SmoothL1 { beta: 0.0 }, false),
        (ElementwiseLoss::SmoothL1 { beta: 1.0 }, true),
        (ElementwiseLoss::Huber { delta: 1.0 }, true),
        (ElementwiseLoss::Mse, true),
    ] {
        let gpu = ctx
            .elementwise_loss(
                &x,
                &y,
                &[4],
                Default::default(),
                &xent::ElementwiseOptions { loss, ..opts },
                &Default::default(),
            )
            .unwrap();
        let cpu = cpu::elementwise_loss(
            &x,
            &y,
            &[4],
            Default::default(),
            &xent::ElementwiseOptions { loss, ..opts },
        )
        .unwrap();
        let g = gpu.grad.unwrap();
        let c = cpu.grad.unwrap();
        for i in 0..3 {
            assert!(
                gpu.loss[i].is_nan() && cpu.loss[i].is_nan(),
                "{loss:?} loss {i}"
            );
            assert_eq!(g[i].is_nan(), nan_grad, "{loss:?} gpu grad {i}: {}", g[i]);
            assert_eq!(c[i].is_nan(), nan_grad, "{loss:?} cpu grad {i}: {}", c[i]);
            if !nan_grad {
                assert!(g[i] == 0.0 && c[i] == 0.0, "{loss:?} grad {i}");
            }
        }
        assert!(gpu.loss[3] == 0.0 && g[3] == 0.0, "{loss:?}");
    }
}

#[test]
fn subnormal_differences_keep_their_sign() {
    // A device that flushes subnormals would see 1e-40 − 2e-40 as 0; the
    // sign comes from the values' bits.
    let Some(ctx) = ctx() else { return };
    let (x, y) = (
        [1e-40f32, 2e-40, -1e-45, 0.0],
        [2e-40f32, 1e-40, 1e-45, -0.0],
    );
    let opts = ElementwiseOptions {
        reduction: Reduction::Sum,
        ..ElementwiseOptions::new(ElementwiseLoss::Mse)
    };
    let out = ctx
        .elementwise_loss(
            &x,
            &y,
            &[4],
            Default::default(),
            &xent::ElementwiseOptions {
                loss: ElementwiseLoss::L1,
                ..opts
            },
            &Default::default(),
        )
        .unwrap();
    assert_eq!(out.grad, Some(vec![-1.0, 1.0, -1.0, 0.0]));
}

#[test]
fn past_4096_blocks_the_blocks_are_folded_first() {
    // 4 097 blocks of 4 096 elements: two folds, then the reduce over them.
    let Some(ctx) = ctx() else { return };
    let dims = [4097, 4096];
    for (loss, reduction) in [
        (ElementwiseLoss::BceWithLogits, Reduction::Mean),
        (ElementwiseLoss::Bce, Reduction::Sum),
    ] {
        check(ctx, loss, &dims, None, false, reduction, 9).unwrap();
    }
    // The first bad bce input in the second fold's blocks.
    let n = 4097 * 4096;
    let mut x = vec![0.5f32; n];
    x[n - 3] = 7.0;
    let err = ctx
        .elementwise_loss(
            &x,
            &vec![0.0; n],
            &dims,
            Default::default(),
            &xent::ElementwiseOptions::new(ElementwiseLoss::Bce),
            &Default::default(),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::InputOutOfRange { what: "input", ref position, value, count: 1 } if position == &[4096, 4093] && value == 7.0),
        "{err}"
    );
}
