//! Worked examples of the elementwise losses with values from PyTorch
//! (float64 on the f32 inputs): every loss with reductions none, mean and
//! sum on a (3, 4) batch, a (2, 3, 2) tensor and a 0-d one; the binary
//! losses' weights (the input's shape, the last axis) and `pos_weight`;
//! extreme logits; bce's clamped logarithms at 0 and 1, a tiny and a
//! subnormal probability; the regression losses at d = 0 and at |d| equal
//! to beta or delta. `tests/data/reference_elementwise.py` generates
//! `tests/data/elementwise_values.rs` (and the exact values, by mpmath, of
//! the extreme-logit cases, where PyTorch's float64 formulas cancel); the
//! inputs (`worked_cases.rs`) are the same lists and closed forms.

#[path = "../data/elementwise_values.rs"]
mod values;

use std::collections::BTreeSet;

use super::worked_cases::{cases, REDUCTIONS};
use crate::common::ctx;
use values::{EMPTY, EXACT, VALUES};
use xent::{cpu, ElementwiseLoss, ElementwiseOptions, LossWeights, Reduction, Tolerance};

/// The f64 CPU twin against PyTorch's float64, relative (with the floor
/// `CPU_FLOOR`), except where PyTorch's own formula cancels (see
/// `extreme_logits_match_the_exact_values`).
const CPU_TOL: f64 = 1e-12;
/// Far below f32's normal range, so that PyTorch's 0 for the exact 3.7e-44
/// (logit ±100) passes.
const CPU_FLOOR: f64 = 1e-40;

/// PyTorch's (loss, gradient), or the exact ones, of a case and reduction.
fn lookup(
    table: &'static [(&str, &str, &[f64], &[f64])],
    case: &str,
    reduction: &str,
) -> Option<(&'static [f64], &'static [f64])> {
    table
        .iter()
        .find(|(c, r, _, _)| *c == case && *r == reduction)
        .map(|&(_, _, loss, grad)| (loss, grad))
}

/// Each CPU value against PyTorch's, to [`CPU_TOL`] relative, except at `skip`.
fn check_cpu(what: &str, got: &[f64], want: &[f64], skip: &BTreeSet<usize>) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            skip.contains(&i) || (g - w).abs() <= CPU_TOL * w.abs() + CPU_FLOOR,
            "{what}[{i}]: cpu {g:e}, torch {w:e}"
        );
    }
}

/// The indices of (case, reduction, "loss" or "grad") in `off`.
fn skipped(off: &OffSet, case: &str, reduction: &str, kind: &str) -> BTreeSet<usize> {
    off.iter()
        .filter(|(c, r, k, _)| *c == case && *r == reduction && *k == kind)
        .map(|&(_, _, _, i)| i)
        .collect()
}

/// Each GPU value against the reference by the default tolerance (relative
/// 1e-4, floor 2⁻¹²⁶), except at `skip`.
fn check_gpu(what: &str, got: &[f32], want: &[f64], skip: &BTreeSet<usize>) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let tol = Tolerance::default();
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            skip.contains(&i) || tol.matches(f64::from(g), w),
            "{what}[{i}]: gpu {g:e}, reference {w:e}"
        );
    }
}

type OffSet = BTreeSet<(&'static str, &'static str, &'static str, usize)>;

/// Where PyTorch's float64 value is further from the exact one than the
/// default tolerance: for each (case, reduction, "loss" or "grad"), the indices.
fn torch_off_exact() -> OffSet {
    let tol = Tolerance::default();
    let mut off = BTreeSet::new();
    for &(case, reduction, loss, grad) in EXACT {
        let (t_loss, t_grad) = lookup(VALUES, case, reduction).expect("torch values");
        for (what, torch, exact) in [("loss", t_loss, loss), ("grad", t_grad, grad)] {
            for (i, (&t, &e)) in torch.iter().zip(exact).enumerate() {
                if !tol.matches(t, e) {
                    off.insert((case, reduction, what, i));
                }
            }
        }
    }
    off
}

#[test]
fn every_generated_value_has_a_case() {
    let cases = cases();
    for (case, reduction, _, _) in VALUES.iter().chain(EXACT) {
        assert!(
            cases.iter().any(|c| c.name == *case),
            "{case} ({reduction}) has no case here"
        );
    }
    for case in &cases {
        for (_, r) in REDUCTIONS {
            assert!(lookup(VALUES, &case.name, r).is_some(), "{} {r}", case.name);
        }
    }
}

#[test]
fn cpu_twin_matches_pytorch() {
    let off = torch_off_exact();
    for case in cases() {
        for (reduction, r) in REDUCTIONS {
            let what = format!("{} ({r})", case.name);
            let (loss, grad) = lookup(VALUES, &case.name, r).unwrap();
            let out = cpu::elementwise_loss(
                &case.input,
                &case.target,
                &case.dims,
                case.weights(),
                &ElementwiseOptions {
                    reduction,
                    ..ElementwiseOptions::new(case.loss)
                },
            )
            .unwrap();
            let dims = if reduction == Reduction::None {
                case.dims.clone()
            } else {
                vec![]
            };
            assert_eq!(out.loss_dims, dims, "{what}: loss dims");
            let skip = |kind| skipped(&off, &case.name, r, kind);
            check_cpu(&format!("{what} loss"), &out.loss, loss, &skip("loss"));
            let got = out.grad.as_deref().unwrap();
            check_cpu(&format!("{what} grad"), got, grad, &skip("grad"));
        }
    }
}

/// PyTorch's float64 `(1 − y)·x − log σ(x)` cancels at x = −30, y = 0
/// (9.237e-14 for 9.358e-14) and its `σ(x) − y` at x = 30, y = 1 (−9.348e-14
/// for −9.358e-14): the twin is held to the exact values there, to 1e-12
/// relative, and the GPU to the default tolerance.
#[test]
fn extreme_logits_match_the_exact_values() {
    let want: BTreeSet<_> = [
        "bcel extreme logits",
        "bcel extreme logits, last-axis weight and pos_weight",
    ]
    .into_iter()
    .flat_map(|case| {
        [
            (case, "none", "loss", 1),
            (case, "none", "grad", 13),
            (case, "mean", "grad", 13),
            (case, "sum", "grad", 13),
        ]
    })
    .collect();
    assert_eq!(
        torch_off_exact(),
        want,
        "where torch's float64 is not exact"
    );
    let cases = cases();
    for &(name, r, loss, grad) in EXACT {
        let case = cases.iter().find(|c| c.name == name).unwrap();
        let (reduction, _) = REDUCTIONS.into_iter().find(|&(_, s)| s == r).unwrap();
        let out = cpu::elementwise_loss(
            &case.input,
            &case.target,
            &case.dims,
            case.weights(),
            &ElementwiseOptions {
                reduction,
                ..ElementwiseOptions::new(case.loss)
            },
        )
        .unwrap();
        for (what, got, exact) in [
            ("loss", &out.loss[..], loss),
            ("grad", out.grad.as_deref().unwrap(), grad),
        ] {
            for (i, (&g, &e)) in got.iter().zip(exact).enumerate() {
                assert!(
                    (g - e).abs() <= CPU_TOL * e.abs(),
                    "{name} ({r}) {what}[{i}]: cpu {g:e}, exact {e:e}"
                );
            }
        }
    }
}

#[test]
fn gpu_matches_pytorch() {
    let Some(ctx) = ctx() else { return };
    let off = torch_off_exact();
    for case in cases() {
        for (reduction, r) in REDUCTIONS {
            let what = format!("{} ({r})", case.name);
            let opts = ElementwiseOptions {
                reduction,
                ..ElementwiseOptions::new(case.loss)
            };
            let out = ctx
                .elementwise_loss(
                    &case.input,
                    &case.target,
                    &case.dims,
                    case.weights(),
                    &xent::ElementwiseOptions {
                        loss: case.loss,
                        ..opts
                    },
                    &Default::default(),
                )
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let (loss, grad) = lookup(VALUES, &case.name, r).unwrap();
            let dims = if reduction == Reduction::None {
                case.dims.clone()
            } else {
                vec![]
            };
            assert_eq!(out.loss_dims, dims, "{what}: loss dims");
            let gpu_grad = out.grad.as_deref().unwrap();
            // Torch's cancelled values are skipped here and held exactly below.
            let skip = |kind| skipped(&off, &case.name, r, kind);
            check_gpu(&format!("{what} loss"), &out.loss, loss, &skip("loss"));
            check_gpu(&format!("{what} grad"), gpu_grad, grad, &skip("grad"));
            if let Some((loss, grad)) = lookup(EXACT, &case.name, r) {
                let none = BTreeSet::new();
                check_gpu(&format!("{what} loss (exact)"), &out.loss, loss, &none);
                check_gpu(&format!("{what} grad (exact)"), gpu_grad, grad, &none);
            }
            // And the GPU against its own twin, with the twin's magnitudes.
            let reference = cpu::elementwise_loss(
                &case.input,
                &case.target,
                &case.dims,
                case.weights(),
                &xent::ElementwiseOptions {
                    loss: case.loss,
                    ..opts
                },
            )
            .unwrap();
            Tolerance::default()
                .compare_elementwise(&out, &reference, &Tolerance::default())
                .unwrap_or_else(|e| panic!("{what}: gpu vs cpu: {e}"));
        }
    }
}

#[test]
fn empty_input_means_are_nan_and_sums_zero() {
    use ElementwiseLoss::{Bce, BceWithLogits, Huber, Mse, SmoothL1, L1};
    let losses = [
        BceWithLogits,
        Bce,
        Mse,
        L1,
        SmoothL1 { beta: 1.0 },
        Huber { delta: 1.0 },
    ];
    let run_cpu = |loss, reduction| {
        cpu::elementwise_loss(
            &[],
            &[],
            &[0, 3],
            LossWeights::default(),
            &xent::ElementwiseOptions {
                loss,
                ..ElementwiseOptions {
                    reduction,
                    ..ElementwiseOptions::new(ElementwiseLoss::Mse)
                }
            },
        )
        .unwrap()
    };
    for (loss, &(name, mean, sum)) in losses.into_iter().zip(EMPTY) {
        assert_eq!(format!("{loss:?}").split(' ').next(), Some(name));
        // PyTorch: the mean of nothing is NaN, the sum 0.
        assert!(mean.is_nan() && sum == 0.0, "{name}: torch {mean} {sum}");
        let m = run_cpu(loss, Reduction::Mean);
        assert!(m.loss.len() == 1 && m.loss[0].is_nan(), "{name} cpu mean");
        assert_eq!(m.grad.as_deref(), Some(&[][..]), "{name} cpu mean grad");
        let s = run_cpu(loss, Reduction::Sum);
        assert_eq!(s.loss, vec![0.0], "{name} cpu sum");
    }
    let Some(ctx) = ctx() else { return };
    for (loss, &(name, _, _)) in losses.into_iter().zip(EMPTY) {
        let run = |reduction| {
            ctx.elementwise_loss::<f32>(
                &[],
                &[],
                &[0, 3],
                LossWeights::default(),
                &xent::ElementwiseOptions {
                    loss,
                    ..ElementwiseOptions {
                        reduction,
                        ..ElementwiseOptions::new(ElementwiseLoss::Mse)
                    }
                },
                &Default::default(),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        let mean = run(Reduction::Mean);
        assert_eq!(mean.loss.len(), 1, "{name} mean");
        assert!(mean.loss[0].is_nan(), "{name} mean: {}", mean.loss[0]);
        assert!(mean.loss_dims.is_empty(), "{name} mean dims");
        assert_eq!(mean.grad.as_deref(), Some(&[][..]), "{name} mean grad");
        let sum = run(Reduction::Sum);
        assert_eq!(sum.loss, vec![0.0], "{name} sum");
        assert_eq!(sum.grad.as_deref(), Some(&[][..]), "{name} sum grad");
        let none = run(Reduction::None);
        assert!(none.loss.is_empty(), "{name} none");
        assert_eq!(none.loss_dims, vec![0, 3], "{name} none dims");
        assert_eq!(none.grad.as_deref(), Some(&[][..]), "{name} none grad");
    }
}
