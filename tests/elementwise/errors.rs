//! Bad elementwise calls: the same typed error on the GPU and the CPU
//! path (the losses' parameters, the weights' lengths, bce's inputs and
//! targets outside [0, 1]).

use crate::common::ctx;
use xent::{cpu, Context, ElementwiseLoss, ElementwiseOptions, Error, LossWeights};

#[test]
fn bad_calls_are_the_same_typed_error_on_both_paths() {
    let Some(ctx) = ctx() else { return };
    bad_parameters_and_lengths_name_what_is_wrong(ctx);
    bce_values_outside_0_1_name_the_input_or_target(ctx);
    bce_inputs_just_outside_0_1_are_bad(ctx);
}

/// The error of the same bad call on the GPU and on the CPU path.
fn both_errors(
    ctx: &Context,
    input: &[f32],
    target: &[f32],
    lw: LossWeights<'_>,
    opts: &ElementwiseOptions,
) -> (Error, Error) {
    let gpu = ctx
        .elementwise_loss(input, target, &[2, 3], lw, opts, &Default::default())
        .unwrap_err();
    let cpu = cpu::elementwise_loss(input, target, &[2, 3], lw, opts).unwrap_err();
    (gpu, cpu)
}

/// The losses' parameters and the weights' and input's lengths.
fn bad_parameters_and_lengths_name_what_is_wrong(ctx: &Context) {
    let x = [0.5f32; 6];
    let w3 = [1.0f32; 3];
    let w4 = [1.0f32; 4];
    let cases: Vec<(ElementwiseLoss, &[f32], LossWeights<'_>, &str)> = vec![
        (
            ElementwiseLoss::SmoothL1 { beta: -1.0 },
            &x,
            LossWeights::default(),
            "beta",
        ),
        (
            ElementwiseLoss::SmoothL1 { beta: f64::NAN },
            &x,
            LossWeights::default(),
            "beta",
        ),
        (
            ElementwiseLoss::Huber { delta: 0.0 },
            &x,
            LossWeights::default(),
            "delta",
        ),
        (
            ElementwiseLoss::Mse,
            &x,
            LossWeights {
                weight: Some(&w3),
                pos_weight: None,
            },
            "weight",
        ),
        (
            ElementwiseLoss::Bce,
            &x,
            LossWeights {
                weight: None,
                pos_weight: Some(&w3),
            },
            "pos_weight",
        ),
        (
            ElementwiseLoss::Bce,
            &x,
            LossWeights {
                weight: Some(&w4),
                pos_weight: None,
            },
            "weight has 4",
        ),
        (
            ElementwiseLoss::BceWithLogits,
            &x,
            LossWeights {
                weight: None,
                pos_weight: Some(&w4),
            },
            "pos_weight has 4",
        ),
        (
            ElementwiseLoss::Mse,
            &x[..5],
            LossWeights::default(),
            "input has 5",
        ),
    ];
    for (loss, input, lw, names) in cases {
        let opts = ElementwiseOptions::new(ElementwiseLoss::Mse);
        let opts = xent::ElementwiseOptions { loss, ..opts };
        let (gpu, cpu) = both_errors(ctx, input, &[0.0; 6], lw, &opts);
        assert_eq!(gpu.to_string(), cpu.to_string());
        assert!(gpu.to_string().contains(names), "{names}: {gpu}");
    }
}

/// A bce target outside [0, 1] is an error too, as in PyTorch; where both
/// of an element's values are bad, its input is named.
fn bce_values_outside_0_1_name_the_input_or_target(ctx: &Context) {
    for (x5, y, what, value, count) in [
        (0.5f32, [0.0f32, 1.0, 1.5, -0.5, 0.0, 1.0], "target", 1.5, 2),
        (2.0, [0.0, 1.0, 0.5, 0.5, 0.0, 1.0], "input", 2.0, 1),
        (
            0.5,
            [0.0, 1.0, 0.5, 0.5, 0.0, f32::NAN],
            "target",
            f64::NAN,
            1,
        ),
    ] {
        let x = [0.25f32, 0.5, 0.75, 1.0, 0.0, x5];
        let mut y = y;
        if what == "input" {
            y[5] = -3.0;
        }
        let opts = ElementwiseOptions::new(ElementwiseLoss::Mse);
        let opts = xent::ElementwiseOptions {
            loss: ElementwiseLoss::Bce,
            ..opts
        };
        let (gpu, cpu) = both_errors(ctx, &x, &y, Default::default(), &opts);
        assert_eq!(gpu.to_string(), cpu.to_string());
        assert!(
            matches!(gpu, Error::InputOutOfRange { what: w, value: v, count: c, .. }
                if w == what && c == count && (v == value || (v.is_nan() && value.is_nan()))),
            "{gpu}"
        );
    }
}

/// NaN and values just outside [0, 1] are bad bce inputs; -0 and 1 are not.
fn bce_inputs_just_outside_0_1_are_bad(ctx: &Context) {
    for (bad, at) in [(f32::NAN, 3), (1.000_000_1, 0), (-1e-45, 5)] {
        let mut x = [0.5f32, -0.0, 1.0, 0.0, 0.25, 0.75];
        x[at] = bad;
        let opts = xent::ElementwiseOptions::new(ElementwiseLoss::Bce);
        let (gpu, cpu) = both_errors(ctx, &x, &[1.0; 6], Default::default(), &opts);
        assert_eq!(gpu.to_string(), cpu.to_string());
        assert!(
            matches!(gpu, Error::InputOutOfRange { what: "input", ref position, count: 1, .. } if position == &[at / 3, at % 3]),
            "{gpu}"
        );
    }
}
