//! Property tests: cross-entropy on the GPU against its CPU twin on generated
//! shapes and options, under the one documented tolerance
//! (`xent::Tolerance::default()`); rows of 100 000 classes, many short rows,
//! grids that spill into y, and large logits.

use crate::common::generators::{classes, reduction, rows, smoothing_or_one};
use crate::common::{ctx, Rng};
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn cross_entropy_rows_match_cpu(
        n in rows(),
        c in classes(),
        seed in any::<u64>(),
        weighted in any::<bool>(),
        ignore_index in prop_oneof![Just(-100i64), Just(0i64), Just(255i64)],
        ignore_rate in prop_oneof![Just(0.0f32), Just(0.3f32), Just(1.0f32)],
        neg_inf in any::<bool>(),
        reduction in reduction(),
        label_smoothing in smoothing_or_one(),
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
        label_smoothing in smoothing_or_one(),
    ) {
        let opts = CrossEntropyOptions { reduction, label_smoothing, ..Default::default() };
        check(&problem(vec![c], seed, weighted, -100, 0.0, false, opts))?;
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
    let Some(ctx) = crate::common::small_grid_ctx(160) else {
        return;
    };
    let opts = CrossEntropyOptions {
        reduction: Reduction::Sum,
        label_smoothing: 0.1,
        ..Default::default()
    };
    let returns = xent::Returns::ROWS;
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
                    crate::common::assert_matches_cpu(&what, &got, &want);
                    assert_eq!(got.correct, want.correct, "{what}");
                    served += 1;
                }
                Err(xent::Error::Unsupported { .. }) => {}
                Err(e) => panic!("{dims:?}, {}: {e}", strategy.name()),
            }
        }
    }
    // Of the 20 pairs, the layout rules out Pixels4 and MapTeam on the rows
    // of 8 and all but Narrow, Pixels4, Split and MapTeam on the pixels.
    assert_eq!(served, 12);
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
