//! Property tests of the loss family, GPU against CPU: K-dimensional inputs
//! (K = 0 to 3, odd spatial sizes), C from 1 to 300, every input kind, target
//! kind and reduction, with and without ignore, class and sample weights,
//! smoothing and z-loss; and the softmax backward.

mod common;

use common::{ctx, to_kind, Rng};
use proptest::prelude::*;
use xent::{cpu, CrossEntropyOptions, InputKind, Reduction, Targets, Tolerance, Weights};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    I64,
    I32,
    U8,
    Probs,
}

fn dims_strategy() -> impl Strategy<Value = Vec<usize>> {
    let classes = prop_oneof![
        Just(1usize),
        2usize..8,
        60usize..70,
        120usize..140,
        250usize..=300
    ];
    let spatial = prop::collection::vec(
        prop_oneof![Just(1usize), Just(3usize), Just(5usize), 2usize..12],
        0..=3,
    );
    (prop::bool::weighted(0.1), 1usize..5, classes, spatial).prop_map(
        |(unbatched, n, c, spatial)| {
            if unbatched && spatial.is_empty() {
                vec![c]
            } else {
                let mut d = vec![n, c];
                d.extend(spatial);
                d
            }
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn loss_family_matches_cpu(
        dims in dims_strategy(),
        seed in any::<u64>(),
        target_kind in prop_oneof![Just(Kind::I64), Just(Kind::I32), Just(Kind::U8), Just(Kind::Probs)],
        input in prop_oneof![Just(InputKind::Logits), Just(InputKind::LogProbs), Just(InputKind::Probs)],
        reduction in prop_oneof![Just(Reduction::Mean), Just(Reduction::Sum), Just(Reduction::None)],
        class_weights in any::<bool>(),
        sample_weights in any::<bool>(),
        ignore in any::<bool>(),
        label_smoothing in prop_oneof![Just(0.0f64), 0.0f64..1.0],
        z in prop_oneof![Just(0.0f64), 1e-4f64..1e-2],
        extras in any::<bool>(),
        softcap in prop_oneof![Just(None), Just(Some(3.0f64))],
    ) {
        let Some(ctx) = ctx() else { return Ok(()) };
        let layout = xent::Layout::from_dims(&dims).unwrap();
        let mut rng = Rng(seed);
        let mut x: Vec<f32> = (0..layout.len()).map(|_| rng.uniform(-8.0, 8.0)).collect();
        to_kind(&mut x, &dims, input);
        let ignore_index: i64 = 255;
        let class = |rng: &mut Rng| if ignore && rng.below(4) == 0 { ignore_index } else { rng.below(layout.classes) as i64 };
        let idx: Vec<i64> = (0..layout.rows()).map(|_| class(&mut rng)).collect();
        let idx32: Vec<i32> = idx.iter().map(|&t| t as i32).collect();
        let idx8: Vec<u8> = idx.iter().map(|&t| t as u8).collect();
        let mut probs: Vec<f32> = (0..layout.len()).map(|_| rng.uniform(0.0, 1.0)).collect();
        to_kind(&mut probs, &dims, InputKind::Probs);
        let cw: Vec<f32> = (0..layout.classes).map(|_| rng.uniform(0.2, 2.0)).collect();
        let sw: Vec<f32> = (0..layout.rows()).map(|_| rng.uniform(0.0, 2.0)).collect();
        let u8_ok = layout.classes <= 255;
        let targets = match target_kind {
            Kind::I64 => Targets::I64(&idx),
            Kind::I32 => Targets::I32(&idx32),
            Kind::U8 if u8_ok => Targets::U8(&idx8),
            Kind::U8 => Targets::I64(&idx),
            Kind::Probs => Targets::Probs(&probs),
        };
        let logits_only = input == InputKind::Logits;
        let opts = CrossEntropyOptions {
            reduction,
            // Probability targets refuse a class to ignore (as PyTorch).
            ignore_index: if target_kind == Kind::Probs { -100 } else { ignore_index },
            label_smoothing,
            input,
            z_loss: if logits_only { z } else { 0.0 },
            softcap: softcap.filter(|_| logits_only),
            ..Default::default()
        };
        let returns = xent::Returns { lse: extras && logits_only, correct: extras, ..Default::default() };
        let weights = Weights { class: class_weights.then_some(&cw[..]), sample: sample_weights.then_some(&sw[..]) };
        let gpu = ctx.cross_entropy_with(&x, &dims, targets, weights, &opts, &returns).map_err(|e| TestCaseError::fail(format!("gpu: {e}")))?;
        let want = cpu::cross_entropy_with(&x, &dims, targets, weights, &opts).map_err(|e| TestCaseError::fail(format!("cpu: {e}")))?;
        let tol = Tolerance::default();
        let fail = |e: xent::Error| TestCaseError::fail(e.to_string());
        prop_assert_eq!(&gpu.loss_dims, &want.loss_dims);
        tol.check("loss", &gpu.loss, &want.loss_reference()).map_err(fail)?;
        tol.check("grad", gpu.grad.as_deref().unwrap(), &want.grad_reference().unwrap()).map_err(fail)?;
        if let (Some(g), Some(w)) = (&gpu.lse, want.lse_reference()) {
            tol.check("lse", g, &w).map_err(fail)?;
        }
        // The twin counts always; the GPU when asked.
        prop_assert_eq!(gpu.correct, want.correct.filter(|_| extras));
        prop_assert_eq!(gpu.lse.is_some(), extras && logits_only);
    }

    #[test]
    fn softmax_forward_and_backward_match_cpu(dims in dims_strategy(), seed in any::<u64>()) {
        let Some(ctx) = ctx() else { return Ok(()) };
        let layout = xent::Layout::from_dims(&dims).unwrap();
        let mut rng = Rng(seed);
        let x: Vec<f32> = (0..layout.len()).map(|_| rng.uniform(-10.0, 10.0)).collect();
        let dy: Vec<f32> = (0..layout.len()).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let tol = Tolerance::default();
        let fail = |e: xent::Error| TestCaseError::fail(e.to_string());
        let y = ctx.softmax(&x, &dims, &xent::SoftmaxOptions::default()).map_err(fail)?;
        tol.compare("softmax", &y, &cpu::softmax(&x, &dims).unwrap()).map_err(fail)?;
        let ly = ctx.softmax(&x, &dims, &xent::SoftmaxOptions { kind: xent::SoftmaxKind::LogSoftmax }).map_err(fail)?;
        tol.check("log_softmax", &ly, &cpu::log_softmax_reference(&x, &dims).unwrap()).map_err(fail)?;
        let dx = ctx.softmax_backward(&y, &dy, &dims, &xent::SoftmaxOptions::default()).map_err(fail)?;
        tol.check("softmax backward", &dx, &cpu::softmax_backward_reference(&y, &dy, &dims).unwrap()).map_err(fail)?;
        let ldx = ctx.softmax_backward(&ly, &dy, &dims, &xent::SoftmaxOptions { kind: xent::SoftmaxKind::LogSoftmax }).map_err(fail)?;
        tol.check("log_softmax backward", &ldx, &cpu::log_softmax_backward_reference(&ly, &dy, &dims).unwrap()).map_err(fail)?;
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
    let tol = Tolerance::default();
    for dims in shapes {
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
        let all = xent::Returns {
            lse: true,
            correct: true,
            ..Default::default()
        };
        let options = [
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
        ];
        for (opts, returns) in &options {
            for targets in [Targets::I64(&idx), Targets::Probs(&probs)] {
                for weights in [
                    Weights::none(),
                    Weights {
                        class: Some(&cw[..]),
                        sample: Some(&sw[..]),
                    },
                ] {
                    let what =
                        format!("{dims:?} {opts:?} {}", matches!(targets, Targets::Probs(_)));
                    let gpu = ctx
                        .cross_entropy_with(&x, dims, targets, weights, opts, returns)
                        .unwrap_or_else(|e| panic!("{what}: {e}"));
                    let want = cpu::cross_entropy_with(&x, dims, targets, weights, opts).unwrap();
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
                }
            }
        }
    }
}
