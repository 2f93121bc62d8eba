//! The fused linear cross-entropy against PyTorch's values
//! (`tests/data/reference_linear.py`), on the GPU and the CPU twin: every
//! option, a 50 257 vocabulary, and the softcap.

#[path = "../data/linear_values.rs"]
mod values;

use crate::common::{assert_pytorch_f64, ctx};
use values::{LinearCase, LINEAR_CASES, SOFTCAP_CASES};
use xent::{cpu, CrossEntropyOptions, LinearCrossEntropyOptions, LinearDims, Reduction, Tolerance};

/// The reference script's inputs (exact dyadic values).
pub struct Inputs {
    pub hidden: Vec<f32>,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub class_weights: Vec<f32>,
    pub targets: Vec<i64>,
}

pub fn inputs(n: usize, h: usize, v: usize, ignore_index: i64, ignored: &[usize]) -> Inputs {
    let m = |x: usize, k: usize| (x % k) as f32;
    Inputs {
        hidden: (0..n * h)
            .map(|i| (m((i / h) * 7 + (i % h) * 13, 17) - 8.0) / 8.0)
            .collect(),
        weight: (0..v * h)
            .map(|i| (m((i / h) * 5 + (i % h) * 11, 19) - 9.0) / 16.0)
            .collect(),
        bias: (0..v).map(|c| (m(c * 3, 7) - 3.0) / 4.0).collect(),
        class_weights: (0..v).map(|c| 0.5 + m(c * 7, 5) / 4.0).collect(),
        targets: (0..n)
            .map(|r| {
                if ignored.contains(&r) {
                    ignore_index
                } else {
                    ((r * 31 + 7) % v) as i64
                }
            })
            .collect(),
    }
}

fn reduction(name: &str) -> Reduction {
    name.parse().unwrap()
}

#[test]
fn pytorch_worked_values() {
    let Some(ctx) = ctx() else { return };
    for case in LINEAR_CASES {
        let (n, h, v) = (case.n, case.h, case.v);
        let x = inputs(n, h, v, case.ignore_index, case.ignored_rows);
        let dims = LinearDims { n, h, v };
        // The default budget, and one of two rows' logits (many chunks).
        // The default budget, and one of two rows of logits besides the
        // per-row scratch (a chunk per two rows).
        let plan = ctx
            .plan_linear_cross_entropy(&dims, &Default::default(), &Default::default())
            .unwrap();
        let two_rows = plan.scratch_bytes - plan.window_bytes + 16 + 8 * v as u64;
        for budget in [xent::DEFAULT_SCRATCH_BUDGET, two_rows] {
            let what = format!("{} (budget {budget})", case.name);
            let (twin, gpu) = twin_and_gpu(ctx, case, &x, budget);
            outputs_match_pytorch(case, &what, &twin, &gpu);
        }
    }
}

/// The CPU twin's and the GPU's results of `case` on its inputs `x`, with
/// the scratch `budget`.
fn twin_and_gpu(
    ctx: &xent::Context,
    case: &LinearCase,
    x: &Inputs,
    budget: u64,
) -> (xent::LinearOutput<f64>, xent::LinearOutput<f32>) {
    let dims = LinearDims {
        n: case.n,
        h: case.h,
        v: case.v,
    };
    let bias = case.bias.then_some(&x.bias[..]);
    let cw = case.class_weights.then_some(&x.class_weights[..]);
    let opts = LinearCrossEntropyOptions {
        loss: CrossEntropyOptions {
            reduction: reduction(case.reduction),
            ignore_index: case.ignore_index,
            label_smoothing: case.label_smoothing,
            z_loss: case.z_loss,
            softcap: case.softcap,
            ..Default::default()
        },
        scratch_budget: Some(budget),
        ..Default::default()
    };
    let twin = cpu::linear_cross_entropy(&x.hidden, &x.weight, bias, &x.targets, cw, &dims, &opts)
        .unwrap();
    let gpu = ctx
        .linear_cross_entropy(
            &x.hidden,
            &x.weight,
            bias,
            &x.targets,
            cw,
            &dims,
            &opts,
            &Default::default(),
        )
        .unwrap();
    (twin, gpu)
}

fn pick(values: &[f64], at: &[usize]) -> Vec<f64> {
    at.iter().map(|&i| values[i]).collect()
}

/// One output `name` of `what`: the twin's values to PyTorch's `want` in
/// f64, the GPU's `got` to them within the tolerance of the twin's
/// `magnitude`.
fn check_output(
    what: &str,
    name: &'static str,
    got: &[f32],
    (want, twin): (Vec<f64>, &[f64]),
    magnitude: Vec<f64>,
) {
    let tol = Tolerance::default();
    assert_pytorch_f64(&format!("{what} {name} (twin)"), twin, &want);
    tol.check(
        name,
        got,
        &cpu::Reference {
            flush: vec![0.0; want.len()],
            value: want,
            magnitude,
        },
    )
    .unwrap_or_else(|e| panic!("{what}: {e}"));
}

/// Every output of `case` (grad_weight and grad_bias at the sampled
/// entries), of the twin and of the GPU, against PyTorch's values.
fn outputs_match_pytorch(
    case: &LinearCase,
    what: &str,
    twin: &xent::LinearOutput<f64>,
    gpu: &xent::LinearOutput<f32>,
) {
    let (n, h) = (case.n, case.h);
    let mag = twin.magnitude.as_ref().unwrap();
    let check = |name, got: &[f32], want, twin: &[f64], magnitude| {
        check_output(what, name, got, (want, twin), magnitude)
    };
    check(
        "loss",
        &gpu.loss,
        case.loss.to_vec(),
        &twin.loss,
        mag.loss.clone(),
    );
    let all: Vec<usize> = (0..n * h).collect();
    check(
        "grad_hidden",
        gpu.grad_hidden.as_ref().unwrap(),
        case.grad_hidden.to_vec(),
        twin.grad_hidden.as_ref().unwrap(),
        pick(mag.grad_hidden.as_ref().unwrap(), &all),
    );
    let at: Vec<usize> = case
        .grad_weight_at
        .iter()
        .map(|&(c, k, _)| c * h + k)
        .collect();
    let gw = gpu.grad_weight.as_ref().unwrap();
    check(
        "grad_weight",
        &at.iter().map(|&i| gw[i]).collect::<Vec<_>>(),
        case.grad_weight_at.iter().map(|e| e.2).collect(),
        &pick(twin.grad_weight.as_ref().unwrap(), &at),
        pick(mag.grad_weight.as_ref().unwrap(), &at),
    );
    if case.bias {
        let at: Vec<usize> = case.grad_bias_at.iter().map(|e| e.0).collect();
        let gb = gpu.grad_bias.as_ref().unwrap();
        check(
            "grad_bias",
            &at.iter().map(|&i| gb[i]).collect::<Vec<_>>(),
            case.grad_bias_at.iter().map(|e| e.1).collect(),
            &pick(twin.grad_bias.as_ref().unwrap(), &at),
            pick(mag.grad_bias.as_ref().unwrap(), &at),
        );
    } else {
        assert!(gpu.grad_bias.is_none() && case.grad_bias_at.is_empty());
    }
}

#[test]
fn softcap_worked_values() {
    let Some(ctx) = ctx() else { return };
    let tol = Tolerance::default();
    let (x, dims, t) = (
        crate::common::WORKED_LOGITS,
        crate::common::WORKED_DIMS,
        crate::common::WORKED_TARGETS,
    );
    for case in SOFTCAP_CASES {
        let opts = CrossEntropyOptions {
            softcap: Some(case.softcap),
            z_loss: case.z_loss,
            label_smoothing: case.label_smoothing,
            reduction: reduction(case.reduction),
            ..Default::default()
        };
        let twin = cpu::cross_entropy(&x, &dims, &t, None, &opts).unwrap();
        let gpu = ctx
            .cross_entropy(&x, &dims, &t, None, &opts, &Default::default())
            .unwrap();
        assert_pytorch_f64(&format!("{} loss", case.name), &twin.loss, case.loss);
        // Gradients as small as 1e-14 come from 1 − tanh² near 1: absolute there.
        for (i, (&got, &want)) in twin
            .grad
            .as_ref()
            .unwrap()
            .iter()
            .zip(&case.grad)
            .enumerate()
        {
            assert!(
                (got - want).abs() <= 1e-12 * want.abs().max(1e-3),
                "{} grad[{i}]: {got} vs {want}",
                case.name
            );
        }
        let mut reference = twin.clone();
        reference.loss = case.loss.to_vec();
        reference.grad = Some(case.grad.to_vec());
        tol.compare_cross_entropy(&gpu, &reference, &tol)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    }
}
