//! Property tests at every kernel's switch points and past Mesa's loop
//! limit: random shapes (maps up to 70 000 classes, class counts around each
//! strategy's bounds) and options, GPU against the CPU under the one
//! tolerance; and against closed forms that do not come from xent's CPU path
//! (zero logits give ln C and 1/C − onehot; one-hot extreme logits give 0).

use crate::common::generators::{reduction, zero_or};
use crate::common::{ctx, Rng};
use proptest::prelude::*;
use xent::{cpu, CrossEntropyOptions, Reduction, Targets, Tolerance, Weights};

/// Class counts around the strategies' switch points (src/ops/cross_entropy/plan.rs): the
/// fixed kernels' 32 classes and 16 quads, the wide rows' 128, the split
/// rows' 16 384, the loop bounds of rows_pixels4 (8 065) and rows_narrow
/// (12 785) on 8-invocation adapters, and anything up to 70 000.
fn classes() -> impl Strategy<Value = usize> {
    prop_oneof![
        1usize..=5,
        31usize..=33,
        63usize..=66,
        127usize..=130,
        8062usize..=8068,
        12782usize..=12788,
        16382usize..=16386,
        20_000usize..=70_000,
    ]
}

/// (N, C, inner…) with at most ~600 000 elements.
fn dims() -> impl Strategy<Value = Vec<usize>> {
    (
        classes(),
        prop_oneof![Just(1usize), Just(2), Just(3), Just(4), Just(8)],
        1usize..4,
    )
        .prop_map(|(c, inner, n)| {
            let n = n.min((600_000 / (c * inner)).max(1));
            if inner == 1 {
                vec![n, c]
            } else {
                vec![n, c, inner]
            }
        })
}

/// Half the time a map past Mesa's loop limit for one invocation per pixel
/// (more than 32 767 classes, 2 or 4 pixels).
fn dims_or_long_maps() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        dims(),
        (32_768usize..=70_000, prop_oneof![Just(2usize), Just(4)]).prop_map(|(c, s)| vec![1, c, s]),
    ]
}

/// No cap, a cap well inside the logits' range (most of them saturate) and
/// one outside it.
fn softcap() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![Just(None), Just(Some(2.0)), Just(Some(30.0))]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn gpu_matches_cpu_around_every_switch_point(
        dims in dims(),
        reduction in reduction(),
        smoothing in zero_or(0.2),
        weighted in any::<bool>(),
        ignore in any::<bool>(),
        soft in prop::bool::weighted(0.25),
        softcap in softcap(),
        seed in any::<u64>(),
    ) {
        let Some(ctx) = ctx() else { return Ok(()) };
        let layout = xent::Layout::from_dims(&dims).unwrap();
        let mut rng = Rng(seed);
        let x: Vec<f32> = (0..layout.len()).map(|_| rng.uniform(-8.0, 8.0)).collect();
        let t: Vec<i64> = (0..layout.rows())
            .map(|_| if ignore && rng.below(3) == 0 { -100 } else { rng.below(layout.classes) as i64 })
            .collect();
        let w: Vec<f32> = (0..layout.classes).map(|_| rng.uniform(0.5, 2.0)).collect();
        let sw: Vec<f32> = (0..layout.rows()).map(|_| rng.uniform(0.5, 2.0)).collect();
        let weights = Weights { class: weighted.then_some(&w[..]), sample: weighted.then_some(&sw[..]) };
        let probs = if soft { crate::common::soft_targets(&x, &dims) } else { Vec::new() };
        let targets = if soft { Targets::Probs(&probs) } else { Targets::I64(&t) };
        let opts = CrossEntropyOptions { reduction, label_smoothing: smoothing, softcap, ..Default::default() };
        let fail = |e: xent::Error| TestCaseError::fail(format!("{dims:?} soft {soft}: {e}"));
        let gpu = ctx.cross_entropy_with(&x, &dims, targets, weights, &opts, &Default::default()).map_err(fail)?;
        let want = cpu::cross_entropy_with(&x, &dims, targets, weights, &opts).unwrap();
        let tol = Tolerance::default();
        tol.compare_cross_entropy(&gpu, &want, &tol).map_err(fail)?;
        let y = ctx.softmax(&x, &dims, &xent::SoftmaxOptions::default()).map_err(fail)?;
        tol.check("softmax", &y, &cpu::softmax_reference(&x, &dims).unwrap()).map_err(fail)?;
    }

    #[test]
    fn closed_forms_hold_around_every_switch_point(dims in dims_or_long_maps(), extreme in any::<bool>(), seed in any::<u64>()) {
        // Zero logits: every row's loss is ln C and its gradient 1/C − onehot.
        // One-hot extreme logits (+200 at the target, −200 elsewhere): loss 0,
        // gradient 0 (exp(−400) is 0 in f32).
        let Some(ctx) = ctx() else { return Ok(()) };
        let layout = xent::Layout::from_dims(&dims).unwrap();
        let mut rng = Rng(seed);
        let t: Vec<i64> = (0..layout.rows()).map(|_| rng.below(layout.classes) as i64).collect();
        let c = layout.classes as f64;
        let mut x = vec![if extreme { -200.0f32 } else { 0.0 }; layout.len()];
        let (loss, p) = if extreme { (0.0, 0.0) } else { (c.ln(), 1.0 / c) };
        // p − 1 at the target (0 when extreme).
        let mut grad = vec![p; layout.len()];
        for (row, &t) in t.iter().enumerate() {
            let i = layout.element(row, t as usize);
            grad[i] = p - 1.0;
            if extreme {
                x[i] = 200.0;
                grad[i] = 0.0;
            }
        }
        let opts = CrossEntropyOptions { reduction: Reduction::None, ..Default::default() };
        let fail = |e: xent::Error| TestCaseError::fail(format!("{dims:?}: {e}"));
        let gpu = ctx.cross_entropy(&x, &dims, &t, None, &opts, &Default::default()).map_err(fail)?;
        let tol = Tolerance::default();
        tol.compare("loss", &gpu.loss, &vec![loss; layout.rows()]).map_err(fail)?;
        // 1/C − 1 at the target: the terms are 1/C and 1 (see Tolerance).
        let magnitude: Vec<f64> = grad.iter().map(|&g| if g < 0.0 { 1.0 } else { g }).collect();
        let flush = vec![0.0; grad.len()];
        let want = cpu::Reference { value: grad, magnitude, flush };
        tol.check("grad", gpu.grad.as_deref().unwrap(), &want).map_err(fail)?;
        // Softmax: 1/C everywhere, or 1 at the target and 0 elsewhere.
        let mut probs = vec![p; layout.len()];
        for (row, &t) in t.iter().enumerate() {
            if extreme {
                probs[layout.element(row, t as usize)] = 1.0;
            }
        }
        let y = ctx.softmax(&x, &dims, &xent::SoftmaxOptions::default()).map_err(fail)?;
        tol.compare("softmax", &y, &probs).map_err(fail)?;
    }
}

/// Class counts around the team kernels' lane switch points (1 lane up to
/// C = 8, then doubling at 8·2^k + 1, all 256 from 1 025), what a lane
/// holds (doubling at 256·2^k + 1, nothing past 16 384), and long rows.
fn team_classes() -> impl Strategy<Value = usize> {
    prop_oneof![
        1usize..=10,
        15usize..=18,
        63usize..=66,
        1020usize..=1030,
        2040usize..=2056,
        4094usize..=4100,
        16_380usize..=16_392,
        5000usize..=20_000,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// The GPU table's team kernels (which the software adapters never
    /// choose) forced on every option against the CPU: weights, ignored
    /// rows, smoothing, probability targets, z-loss, lse, argmax counts.
    #[test]
    fn team_kernels_match_cpu_on_every_option(
        classes in team_classes(),
        rows in 1usize..700,
        reduction in reduction(),
        smoothing in zero_or(0.2),
        z_loss in zero_or(1e-3),
        weighted in any::<bool>(),
        ignore in any::<bool>(),
        soft in prop::bool::weighted(0.25),
        extras in any::<bool>(),
        softcap in softcap(),
        vec4 in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let Some(ctx) = ctx() else { return Ok(()) };
        let rows = rows.min((600_000 / classes).max(1));
        let dims = vec![rows, classes];
        let strategy = if vec4 && classes % 4 == 0 { xent::Strategy::Team4 } else { xent::Strategy::Team };
        let mut rng = Rng(seed);
        let x: Vec<f32> = (0..rows * classes).map(|_| rng.uniform(-8.0, 8.0)).collect();
        let t: Vec<i64> = (0..rows)
            .map(|_| if ignore && rng.below(3) == 0 { -100 } else { rng.below(classes) as i64 })
            .collect();
        let w: Vec<f32> = (0..classes).map(|_| rng.uniform(0.5, 2.0)).collect();
        let sw: Vec<f32> = (0..rows).map(|_| rng.uniform(0.5, 2.0)).collect();
        let weights = Weights { class: weighted.then_some(&w[..]), sample: weighted.then_some(&sw[..]) };
        let probs = if soft { crate::common::soft_targets(&x, &dims) } else { Vec::new() };
        let targets = if soft { Targets::Probs(&probs) } else { Targets::I64(&t) };
        let opts = CrossEntropyOptions {
            strategy,
            reduction,
            label_smoothing: smoothing,
            z_loss,
            softcap,
            ..Default::default()
        };
        let returns = xent::Returns {
            lse: extras,
            correct: extras,
            argmax: extras,
            entropy: extras,
            ..Default::default()
        };
        let fail = |e: xent::Error| TestCaseError::fail(format!("{} {dims:?} soft {soft}: {e}", strategy.name()));
        let gpu = ctx.cross_entropy_with(&x, &dims, targets, weights, &opts, &returns).map_err(fail)?;
        let want = cpu::cross_entropy_with(&x, &dims, targets, weights, &opts).unwrap();
        let tol = Tolerance::default();
        tol.compare_cross_entropy(&gpu, &want, &tol).map_err(fail)?;
    }
}
