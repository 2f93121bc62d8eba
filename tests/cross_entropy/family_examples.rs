//! Worked examples of the loss family with values from PyTorch (float64):
//! a segmentation map with ignore label 255, soft targets, and the
//! log-probability and probability input kinds. `tests/data/reference_family.py`
//! generates `tests/data/family_values.rs`.

#[path = "../data/family_values.rs"]
mod values;

use crate::common::{assert_close, ctx, CPU_TOL, GPU_TOL, WORKED_DIMS, WORKED_LOGITS};
use values::*;
use xent::{cpu, CrossEntropyOptions, InputKind, Reduction, Targets, Tolerance, Weights};

const MAP_DIMS: [usize; 4] = [2, 3, 2, 3];
const MASK: [u8; 12] = [0, 2, 255, 1, 1, 0, 2, 255, 255, 0, 1, 2];
const MAP_WEIGHTS: [f32; 3] = [0.5, 2.0, 1.5];

fn map_logits() -> Vec<f32> {
    (0..36)
        .map(|i| ((0.7 * f64::from(i)).sin() * 3.0) as f32)
        .collect()
}

fn map_logits64() -> Vec<f64> {
    (0..36).map(|i| (0.7 * f64::from(i)).sin() * 3.0).collect()
}

fn check_cpu(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= CPU_TOL, "{what}[{i}]: {g} vs {w}");
    }
}

struct MapCase {
    name: &'static str,
    opts: CrossEntropyOptions,
    weighted: bool,
    loss: &'static [f64],
    grad: &'static [f64],
}

fn map_cases() -> Vec<MapCase> {
    let base = CrossEntropyOptions {
        ignore_index: 255,
        ..Default::default()
    };
    vec![
        MapCase {
            name: "map mean",
            opts: base.clone(),
            weighted: false,
            loss: &MAP_MEAN_LOSS,
            grad: &MAP_MEAN_GRAD,
        },
        MapCase {
            name: "map weighted",
            opts: base.clone(),
            weighted: true,
            loss: &MAP_WEIGHTED_LOSS,
            grad: &MAP_WEIGHTED_GRAD,
        },
        MapCase {
            name: "map none (loss map)",
            opts: CrossEntropyOptions {
                reduction: Reduction::None,
                ..base.clone()
            },
            weighted: false,
            loss: &MAP_NONE_LOSS,
            grad: &MAP_NONE_GRAD,
        },
        MapCase {
            name: "map smoothing 0.3, weighted, sum",
            opts: CrossEntropyOptions {
                reduction: Reduction::Sum,
                label_smoothing: 0.3,
                ..base
            },
            weighted: true,
            loss: &MAP_SMOOTH_SUM_LOSS,
            grad: &MAP_SMOOTH_SUM_GRAD,
        },
    ]
}

#[test]
fn segmentation_map_with_ignore_255_matches_pytorch() {
    let mask64: Vec<i64> = MASK.iter().map(|&m| i64::from(m)).collect();
    let w64: Vec<f64> = MAP_WEIGHTS.iter().map(|&w| f64::from(w)).collect();
    for case in map_cases() {
        let weights = Weights {
            class: case.weighted.then_some(&w64[..]),
            sample: None,
        };
        let out = cpu::cross_entropy_with(
            &map_logits64(),
            &MAP_DIMS,
            Targets::I64(&mask64),
            weights,
            &case.opts,
        )
        .unwrap();
        check_cpu(case.name, &out.loss, case.loss);
        check_cpu(case.name, out.grad.as_deref().unwrap(), case.grad);
        if case.opts.reduction == Reduction::None {
            assert_eq!(out.loss_dims, vec![2, 2, 3]);
        }
    }
    let Some(ctx) = ctx() else { return };
    let logits = map_logits();
    for case in map_cases() {
        let weights = Weights {
            class: case.weighted.then_some(&MAP_WEIGHTS[..]),
            sample: None,
        };
        // The u8 mask goes up as it is; i64 and i32 masks must agree with it.
        let u8_out = ctx
            .cross_entropy_with(
                &logits,
                &MAP_DIMS,
                Targets::U8(&MASK),
                weights,
                &case.opts,
                &Default::default(),
            )
            .unwrap();
        assert_close(case.name, &u8_out.loss, case.loss, GPU_TOL);
        assert_close(
            case.name,
            u8_out.grad.as_deref().unwrap(),
            case.grad,
            GPU_TOL,
        );
        let mask32: Vec<i32> = MASK.iter().map(|&m| i32::from(m)).collect();
        let i32_out = ctx
            .cross_entropy_with(
                &logits,
                &MAP_DIMS,
                Targets::I32(&mask32),
                weights,
                &case.opts,
                &Default::default(),
            )
            .unwrap();
        assert_eq!(u8_out, i32_out, "{}: u8 and i32 masks differ", case.name);
    }
}

/// Name, options, weighted, PyTorch's loss and gradient.
type SoftCase = (
    &'static str,
    CrossEntropyOptions,
    bool,
    &'static [f64],
    &'static [f64],
);

#[test]
fn soft_targets_match_pytorch() {
    let logits = [
        1.0f32, -2.0, 0.5, 3.0, 0.0, 0.0, 0.0, 0.0, -1.0, 4.0, 2.0, -3.0,
    ];
    let probs = [
        0.1f32, 0.2, 0.3, 0.4, 1.0, 0.0, 0.0, 0.0, 0.25, 0.25, 0.25, 0.25,
    ];
    let weights = [1.0f32, 0.5, 2.0, 1.5];
    let cases: [SoftCase; 3] = [
        (
            "soft mean",
            CrossEntropyOptions::default(),
            false,
            &SOFT_MEAN_LOSS,
            &SOFT_MEAN_GRAD,
        ),
        (
            "soft smoothing 0.2, weighted",
            CrossEntropyOptions {
                label_smoothing: 0.2,
                ..Default::default()
            },
            true,
            &SOFT_SMOOTH_WEIGHTED_LOSS,
            &SOFT_SMOOTH_WEIGHTED_GRAD,
        ),
        (
            "soft none",
            CrossEntropyOptions {
                reduction: Reduction::None,
                ..Default::default()
            },
            false,
            &SOFT_NONE_LOSS,
            &SOFT_NONE_GRAD,
        ),
    ];
    // f32 inputs like 0.1 are not the f64 0.1 PyTorch saw: compare the CPU path at f32 precision.
    for (name, opts, weighted, loss, grad) in &cases {
        let w = weighted.then_some(&weights[..]);
        let out = cpu::cross_entropy_soft(&logits, &[3, 4], &probs, w, opts).unwrap();
        let as32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        assert_close(name, &as32(&out.loss), loss, 1e-6);
        assert_close(name, &as32(out.grad.as_deref().unwrap()), grad, 1e-6);
    }
    let Some(ctx) = ctx() else { return };
    for (name, opts, weighted, loss, grad) in &cases {
        let w = weighted.then_some(&weights[..]);
        let out = ctx
            .cross_entropy_soft(&logits, &[3, 4], &probs, w, opts, &Default::default())
            .unwrap();
        assert_close(name, &out.loss, loss, GPU_TOL);
        assert_close(name, out.grad.as_deref().unwrap(), grad, GPU_TOL);
    }
}

#[test]
fn one_hot_soft_targets_equal_class_indices() {
    let Some(ctx) = ctx() else { return };
    let mut onehot = vec![0.0f32; 15];
    for (row, t) in [1usize, 3, 2].into_iter().enumerate() {
        onehot[row * 5 + t] = 1.0;
    }
    let soft = ctx
        .cross_entropy_soft(
            &WORKED_LOGITS,
            &WORKED_DIMS,
            &onehot,
            None,
            &Default::default(),
            &Default::default(),
        )
        .unwrap();
    assert_eq!(format!("{:.4}", soft.loss[0]), "3.7925");
}

#[test]
fn log_prob_and_prob_inputs_match_pytorch_nll_loss() {
    let weights = [1.0f32, 2.0, 3.0, 4.0, 5.0];
    let w64: Vec<f64> = weights.iter().map(|&w| f64::from(w)).collect();
    for (kind, input, loss, grad) in [
        (
            InputKind::LogProbs,
            &LOG_PROBS_INPUT,
            &LOG_PROBS_LOSS,
            &LOG_PROBS_GRAD,
        ),
        (InputKind::Probs, &PROBS_INPUT, &PROBS_LOSS, &PROBS_GRAD),
    ] {
        let opts = CrossEntropyOptions {
            input: kind,
            ..Default::default()
        };
        let out = cpu::cross_entropy_with(
            &input[..],
            &WORKED_DIMS,
            Targets::I64(&[1, 3, 2]),
            Weights {
                class: Some(&w64),
                sample: None,
            },
            &opts,
        )
        .unwrap();
        check_cpu("cpu", &out.loss, loss);
        check_cpu("cpu", out.grad.as_deref().unwrap(), grad);
        let Some(ctx) = ctx() else { continue };
        let input32: Vec<f32> = input.iter().map(|&v| v as f32).collect();
        let out = ctx
            .cross_entropy(
                &input32,
                &WORKED_DIMS,
                &[1i64, 3, 2],
                Some(&weights),
                &opts,
                &Default::default(),
            )
            .unwrap();
        assert_close("loss", &out.loss, loss, GPU_TOL);
        // ∂/∂p = -w/p: up to 1e6 for p ~ 1e-6, so held relatively.
        Tolerance::default()
            .compare("grad", out.grad.as_deref().unwrap(), grad)
            .unwrap();
    }
}

#[test]
fn zero_and_negative_probabilities_follow_pytorch() {
    // ln 0 = -inf at the target: loss +inf, gradient -inf there; a negative
    // probability gives NaN (PyTorch's torch.log(p) then nll_loss).
    let opts = CrossEntropyOptions {
        input: InputKind::Probs,
        reduction: Reduction::None,
        ..Default::default()
    };
    let input = [0.0f32, 1.0, -0.5, 1.5];
    let cpu = cpu::cross_entropy(&input, &[2, 2], &[0, 0], None, &opts).unwrap();
    assert_eq!(cpu.loss[0], f64::INFINITY);
    assert!(cpu.loss[1].is_nan());
    assert_eq!(cpu.grad.as_ref().unwrap()[0], f64::NEG_INFINITY);
    let Some(ctx) = ctx() else { return };
    let gpu = ctx
        .cross_entropy(
            &input,
            &[2, 2],
            &[0i64, 0],
            None,
            &opts,
            &Default::default(),
        )
        .unwrap();
    assert_eq!(gpu.loss[0], f32::INFINITY);
    assert!(gpu.loss[1].is_nan());
    assert_eq!(gpu.grad.as_ref().unwrap()[0], f32::NEG_INFINITY);
}

#[test]
fn beyond_pytorch_options_on_the_worked_example() {
    // z-loss: mean of (nll + z lse^2); lse of each row of the note's logits.
    let lse = [10.000467167833863f64, 0.3554924912175223, 8.021476258699734];
    let nll = [8.000467167833863f64, 3.355492491217522, 0.02147625869973374];
    let z = 1e-2;
    let want: f64 = nll
        .iter()
        .zip(&lse)
        .map(|(n, l)| n + z * l * l)
        .sum::<f64>()
        / 3.0;
    let opts = CrossEntropyOptions {
        z_loss: z,
        ..Default::default()
    };
    let returns = xent::Returns {
        lse: true,
        correct: true,
        ..Default::default()
    };
    let cpu = cpu::cross_entropy(&WORKED_LOGITS, &WORKED_DIMS, &[1, 3, 2], None, &opts).unwrap();
    assert!((cpu.loss[0] - want).abs() < 1e-12);
    check_cpu("lse", cpu.lse.as_deref().unwrap(), &lse);
    // argmax rows: 0, 2, 2 against targets 1, 3, 2: one correct.
    assert_eq!(cpu.correct, Some(1));
    let Some(ctx) = ctx() else { return };
    let gpu = ctx
        .cross_entropy(
            &WORKED_LOGITS,
            &WORKED_DIMS,
            &[1i64, 3, 2],
            None,
            &opts,
            &returns,
        )
        .unwrap();
    assert_close("z-loss", &gpu.loss, &[want], GPU_TOL);
    assert_close("lse", gpu.lse.as_deref().unwrap(), &lse, GPU_TOL);
    assert_eq!(gpu.correct, Some(1));
    // Sample weights multiply the class weight, in the loss and in the mean's denominator.
    let sample = [2.0f32, 0.0, 1.0];
    let out = ctx
        .cross_entropy_with(
            &WORKED_LOGITS,
            &WORKED_DIMS,
            Targets::I64(&[1, 3, 2]),
            Weights {
                class: None,
                sample: Some(&sample),
            },
            &Default::default(),
            &Default::default(),
        )
        .unwrap();
    assert_close(
        "sample weights",
        &out.loss,
        &[(2.0 * nll[0] + nll[2]) / 3.0],
        GPU_TOL,
    );
    // An all-ignored mean: NaN by default, 0 when asked.
    let zero = CrossEntropyOptions {
        empty_mean: xent::EmptyMean::Zero,
        ..Default::default()
    };
    let out = ctx
        .cross_entropy(
            &WORKED_LOGITS,
            &WORKED_DIMS,
            &[-100i64; 3],
            None,
            &zero,
            &returns,
        )
        .unwrap();
    assert_eq!(out.loss[0], 0.0);
}
