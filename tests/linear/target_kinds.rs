//! The fused linear cross-entropy's target kinds and shapes against
//! PyTorch's `F.linear_cross_entropy` (`tests/data/reference_linear_targets.py`):
//! probability targets, an unbatched hidden (H) with a 0-d class id or (V)
//! probabilities, (B, T, H) hidden states (PyTorch's values on the
//! flattened rows) and a temperature, on the CPU twin and the GPU.

#[path = "../data/linear_target_values.rs"]
mod values;

use super::worked_values::inputs;
use crate::common::{assert_pytorch_f64, ctx};
use values::{TargetCase, TARGET_CASES};
use xent::{
    cpu, CrossEntropyOptions, LinearCrossEntropyOptions, LinearDims, LinearOutput, Targets,
    Tolerance,
};

/// The script's probabilities, `((n·3 + v·5) mod 7) / 8` (exact in f32).
fn probabilities(n: usize, v: usize) -> Vec<f32> {
    (0..n * v)
        .map(|i| (((i / v) * 3 + (i % v) * 5) % 7) as f32 / 8.0)
        .collect()
}

/// `case`'s outputs from the twin and the GPU.
fn run(ctx: &xent::Context, case: &TargetCase) -> (LinearOutput<f64>, LinearOutput<f32>) {
    let h = *case.hidden_dims.last().unwrap();
    let dims = LinearDims::from_shapes(case.hidden_dims, &[case.v, h]).unwrap();
    let x = inputs(dims.n, h, case.v, -100, &[]);
    let probs = probabilities(dims.n, case.v);
    let targets = if case.probs {
        Targets::Probs(&probs)
    } else {
        Targets::I64(&x.targets)
    };
    let (bias, cw) = (
        case.bias.then_some(&x.bias[..]),
        case.class_weights.then_some(&x.class_weights[..]),
    );
    let opts = LinearCrossEntropyOptions {
        loss: CrossEntropyOptions {
            reduction: case.reduction.parse().unwrap(),
            label_smoothing: case.label_smoothing,
            softcap: case.softcap,
            temperature: case.temperature,
            ..Default::default()
        },
        ..Default::default()
    };
    let twin =
        cpu::linear_cross_entropy_with(&x.hidden, &x.weight, bias, targets, cw, &dims, &opts)
            .unwrap();
    let returns = xent::Returns::ROWS;
    let gpu = ctx
        .linear_cross_entropy_with(
            &x.hidden, &x.weight, bias, targets, cw, &dims, &opts, &returns,
        )
        .unwrap();
    (twin, gpu)
}

#[test]
fn target_kinds_and_shapes_match_pytorch() {
    let Some(ctx) = ctx() else { return };
    for case in TARGET_CASES {
        let leading = &case.hidden_dims[..case.hidden_dims.len() - 1];
        let none = case.reduction == "none";
        assert_eq!(
            case.loss_dims,
            if none { leading } else { &[] },
            "{}",
            case.name
        );
        let (twin, gpu) = run(ctx, case);
        let what = |output: &str| format!("{} {output}", case.name);
        assert_pytorch_f64(&what("loss"), &twin.loss, case.loss);
        assert_pytorch_f64(
            &what("grad_hidden"),
            twin.grad_hidden.as_ref().unwrap(),
            case.grad_hidden,
        );
        assert_pytorch_f64(
            &what("grad_weight"),
            twin.grad_weight.as_ref().unwrap(),
            case.grad_weight,
        );
        let grad_bias = twin.grad_bias.as_deref().unwrap_or_default();
        assert_pytorch_f64(&what("grad_bias"), grad_bias, case.grad_bias);
        assert_eq!(
            twin.argmax.as_deref(),
            Some(case.argmax),
            "{}",
            what("argmax")
        );
        let entropy = twin.entropy.as_ref().unwrap();
        assert_pytorch_f64(&what("entropy"), entropy, case.entropy);
        // The GPU against PyTorch's values, with the twin's magnitudes.
        let mut reference = twin.clone();
        reference.loss = case.loss.to_vec();
        reference.grad_hidden = Some(case.grad_hidden.to_vec());
        reference.grad_weight = Some(case.grad_weight.to_vec());
        reference.grad_bias = case.bias.then(|| case.grad_bias.to_vec());
        reference.argmax = Some(case.argmax.to_vec());
        reference.entropy = Some(case.entropy.to_vec());
        Tolerance::default()
            .compare_linear(&gpu, &reference)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    }
}
