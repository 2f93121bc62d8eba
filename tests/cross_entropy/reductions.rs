//! Reductions across a row's workgroup and across blocks of rows, GPU
//! against CPU: degenerate rows (all −∞, NaN) on every row strategy, subgroup
//! and workgroup-memory reductions, and batches past 8 192 rows reduced per
//! block and merged.

use crate::common::{ctx, Rng};
use xent::{cpu, CrossEntropyOptions, Reduction, Tolerance};

#[test]
fn degenerate_rows_follow_one_rule_on_gpu_and_cpu() {
    // An all -inf row (log-sum-exp -inf, loss NaN, argmax 0), a NaN (which
    // wins the argmax, as torch.argmax), and a row finite at one class only,
    // in every row strategy: per-row loss, log-sum-exp, predicted class,
    // entropy and the argmax count agree.
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
        // Row 1's NaN sits at its target, its largest number elsewhere.
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
                0 | 1 => 0,
                2 => c as i64 - 1,
                _ => rng.below(c) as i64,
            })
            .collect();
        let opts = CrossEntropyOptions {
            reduction: Reduction::None,
            ..Default::default()
        };
        let returns = xent::Returns::ROWS;
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
        row_outputs_follow_the_rule(&dims, &gpu, &want, more);
        assert_eq!(gpu.correct, want.correct, "{dims:?}: argmax count");
        // Rows 0 and 1 (argmax 0 = target), 2 (argmax C-1 = target) count.
        assert!(want.correct.unwrap() >= 3, "{dims:?}");
    }
}

/// The predicted classes and entropies of `degenerate_rows_…`' rows: the
/// twin's, and torch's values for the rows built to test them.
fn row_outputs_follow_the_rule(
    dims: &[usize],
    gpu: &xent::cpu::CrossEntropyOutput<f32>,
    want: &xent::cpu::CrossEntropyOutput<f64>,
    more: bool,
) {
    let c = dims[1] as i64;
    let argmax = gpu.argmax.as_deref().unwrap();
    assert_eq!(
        argmax,
        want.argmax.as_deref().unwrap(),
        "{dims:?}: predicted classes"
    );
    assert_eq!(
        &argmax[..3],
        &[0, 0, c - 1],
        "{dims:?}: -inf row, NaN, one finite"
    );
    if more {
        assert_eq!(&argmax[3..5], &[0, 0], "{dims:?}: all NaN, -inf and NaN");
    }
    let tol = Tolerance::default();
    let entropy = gpu.entropy.as_deref().unwrap();
    tol.check("entropy", entropy, &want.entropy_reference().unwrap())
        .unwrap_or_else(|e| panic!("{dims:?}: {e}"));
    assert!(entropy[0].is_nan() && entropy[1].is_nan(), "{dims:?}");
    assert_eq!(entropy[2], 0.0, "{dims:?}: one finite class");
}

#[test]
fn subgroup_and_workgroup_memory_reductions_both_match_the_cpu() {
    // The default context uses subgroup shuffles where the device has
    // SUBGROUP; a context on a device made without optional features uses
    // workgroup memory. Both against the CPU, on every kernel that reduces a
    // row across a workgroup (wide, wide vec4, split rows), with the argmax
    // and probability-target terms that travel through the reduction.
    let Some(ctx) = ctx() else { return };
    let plain = crate::common::small_binding_ctx(1 << 26).expect("a second device");
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
        let probs = crate::common::soft_targets(&x, &dims);
        let opts = CrossEntropyOptions {
            reduction: Reduction::Sum,
            label_smoothing: 0.2,
            ..Default::default()
        };
        let returns = xent::Returns::ROWS;
        for targets in [xent::Targets::I64(&t), xent::Targets::Probs(&probs)] {
            let want =
                cpu::cross_entropy_with(&x, &dims, targets, xent::Weights::none(), &opts).unwrap();
            for c in [ctx, &plain] {
                let got = c
                    .cross_entropy_with(&x, &dims, targets, xent::Weights::none(), &opts, &returns)
                    .unwrap();
                let what = format!("{dims:?}, subgroups {}", c.subgroup_reductions());
                crate::common::assert_matches_cpu(&what, &got, &want);
                assert_eq!(got.correct, want.correct, "{what}");
            }
        }
    }
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
        let probs = crate::common::soft_targets(&x, &dims);
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
                crate::common::assert_matches_cpu(&what, &got, &want);
                assert_eq!(got.correct, want.correct, "{what}");
            }
        }
    }
}
