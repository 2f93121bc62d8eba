//! Property tests: every GPU op against its CPU twin on generated shapes and
//! options, under the one documented tolerance (`xent::Tolerance::default()`).

mod common;

use common::{ctx, Rng};
use proptest::prelude::*;
use xent::{cpu, CrossEntropyOptions, Reduction, Tolerance};

/// Generated data for one cross-entropy call.
#[derive(Debug, Clone)]
struct Problem {
    dims: Vec<usize>,
    logits: Vec<f32>,
    targets: Vec<i64>,
    weights: Option<Vec<f32>>,
    opts: CrossEntropyOptions,
}

/// Logits in [-20, 20), targets with `ignore_rate` of them set to
/// `ignore_index`, and, with `neg_inf`, some -inf logits away from the target.
fn problem(
    dims: Vec<usize>,
    seed: u64,
    weighted: bool,
    ignore_index: i64,
    ignore_rate: f32,
    neg_inf: bool,
    opts: CrossEntropyOptions,
) -> Problem {
    let layout = xent::Layout::from_dims(&dims).unwrap();
    let mut rng = Rng(seed);
    let mut logits: Vec<f32> = (0..layout.len())
        .map(|_| rng.uniform(-20.0, 20.0))
        .collect();
    let targets: Vec<i64> = (0..layout.rows())
        .map(|_| {
            if rng.uniform(0.0, 1.0) < ignore_rate {
                ignore_index
            } else {
                rng.below(layout.classes) as i64
            }
        })
        .collect();
    if neg_inf && layout.classes > 1 {
        for (row, &t) in targets.iter().enumerate() {
            let c = rng.below(layout.classes);
            if c as i64 != t && rng.uniform(0.0, 1.0) < 0.3 {
                logits[layout.element(row, c)] = f32::NEG_INFINITY;
            }
        }
    }
    let weights = weighted.then(|| (0..layout.classes).map(|_| rng.uniform(0.1, 3.0)).collect());
    Problem {
        dims,
        logits,
        targets,
        weights,
        opts: CrossEntropyOptions {
            ignore_index,
            ..opts
        },
    }
}

fn check(p: &Problem) -> Result<(), TestCaseError> {
    let Some(ctx) = ctx() else { return Ok(()) };
    let tol = Tolerance::default();
    let gpu = ctx
        .cross_entropy(
            &p.logits,
            &p.dims,
            &p.targets,
            p.weights.as_deref(),
            &p.opts,
            &Default::default(),
        )
        .map_err(|e| TestCaseError::fail(format!("gpu: {e}")))?;
    let cpu = cpu::cross_entropy(
        &p.logits,
        &p.dims,
        &p.targets,
        p.weights.as_deref(),
        &p.opts,
    )
    .map_err(|e| TestCaseError::fail(format!("cpu: {e}")))?;
    prop_assert_eq!(&gpu.loss_dims, &cpu.loss_dims);
    tol.check("loss", &gpu.loss, &cpu.loss_reference())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    tol.check(
        "grad",
        gpu.grad.as_deref().unwrap(),
        &cpu.grad_reference().unwrap(),
    )
    .map_err(|e| TestCaseError::fail(e.to_string()))?;
    Ok(())
}

fn reduction() -> impl Strategy<Value = Reduction> {
    prop_oneof![
        Just(Reduction::Mean),
        Just(Reduction::Sum),
        Just(Reduction::None)
    ]
}

fn smoothing() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0f64), Just(1.0f64), 0.0f64..1.0]
}

/// Class counts around the kernels' boundaries: 1, below/at/above the
/// workgroup size (64) and the wide-kernel threshold (128), and larger.
fn classes() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(1usize),
        2usize..10,
        60usize..70,
        126usize..131,
        131usize..700
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn cross_entropy_rows_match_cpu(
        n in prop_oneof![Just(1usize), 2usize..50, 60usize..200],
        c in classes(),
        seed in any::<u64>(),
        weighted in any::<bool>(),
        ignore_index in prop_oneof![Just(-100i64), Just(0i64), Just(255i64)],
        ignore_rate in prop_oneof![Just(0.0f32), Just(0.3f32), Just(1.0f32)],
        neg_inf in any::<bool>(),
        reduction in reduction(),
        label_smoothing in smoothing(),
    ) {
        let opts = CrossEntropyOptions { reduction, label_smoothing, ..Default::default() };
        check(&problem(vec![n, c], seed, weighted, ignore_index, ignore_rate, neg_inf && label_smoothing == 0.0, opts))?;
    }

    #[test]
    fn cross_entropy_unbatched_matches_cpu(
        c in classes(),
        seed in any::<u64>(),
        weighted in any::<bool>(),
        reduction in reduction(),
        label_smoothing in smoothing(),
    ) {
        let opts = CrossEntropyOptions { reduction, label_smoothing, ..Default::default() };
        check(&problem(vec![c], seed, weighted, -100, 0.0, false, opts))?;
    }

    #[test]
    fn softmax_and_log_softmax_match_cpu(
        n in prop_oneof![Just(1usize), 2usize..50, 60usize..200],
        c in classes(),
        seed in any::<u64>(),
    ) {
        let Some(ctx) = ctx() else { return Ok(()) };
        let dims = [n, c];
        let mut rng = Rng(seed);
        let x: Vec<f32> = (0..n * c).map(|_| rng.uniform(-30.0, 30.0)).collect();
        let tol = Tolerance::default();
        let p = ctx.softmax(&x, &dims, &xent::SoftmaxOptions::default()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        tol.compare("softmax", &p, &cpu::softmax(&x, &dims).unwrap()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let lp = ctx.softmax(&x, &dims, &xent::SoftmaxOptions { kind: xent::SoftmaxKind::LogSoftmax }).map_err(|e| TestCaseError::fail(e.to_string()))?;
        tol.check("log_softmax", &lp, &cpu::log_softmax_reference(&x, &dims).unwrap()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
}

#[test]
fn a_row_of_100_000_classes_matches_cpu() {
    for (reduction, label_smoothing) in [(Reduction::Mean, 0.0), (Reduction::None, 0.1)] {
        let opts = CrossEntropyOptions {
            reduction,
            label_smoothing,
            ..Default::default()
        };
        check(&problem(vec![3, 100_003], 7, true, -100, 0.0, false, opts)).unwrap();
    }
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(3);
    let x: Vec<f32> = (0..2 * 100_000).map(|_| rng.uniform(-30.0, 30.0)).collect();
    let lp = ctx
        .softmax(
            &x,
            &[2, 100_000],
            &xent::SoftmaxOptions {
                kind: xent::SoftmaxKind::LogSoftmax,
            },
        )
        .unwrap();
    Tolerance::default()
        .check(
            "log_softmax",
            &lp,
            &cpu::log_softmax_reference(&x, &[2, 100_000]).unwrap(),
        )
        .unwrap();
}

#[test]
fn many_short_rows_match_cpu() {
    // Sum, not mean: a mean over 10^5 rows scales each gradient element below
    // the absolute tolerance, where a wrong term would go unseen.
    let opts = CrossEntropyOptions {
        label_smoothing: 0.05,
        reduction: Reduction::Sum,
        ..Default::default()
    };
    check(&problem(vec![100_000, 3], 11, true, -100, 0.1, false, opts)).unwrap();
}

#[test]
fn more_rows_than_one_dispatch_dimension_holds() {
    // 65 537 rows of 128 classes: the wide kernel needs a workgroup per row,
    // one more than a dispatch's x dimension allows, so the grid spills into y.
    let opts = CrossEntropyOptions {
        reduction: Reduction::Sum,
        ..Default::default()
    };
    check(&problem(
        vec![65_537, 128],
        5,
        false,
        -100,
        0.0,
        false,
        opts,
    ))
    .unwrap();
}

#[test]
fn every_strategy_finds_its_rows_in_a_grid_that_spills_into_y() {
    // A device that dispatches at most 160 workgroups per grid dimension:
    // 10 300 rows (or pixel quads' rows) need 161 workgroups of an
    // invocation-per-row kernel and two per row of the split kernels, so
    // every strategy's grid spills into y and each kernel must find its row
    // from both coordinates.
    let Some(ctx) = common::small_grid_ctx(160) else {
        return;
    };
    let opts = CrossEntropyOptions {
        reduction: Reduction::Sum,
        label_smoothing: 0.1,
        ..Default::default()
    };
    let returns = xent::Returns {
        lse: true,
        correct: true,
        ..Default::default()
    };
    let mut served = 0;
    for dims in [vec![10_300usize, 8], vec![2_575, 9, 4]] {
        let layout = xent::Layout::from_dims(&dims).unwrap();
        let mut rng = Rng(17);
        let x: Vec<f32> = (0..layout.len()).map(|_| rng.uniform(-6.0, 6.0)).collect();
        let t: Vec<i64> = (0..layout.rows())
            .map(|_| rng.below(layout.classes) as i64)
            .collect();
        let targets = xent::Targets::I64(&t);
        let want =
            cpu::cross_entropy_with(&x, &dims, targets, xent::Weights::none(), &opts).unwrap();
        for strategy in xent::Strategy::FORCED {
            let forced = CrossEntropyOptions {
                strategy,
                ..opts.clone()
            };
            match ctx.cross_entropy_with(
                &x,
                &dims,
                targets,
                xent::Weights::none(),
                &forced,
                &returns,
            ) {
                Ok(got) => {
                    let what = format!("{dims:?}, {}", strategy.name());
                    common::assert_matches_cpu(&what, &got, &want);
                    assert_eq!(got.correct, want.correct, "{what}");
                    served += 1;
                }
                Err(xent::Error::Unsupported { .. }) => {}
                Err(e) => panic!("{dims:?}, {}: {e}", strategy.name()),
            }
        }
    }
    // Of the 18 pairs, the layout rules out Pixels4 on the rows of 8 and
    // all but Narrow, Pixels4 and Split on the pixels.
    assert_eq!(served, 11);
}

#[test]
fn large_logits_keep_their_precision() {
    // Around 1e7 an f32 step is 1: m + log s would round away log-probabilities
    // of order 1, so the kernels compute (x - m) - log s.
    let mut rng = Rng(12);
    let logits: Vec<f32> = (0..6 * 300)
        .map(|_| 1.0e7 + (rng.below(16) as f32) - 8.0)
        .collect();
    let targets: Vec<i64> = (0..6).map(|_| rng.below(300) as i64).collect();
    for dims in [[6usize, 300], [60, 30]] {
        let opts = CrossEntropyOptions {
            reduction: Reduction::Sum,
            ..Default::default()
        };
        let t = &targets[..1].repeat(dims[0]);
        check(&Problem {
            dims: dims.to_vec(),
            logits: logits.clone(),
            targets: t.clone(),
            weights: None,
            opts,
        })
        .unwrap();
        let Some(ctx) = ctx() else { return };
        let lp = ctx
            .softmax(
                &logits,
                &dims,
                &xent::SoftmaxOptions {
                    kind: xent::SoftmaxKind::LogSoftmax,
                },
            )
            .unwrap();
        Tolerance::default()
            .check(
                "log_softmax",
                &lp,
                &cpu::log_softmax_reference(&logits, &dims).unwrap(),
            )
            .unwrap();
    }
}

#[test]
fn degenerate_rows_follow_one_rule_on_gpu_and_cpu() {
    // An all -inf row (log-sum-exp -inf, loss NaN, argmax 0), a NaN (NaN never
    // wins the argmax), and a row finite at one class only, in every row
    // strategy: per-row loss, log-sum-exp and the argmax count agree.
    let Some(ctx) = ctx() else { return };
    let inf = f32::INFINITY;
    for dims in [
        vec![6usize, 3],
        vec![6, 4],
        vec![6, 130],
        vec![6, 132],
        vec![6, 64],
        vec![2, 3, 3],
        vec![2, 3, 4],
        vec![2, 21, 4],
        vec![3, 20_000],
    ] {
        let layout = xent::Layout::from_dims(&dims).unwrap();
        let mut rng = Rng(dims.iter().product::<usize>() as u64);
        let mut x: Vec<f32> = (0..layout.len()).map(|_| rng.uniform(-3.0, 3.0)).collect();
        let c = layout.classes;
        for class in 0..c {
            x[layout.element(0, class)] = -inf;
            x[layout.element(2, class)] = if class == c - 1 { 1.0 } else { -inf };
        }
        x[layout.element(1, 0)] = f32::NAN;
        // Row 1's largest finite value sits at its target.
        x[layout.element(1, c - 1)] = 50.0;
        // Row 3 all NaN (no argmax, log-sum-exp NaN); row 4 -inf and NaN
        // (log-sum-exp NaN, as torch.logsumexp). Split rows ([3, 20 000])
        // have three rows only.
        let more = layout.rows() > 4;
        for class in (0..c).filter(|_| more) {
            x[layout.element(3, class)] = f32::NAN;
            x[layout.element(4, class)] = if class == 0 { f32::NAN } else { -inf };
        }
        let targets: Vec<i64> = (0..layout.rows())
            .map(|row| match row {
                0 => 0,
                1 | 2 => c as i64 - 1,
                _ => rng.below(c) as i64,
            })
            .collect();
        let opts = CrossEntropyOptions {
            reduction: Reduction::None,
            ..Default::default()
        };
        let returns = xent::Returns {
            lse: true,
            correct: true,
            ..Default::default()
        };
        let t = xent::Targets::I64(&targets);
        let gpu = ctx
            .cross_entropy_with(&x, &dims, t, xent::Weights::none(), &opts, &returns)
            .unwrap();
        let want = cpu::cross_entropy_with(&x, &dims, t, xent::Weights::none(), &opts).unwrap();
        let tol = Tolerance::default();
        tol.check("loss", &gpu.loss, &want.loss_reference())
            .unwrap_or_else(|e| panic!("{dims:?}: {e}"));
        let lse = gpu.lse.as_deref().unwrap();
        tol.check("lse", lse, &want.lse_reference().unwrap())
            .unwrap_or_else(|e| panic!("{dims:?}: {e}"));
        assert_eq!(lse[0], -inf, "{dims:?}: log-sum-exp of an all -inf row");
        if more {
            assert!(lse[3].is_nan() && lse[4].is_nan(), "{dims:?}");
        }
        assert!(gpu.loss[0].is_nan(), "{dims:?}");
        assert_eq!(gpu.correct, want.correct, "{dims:?}: argmax count");
        // Rows 0 (argmax 0 = target), 1 and 2 (argmax C-1 = target) count.
        assert!(want.correct.unwrap() >= 3, "{dims:?}");
    }
}

#[test]
fn subgroup_and_workgroup_memory_reductions_both_match_the_cpu() {
    // The default context uses subgroup shuffles where the device has
    // SUBGROUP; a context on a device made without optional features uses
    // workgroup memory. Both against the CPU, on every kernel that reduces a
    // row across a workgroup (wide, wide vec4, split rows), with the argmax
    // and probability-target terms that travel through the reduction.
    let Some(ctx) = ctx() else { return };
    let plain = common::small_binding_ctx(1 << 26).expect("a second device");
    assert!(!plain.subgroup_reductions());
    if ctx.device().features().contains(wgpu::Features::SUBGROUP)
        && std::env::var("XENT_SUBGROUPS").as_deref() != Ok("0")
    {
        assert!(
            ctx.subgroup_reductions(),
            "{}: SUBGROUP but no subgroup reductions",
            ctx.adapter_summary()
        );
    }
    for dims in [
        vec![5usize, 300],
        vec![5, 301],
        vec![3, 20_000],
        vec![2, 70_001],
    ] {
        let layout = xent::Layout::from_dims(&dims).unwrap();
        let mut rng = Rng(dims[1] as u64);
        let x: Vec<f32> = (0..layout.len()).map(|_| rng.uniform(-9.0, 9.0)).collect();
        let t: Vec<i64> = (0..layout.rows())
            .map(|_| rng.below(layout.classes) as i64)
            .collect();
        let probs = common::soft_targets(&x, &dims);
        let opts = CrossEntropyOptions {
            reduction: Reduction::Sum,
            label_smoothing: 0.2,
            ..Default::default()
        };
        let returns = xent::Returns {
            lse: true,
            correct: true,
            ..Default::default()
        };
        for targets in [xent::Targets::I64(&t), xent::Targets::Probs(&probs)] {
            let want =
                cpu::cross_entropy_with(&x, &dims, targets, xent::Weights::none(), &opts).unwrap();
            for c in [ctx, &plain] {
                let got = c
                    .cross_entropy_with(&x, &dims, targets, xent::Weights::none(), &opts, &returns)
                    .unwrap();
                let what = format!("{dims:?}, subgroups {}", c.subgroup_reductions());
                common::assert_matches_cpu(&what, &got, &want);
                assert_eq!(got.correct, want.correct, "{what}");
            }
        }
    }
}

#[test]
fn every_op_runs_on_a_device_with_the_required_limits() {
    // xent::required_limits() (downlevel defaults with 8 storage buffers per
    // stage) and WebGPU's defaults, no optional features: every entry point
    // of a variant with every option on is built on first use, so one call
    // per strategy and op checks them all; verify mode holds each to the CPU.
    for limits in [xent::required_limits(), wgpu::Limits::default()] {
        let Some(ctx) = common::limits_ctx(limits) else {
            return;
        };
        cross_entropy_on_every_strategy(&ctx);
        other_ops(&ctx);
    }
}

#[test]
fn a_device_below_the_required_limits_is_refused_naming_the_limit() {
    let Some(ctx) = common::ctx() else { return };
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
        let returns = xent::Returns {
            lse: true,
            correct: true,
            ..Default::default()
        };
        let targets = xent::Targets::I64(&t);
        let got = ctx
            .cross_entropy_with(&x, &dims, targets, weights, &opts, &returns)
            .unwrap_or_else(|e| panic!("{dims:?}: {e}"));
        let want = cpu::cross_entropy_with(&x, &dims, targets, weights, &opts).unwrap();
        common::assert_matches_cpu(&format!("{dims:?}"), &got, &want);
        assert_eq!(got.correct, want.correct, "{dims:?}");
        // The vocabulary split's kernels (partial, merge, finish).
        let split = ctx
            .cross_entropy_sharded(&x, &dims, targets, weights, &opts, &returns, 3)
            .unwrap_or_else(|e| panic!("{dims:?}, 3 shards: {e}"));
        common::assert_matches_cpu(&format!("{dims:?}, 3 shards"), &split, &want);
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

#[test]
fn many_rows_reduce_over_several_blocks_as_on_the_cpu() {
    // Past 8 192 rows the mean's denominator, the loss and the count of
    // correct rows are reduced per block of rows and then merged: rows, a
    // map and the fixed-class kernels, with ignored rows, class and sample
    // weights and probability targets (whose mean divides by the row count).
    // 600 001 rows make 74 blocks, more than the 64 invocations that merge
    // them (the first ten fold two).
    let Some(ctx) = ctx() else { return };
    for dims in [
        vec![600_001usize, 2],
        vec![20_000, 3],
        vec![20_001, 8],
        vec![3, 5, 64, 64],
        vec![1, 3, 101, 97],
    ] {
        let layout = xent::Layout::from_dims(&dims).unwrap();
        assert!(layout.rows() > 8192, "{dims:?} must span several blocks");
        let mut rng = Rng(layout.rows() as u64);
        let x: Vec<f32> = (0..layout.len()).map(|_| rng.uniform(-6.0, 6.0)).collect();
        let t: Vec<i64> = (0..layout.rows())
            .map(|_| {
                if rng.below(7) == 0 {
                    -100
                } else {
                    rng.below(layout.classes) as i64
                }
            })
            .collect();
        let probs = common::soft_targets(&x, &dims);
        // The same classes as u8 (a segmentation mask), ignored as 255.
        let t8: Vec<u8> = t
            .iter()
            .map(|&v| if v < 0 { 255 } else { v as u8 })
            .collect();
        let cw: Vec<f32> = (0..layout.classes).map(|_| rng.uniform(0.2, 2.0)).collect();
        let sw: Vec<f32> = (0..layout.rows()).map(|_| rng.uniform(0.0, 2.0)).collect();
        let weighted = xent::Weights {
            class: Some(&cw[..]),
            sample: Some(&sw[..]),
        };
        for (reduction, smoothing) in [(Reduction::Mean, 0.0), (Reduction::Sum, 0.1)] {
            let opts = CrossEntropyOptions {
                reduction,
                label_smoothing: smoothing,
                ..Default::default()
            };
            let returns = xent::Returns {
                correct: true,
                ..Default::default()
            };
            for (targets, weights) in [
                (xent::Targets::I64(&t), xent::Weights::none()),
                (xent::Targets::I64(&t), weighted),
                (xent::Targets::U8(&t8), weighted),
                (xent::Targets::Probs(&probs), xent::Weights::none()),
            ] {
                let opts = CrossEntropyOptions {
                    ignore_index: if matches!(targets, xent::Targets::U8(_)) {
                        255
                    } else {
                        -100
                    },
                    ..opts.clone()
                };
                let want = cpu::cross_entropy_with(&x, &dims, targets, weights, &opts).unwrap();
                let got = ctx
                    .cross_entropy_with(&x, &dims, targets, weights, &opts, &returns)
                    .unwrap();
                let what = format!("{dims:?}, {reduction:?}, smoothing {smoothing}");
                common::assert_matches_cpu(&what, &got, &want);
                assert_eq!(got.correct, want.correct, "{what}");
            }
        }
    }
}
