//! Worked examples of the elementwise losses with values from PyTorch
//! (float64 on the f32 inputs): every loss with reductions none, mean and
//! sum on a (3, 4) batch, a (2, 3, 2) tensor and a 0-d one; the binary
//! losses' weights (the input's shape, the last axis) and `pos_weight`;
//! extreme logits; bce's clamped logarithms at 0 and 1, a tiny and a
//! subnormal probability; the regression losses at d = 0 and at |d| equal
//! to beta or delta. `tests/data/reference_elementwise.py` generates
//! `tests/data/elementwise_values.rs` (and the exact values, by mpmath, of
//! the extreme-logit cases, where PyTorch's float64 formulas cancel); the
//! inputs below are the same lists and closed forms.

mod common;
#[path = "data/elementwise_values.rs"]
mod values;

use std::collections::BTreeSet;

use common::ctx;
use values::{EMPTY, EXACT, VALUES};
use xent::{cpu, ElementwiseLoss, ElementwiseOptions, LossWeights, Reduction, Tolerance};

/// The f64 CPU twin against PyTorch's float64, relative (with the floor
/// `CPU_FLOOR`), except where PyTorch's own formula cancels (see
/// `extreme_logits_match_the_exact_values`).
const CPU_TOL: f64 = 1e-12;
/// Far below f32's normal range, so that PyTorch's 0 for the exact 3.7e-44
/// (logit ±100) passes.
const CPU_FLOOR: f64 = 1e-40;

const LOGITS: [f32; 12] = [
    1.5, -2.0, 0.25, 3.0, //
    -0.5, 0.0, 4.0, -1.25, //
    2.0, -3.5, 0.75, -0.1,
];
const PROB_TARGETS: [f32; 12] = [
    1.0, 0.0, 0.3, 1.0, //
    0.0, 1.0, 0.5, 0.0, //
    0.3, 0.7, 1.0, 0.0,
];
const PROBS: [f32; 12] = [
    0.1, 0.9, 0.5, 0.25, //
    0.75, 0.01, 0.99, 0.6, //
    0.3, 0.45, 0.2, 0.8,
];
/// x − y is 0, ±0.5, ±1, ±2 (every beta and delta below exactly), and others.
const REG_INPUT: [f32; 12] = [
    1.5, -2.0, 0.25, 3.0, //
    -0.5, 0.0, 4.0, -1.25, //
    2.0, -3.5, 0.75, -0.1,
];
const REG_TARGET: [f32; 12] = [
    1.5, -1.0, -0.25, 1.0, //
    0.0, 0.0, 2.0, 1.0, //
    0.5, -3.0, 0.8, 0.3,
];
const FULL_WEIGHT: [f32; 12] = [
    1.0, 0.5, 2.0, 0.0, //
    1.5, 1.0, 0.25, 3.0, //
    2.0, 1.0, 0.75, 0.5,
];
const LAST_WEIGHT: [f32; 4] = [0.5, 2.0, 1.0, 1.5];
const POS_WEIGHT: [f32; 4] = [3.0, 0.5, 1.0, 2.0];
const DIMS: [usize; 2] = [3, 4];
const DIMS3: [usize; 3] = [2, 3, 2];
const W3: [f32; 2] = [0.5, 2.0];
const PW3: [f32; 2] = [1.5, 0.25];
const EXTREME_LOGITS: [f32; 5] = [-100.0, -30.0, 0.0, 30.0, 100.0];
/// 0 and 1 (logarithm clamped at −100), 1e-30, the subnormal 1e-40 (whose
/// logarithm −92.1 is not clamped), 1 − 2⁻²⁴.
const EDGE_PROBS: [f32; 5] = [0.0, 1.0, 1e-30, 1e-40, 1.0 - f32::EPSILON / 2.0];
/// The rows' targets of the extreme and edge grids.
const GRID_TARGETS: [f32; 3] = [0.0, 0.3, 1.0];
const GRID_WEIGHT: [f32; 5] = [0.5, 2.0, 1.0, 1.5, 3.0];
const GRID_POS_WEIGHT: [f32; 5] = [2.0, 0.5, 3.0, 1.5, 0.25];
const REDUCTIONS: [(Reduction, &str); 3] = [
    (Reduction::None, "none"),
    (Reduction::Mean, "mean"),
    (Reduction::Sum, "sum"),
];

/// The (2, 3, 2) closed forms: regression input, regression target, binary
/// targets in [0, 1], probabilities in (0, 1).
fn closed3(f: impl Fn(f64) -> f64) -> Vec<f32> {
    (0..12).map(|i| f(f64::from(i)) as f32).collect()
}
fn x3() -> Vec<f32> {
    closed3(|i| (0.9 * i).sin() * 2.5)
}
fn y3() -> Vec<f32> {
    closed3(|i| (0.4 * i).cos() * 1.5)
}
fn t3() -> Vec<f32> {
    closed3(|i| ((0.4 * i).cos() + 1.0) / 2.0)
}
fn p3() -> Vec<f32> {
    closed3(|i| ((0.9 * i).sin() + 1.1) / 2.2)
}

/// `row` once per target, and each row's target.
fn grid(row: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let input = GRID_TARGETS
        .iter()
        .flat_map(|_| row.iter().copied())
        .collect();
    let target = GRID_TARGETS
        .iter()
        .flat_map(|&t| std::iter::repeat_n(t, row.len()))
        .collect();
    (input, target)
}

struct Case {
    name: String,
    loss: ElementwiseLoss,
    dims: Vec<usize>,
    input: Vec<f32>,
    target: Vec<f32>,
    weight: Option<Vec<f32>>,
    pos_weight: Option<Vec<f32>>,
}

impl Case {
    fn new(
        name: &str,
        loss: ElementwiseLoss,
        dims: &[usize],
        input: &[f32],
        target: &[f32],
    ) -> Self {
        Self {
            name: name.to_string(),
            loss,
            dims: dims.to_vec(),
            input: input.to_vec(),
            target: target.to_vec(),
            weight: None,
            pos_weight: None,
        }
    }
    fn weight(mut self, w: &[f32]) -> Self {
        self.weight = Some(w.to_vec());
        self
    }
    fn pos_weight(mut self, pw: &[f32]) -> Self {
        self.pos_weight = Some(pw.to_vec());
        self
    }
    fn weights(&self) -> LossWeights<'_> {
        LossWeights {
            weight: self.weight.as_deref(),
            pos_weight: self.pos_weight.as_deref(),
        }
    }
}

/// The script's case list, by the same names.
fn cases() -> Vec<Case> {
    use ElementwiseLoss::{Bce, BceWithLogits, Huber, SmoothL1, L1};
    let (ex_x, ex_y) = grid(&EXTREME_LOGITS);
    let (edge_x, edge_y) = grid(&EDGE_PROBS);
    let (x3, y3, t3, p3) = (x3(), y3(), t3(), p3());
    let mut cases = vec![
        Case::new("bcel batch", BceWithLogits, &DIMS, &LOGITS, &PROB_TARGETS),
        Case::new(
            "bcel batch, full weight",
            BceWithLogits,
            &DIMS,
            &LOGITS,
            &PROB_TARGETS,
        )
        .weight(&FULL_WEIGHT),
        Case::new(
            "bcel batch, pos_weight",
            BceWithLogits,
            &DIMS,
            &LOGITS,
            &PROB_TARGETS,
        )
        .pos_weight(&POS_WEIGHT),
        Case::new(
            "bcel batch, last-axis weight and pos_weight",
            BceWithLogits,
            &DIMS,
            &LOGITS,
            &PROB_TARGETS,
        )
        .weight(&LAST_WEIGHT)
        .pos_weight(&POS_WEIGHT),
        Case::new(
            "bcel 3-d, last-axis weight and pos_weight",
            BceWithLogits,
            &DIMS3,
            &x3,
            &t3,
        )
        .weight(&W3)
        .pos_weight(&PW3),
        Case::new(
            "bcel 0-d, weight and pos_weight",
            BceWithLogits,
            &[],
            &[-1.75],
            &[0.3],
        )
        .weight(&[2.5])
        .pos_weight(&[4.0]),
        Case::new("bcel extreme logits", BceWithLogits, &[3, 5], &ex_x, &ex_y),
        Case::new(
            "bcel extreme logits, last-axis weight and pos_weight",
            BceWithLogits,
            &[3, 5],
            &ex_x,
            &ex_y,
        )
        .weight(&GRID_WEIGHT)
        .pos_weight(&GRID_POS_WEIGHT),
        Case::new("bce batch", Bce, &DIMS, &PROBS, &PROB_TARGETS),
        Case::new("bce batch, full weight", Bce, &DIMS, &PROBS, &PROB_TARGETS).weight(&FULL_WEIGHT),
        Case::new(
            "bce batch, last-axis weight",
            Bce,
            &DIMS,
            &PROBS,
            &PROB_TARGETS,
        )
        .weight(&LAST_WEIGHT),
        Case::new("bce 3-d, last-axis weight", Bce, &DIMS3, &p3, &t3).weight(&W3),
        Case::new("bce 0-d, weight", Bce, &[], &[0.625], &[0.3]).weight(&[1.5]),
        Case::new("bce edges", Bce, &[3, 5], &edge_x, &edge_y),
        Case::new(
            "bce edges, last-axis weight",
            Bce,
            &[3, 5],
            &edge_x,
            &edge_y,
        )
        .weight(&GRID_WEIGHT),
    ];
    let regression = [
        ("mse", ElementwiseLoss::Mse),
        ("l1", L1),
        ("smooth_l1", SmoothL1 { beta: 1.0 }),
        ("smooth_l1_beta0", SmoothL1 { beta: 0.0 }),
        ("smooth_l1_beta0.5", SmoothL1 { beta: 0.5 }),
        ("huber", Huber { delta: 1.0 }),
        ("huber_delta0.5", Huber { delta: 0.5 }),
        ("huber_delta2", Huber { delta: 2.0 }),
    ];
    for (tag, loss) in regression {
        cases.extend([
            Case::new(
                &format!("{tag} batch"),
                loss,
                &DIMS,
                &REG_INPUT,
                &REG_TARGET,
            ),
            Case::new(&format!("{tag} 3-d"), loss, &DIMS3, &x3, &y3),
            Case::new(&format!("{tag} 0-d"), loss, &[], &[1.25], &[-0.5]),
        ]);
    }
    cases
}

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
