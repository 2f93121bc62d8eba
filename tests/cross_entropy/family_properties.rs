//! Property tests of the loss family, GPU against CPU: K-dimensional inputs
//! (K = 0 to 3, odd spatial sizes), C from 1 to 300, every input kind, target
//! kind and reduction, with and without ignore, class and sample weights,
//! smoothing and z-loss; and every row strategy on a spread of options.

use crate::common::family::{FamilyCase, FamilyOptions};
use crate::common::generators::{
    input_kind, kd_dims, reduction, smoothing, softcap, target_kind, temperature, z_loss,
};
use crate::common::{ctx, to_kind, Rng};
use proptest::prelude::*;
use xent::{cpu, CrossEntropyOptions, InputKind, Reduction, Targets, Tolerance, Weights};

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn loss_family_matches_cpu(
        dims in kd_dims(),
        seed in any::<u64>(),
        target_kind in target_kind(),
        input in input_kind(),
        reduction in reduction(),
        class_weights in any::<bool>(),
        sample_weights in any::<bool>(),
        ignore in any::<bool>(),
        label_smoothing in smoothing(),
        z in z_loss(),
        extras in any::<bool>(),
        softcap in softcap(),
        temperature in temperature(),
    ) {
        let Some(ctx) = ctx() else { return Ok(()) };
        let case = FamilyCase::draw(&dims, seed, input, ignore);
        let family = FamilyOptions { target_kind, input, reduction, label_smoothing, z_loss: z, softcap, temperature, extras };
        let (opts, returns) = family.call();
        let (targets, weights) = (case.targets(target_kind), case.weights(class_weights, sample_weights));
        let gpu = ctx.cross_entropy_with(&case.x, &dims, targets, weights, &opts, &returns).map_err(|e| TestCaseError::fail(format!("gpu: {e}")))?;
        let want = cpu::cross_entropy_with(&case.x, &dims, targets, weights, &opts).map_err(|e| TestCaseError::fail(format!("cpu: {e}")))?;
        family.check(&gpu, &want)?;
        prop_assert_eq!(gpu.lse.is_some(), extras && input == InputKind::Logits);
    }
}

/// One shape per row strategy (scalar and vec4, per row and per pixel), each
/// with a spread of options, against the CPU.
#[test]
fn every_row_strategy_matches_cpu() {
    let Some(ctx) = ctx() else { return };
    // Through the host API (in place, except long rows of C % 4 != 0): the
    // kernels specialised for C at and past their limits (rows of C <= 64,
    // maps of C <= 32), split rows (2 and 4 workgroups per row), Wide4 (an
    // even and an odd number of vec4s: the two halves of a row differ by
    // one), WideMixed, Narrow4 (specialised), Narrow, Pixels4 (specialised),
    // Narrow (map).
    let shapes: [&[usize]; 15] = [
        &[5, 64],
        &[5, 68],
        &[2, 19, 4, 4],
        &[2, 21, 4, 4],
        &[2, 32, 4, 4],
        &[2, 33, 4, 4],
        &[3, 20_001],
        &[2, 40_000],
        &[3, 256],
        &[3, 260],
        &[3, 257],
        &[5, 12],
        &[5, 13],
        &[2, 5, 4, 3],
        &[2, 5, 3, 3],
    ];
    for dims in shapes {
        shape_matches_cpu(ctx, dims);
    }
}

/// The options each shape of `every_row_strategy_matches_cpu` runs with,
/// and what each call returns.
fn strategy_options() -> [(CrossEntropyOptions, xent::Returns); 3] {
    let all = xent::Returns::ROWS;
    [
        (CrossEntropyOptions::default(), Default::default()),
        (
            CrossEntropyOptions {
                label_smoothing: 0.2,
                z_loss: 1e-3,
                ..Default::default()
            },
            all,
        ),
        (
            CrossEntropyOptions {
                reduction: Reduction::None,
                label_smoothing: 0.1,
                ..Default::default()
            },
            Default::default(),
        ),
    ]
}

/// One shape of `every_row_strategy_matches_cpu`: class and probability
/// targets, with and without weights, under every [`strategy_options`].
fn shape_matches_cpu(ctx: &xent::Context, dims: &[usize]) {
    let layout = xent::Layout::from_dims(dims).unwrap();
    let mut rng = Rng(layout.len() as u64);
    let x: Vec<f32> = (0..layout.len()).map(|_| rng.uniform(-8.0, 8.0)).collect();
    let idx: Vec<i64> = (0..layout.rows())
        .map(|i| {
            if i % 5 == 1 {
                -100
            } else {
                rng.below(layout.classes) as i64
            }
        })
        .collect();
    let mut probs: Vec<f32> = (0..layout.len()).map(|_| rng.uniform(0.0, 1.0)).collect();
    to_kind(&mut probs, dims, InputKind::Probs);
    let cw: Vec<f32> = (0..layout.classes).map(|_| rng.uniform(0.2, 2.0)).collect();
    let sw: Vec<f32> = (0..layout.rows()).map(|_| rng.uniform(0.0, 2.0)).collect();
    for (opts, returns) in &strategy_options() {
        for targets in [Targets::I64(&idx), Targets::Probs(&probs)] {
            for weights in [
                Weights::none(),
                Weights {
                    class: Some(&cw[..]),
                    sample: Some(&sw[..]),
                },
            ] {
                call_matches_cpu(ctx, (&x, dims), targets, weights, (opts, returns));
            }
        }
    }
}

/// One call of `every_row_strategy_matches_cpu`, GPU against CPU.
fn call_matches_cpu(
    ctx: &xent::Context,
    (x, dims): (&[f32], &[usize]),
    targets: Targets<'_>,
    weights: Weights<'_>,
    (opts, returns): (&CrossEntropyOptions, &xent::Returns),
) {
    let tol = Tolerance::default();
    let what = format!("{dims:?} {opts:?} {}", matches!(targets, Targets::Probs(_)));
    let gpu = ctx
        .cross_entropy_with(x, dims, targets, weights, opts, returns)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let want = cpu::cross_entropy_with(x, dims, targets, weights, opts).unwrap();
    tol.check("loss", &gpu.loss, &want.loss_reference())
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    tol.check(
        "grad",
        gpu.grad.as_deref().unwrap(),
        &want.grad_reference().unwrap(),
    )
    .unwrap_or_else(|e| panic!("{what}: {e}"));
    if let (Some(g), Some(w)) = (&gpu.lse, want.lse_reference()) {
        tol.check("lse", g, &w)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    let counted = want.correct.filter(|_| returns.correct);
    assert_eq!(gpu.correct, counted, "{what}");
    assert_eq!(gpu.argmax.is_some(), returns.argmax, "{what}");
    tol.compare_cross_entropy(&gpu, &want, &tol)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
}
