//! Devices at and below xent's required limits: every op runs on a device
//! with exactly the required limits (and on one with WebGPU's defaults), each
//! held to the CPU by verify mode; a device below them is refused, naming the
//! limit.

use crate::common::Rng;
use xent::{cpu, CrossEntropyOptions, Tolerance};

#[test]
fn every_op_runs_on_a_device_with_the_required_limits() {
    // xent::required_limits() (downlevel defaults with 8 storage buffers per
    // stage) and WebGPU's defaults, no optional features: every entry point
    // of a variant with every option on is built on first use, so one call
    // per strategy and op checks them all; verify mode holds each to the CPU.
    for limits in [xent::required_limits(), wgpu::Limits::default()] {
        let Some(ctx) = crate::common::limits_ctx(limits) else {
            return;
        };
        cross_entropy_on_every_strategy(&ctx);
        other_ops(&ctx);
    }
}

#[test]
fn a_device_below_the_required_limits_is_refused_naming_the_limit() {
    let Some(ctx) = crate::common::ctx() else {
        return;
    };
    let adapter_limits = ctx.device().limits();
    let wanted = wgpu::Limits::downlevel_defaults();
    assert!(
        wanted.check_limits(&adapter_limits),
        "the adapter offers less"
    );
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&Default::default())).unwrap();
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_limits: wanted,
        ..Default::default()
    }))
    .unwrap();
    match xent::Context::new(device, queue) {
        Err(xent::Error::DeviceLimit {
            limit: "max_storage_buffers_per_shader_stage",
            needed: 8,
            actual: 4,
        }) => {}
        Err(e) => panic!("expected Error::DeviceLimit, got {e}"),
        Ok(_) => panic!("a downlevel device was accepted"),
    }
}

fn cross_entropy_on_every_strategy(ctx: &xent::Context) {
    let tol = Tolerance::default();
    for dims in [
        vec![6usize, 5],
        vec![6, 8],
        vec![4, 132],
        vec![4, 130],
        vec![3, 20_000],
        vec![2, 3, 4, 4],
        vec![2, 3, 3, 3],
    ] {
        let layout = xent::Layout::from_dims(&dims).unwrap();
        let mut rng = Rng(7);
        let x: Vec<f32> = (0..layout.len()).map(|_| rng.uniform(-5.0, 5.0)).collect();
        let t: Vec<i64> = (0..layout.rows())
            .map(|_| rng.below(layout.classes) as i64)
            .collect();
        let w: Vec<f32> = (0..layout.classes).map(|_| rng.uniform(0.5, 2.0)).collect();
        let sw: Vec<f32> = (0..layout.rows()).map(|_| rng.uniform(0.5, 2.0)).collect();
        let weights = xent::Weights {
            class: Some(&w[..]),
            sample: Some(&sw[..]),
        };
        let opts = CrossEntropyOptions {
            label_smoothing: 0.1,
            z_loss: 1e-3,
            ..Default::default()
        };
        let returns = xent::Returns::ROWS;
        let targets = xent::Targets::I64(&t);
        let got = ctx
            .cross_entropy_with(&x, &dims, targets, weights, &opts, &returns)
            .unwrap_or_else(|e| panic!("{dims:?}: {e}"));
        let want = cpu::cross_entropy_with(&x, &dims, targets, weights, &opts).unwrap();
        crate::common::assert_matches_cpu(&format!("{dims:?}"), &got, &want);
        assert_eq!(got.correct, want.correct, "{dims:?}");
        // The vocabulary split's kernels (partial, merge, finish).
        let split = ctx
            .cross_entropy_sharded(&x, &dims, targets, weights, &opts, &returns, 3)
            .unwrap_or_else(|e| panic!("{dims:?}, 3 shards: {e}"));
        crate::common::assert_matches_cpu(&format!("{dims:?}, 3 shards"), &split, &want);
        let y = ctx
            .softmax(&x, &dims, &xent::SoftmaxOptions::default())
            .unwrap();
        tol.compare("softmax", &y, &cpu::softmax(&x, &dims).unwrap())
            .unwrap_or_else(|e| panic!("{dims:?}: {e}"));
    }
}

/// Softmax's backward, the elementwise losses with every weight, the
/// products and the fused linear op, each checked by verify mode.
fn other_ops(ctx: &xent::Context) {
    let mut rng = Rng(9);
    let dims = [5usize, 130];
    let x: Vec<f32> = (0..650).map(|_| rng.uniform(-3.0, 3.0)).collect();
    let y: Vec<f32> = (0..650).map(|_| rng.uniform(0.0, 1.0)).collect();
    let sm = ctx
        .softmax(&x, &dims, &xent::SoftmaxOptions::default())
        .unwrap();
    ctx.softmax_backward(
        &x,
        &y,
        &dims,
        &xent::SoftmaxOptions {
            kind: xent::SoftmaxKind::LogSoftmax,
        },
    )
    .unwrap();
    ctx.softmax_backward(&sm, &y, &dims, &xent::SoftmaxOptions::default())
        .unwrap();
    let (w, pw): (Vec<f32>, Vec<f32>) = (
        (0..650).map(|i| 0.5 + (i % 3) as f32).collect(),
        vec![2.0; 130],
    );
    let weights = xent::LossWeights {
        weight: Some(&w),
        pos_weight: Some(&pw),
    };
    let opts = xent::ElementwiseOptions::new(xent::ElementwiseLoss::Mse);
    let loss = xent::ElementwiseLoss::BceWithLogits;
    ctx.elementwise_loss(
        &x,
        &y,
        &dims,
        weights,
        &xent::ElementwiseOptions { loss, ..opts },
        &Default::default(),
    )
    .unwrap();
    let loss = xent::ElementwiseLoss::Bce;
    ctx.elementwise_loss(
        &y,
        &y,
        &dims,
        xent::LossWeights::default(),
        &xent::ElementwiseOptions { loss, ..opts },
        &Default::default(),
    )
    .unwrap();
    let (m, k, n) = (9, 20, 13);
    let a: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let b: Vec<f32> = (0..k * n).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let got = ctx
        .matmul(&a, &b, &xent::MatmulDims { m, k, n }, &Default::default())
        .unwrap();
    Tolerance::default()
        .check(
            "matmul",
            &got,
            &cpu::matmul(&a, &b, &xent::MatmulDims { m, k, n }, &Default::default()).unwrap(),
        )
        .unwrap();
    let dims = xent::LinearDims { n: m, h: k, v: n };
    let targets: Vec<i64> = (0..m).map(|i| (i % n) as i64).collect();
    let bias = vec![0.25f32; n];
    ctx.linear_cross_entropy(
        &a,
        &b,
        Some(&bias),
        &targets,
        None,
        &dims,
        &Default::default(),
        &Default::default(),
    )
    .unwrap();
}
