//! Elementwise edge cases: empty inputs, the tolerance of a difference of
//! large values, NaN and infinite differences (PyTorch's gradients),
//! bce-with-logits at infinite inputs (PyTorch's values), and
//! subnormal differences.

use crate::common::ctx;
use xent::{cpu, ElementwiseLoss, ElementwiseOptions, Reduction, Tolerance};

#[test]
fn an_empty_input_has_a_nan_mean_and_a_zero_sum() {
    let Some(ctx) = ctx() else { return };
    for loss in ElementwiseLoss::ALL {
        let mean = ctx
            .elementwise_loss::<f32>(
                &[],
                &[],
                &[0, 3],
                Default::default(),
                &xent::ElementwiseOptions::new(loss),
                &Default::default(),
            )
            .unwrap();
        assert!(
            mean.loss[0].is_nan() && mean.grad == Some(vec![]),
            "{loss:?}: {mean:?}"
        );
        let opts = ElementwiseOptions {
            reduction: Reduction::Sum,
            ..ElementwiseOptions::new(ElementwiseLoss::Mse)
        };
        let sum = ctx
            .elementwise_loss::<f32>(
                &[],
                &[],
                &[0],
                Default::default(),
                &xent::ElementwiseOptions { loss, ..opts },
                &Default::default(),
            )
            .unwrap();
        assert_eq!(sum.loss, vec![0.0], "{loss:?}");
    }
}

#[test]
fn the_tolerance_of_a_difference_scales_with_the_difference() {
    // x and y are exact f32 values and the GPU's x − y is rounded once, so
    // a difference of large values is as exact as any other number: wrong
    // values near it must fail (they passed when the magnitude was |x| + |y|).
    let sum = ElementwiseOptions {
        reduction: Reduction::Sum,
        ..ElementwiseOptions::new(ElementwiseLoss::Mse)
    };
    let cases: [(ElementwiseLoss, f32, f32, f32, f32); 5] = [
        (ElementwiseLoss::Mse, 1000.0, 999.0, 300.0, 2.0),
        (ElementwiseLoss::Mse, 1000.0, 1000.0, 399.0, 0.39),
        (ElementwiseLoss::L1, 1000.0, 999.0, 1.19, 1.0),
        (
            ElementwiseLoss::Huber { delta: 1.0 },
            1000.0,
            999.5,
            0.2249,
            0.5,
        ),
        (ElementwiseLoss::Bce, 0.999, 0.998, 0.0, 1.2),
    ];
    for (loss, x, y, bad_loss, bad_grad) in cases {
        let want = cpu::elementwise_loss(
            &[x],
            &[y],
            &[1],
            Default::default(),
            &xent::ElementwiseOptions { loss, ..sum },
        )
        .unwrap();
        let right = xent::ElementwiseOutput {
            loss: vec![want.loss[0] as f32],
            loss_dims: vec![],
            grad: Some(vec![want.grad.as_ref().unwrap()[0] as f32]),
            magnitude: None,
        };
        let tol = Tolerance::default();
        tol.compare_elementwise(&right, &want, &tol).unwrap();
        let wrong_loss = xent::ElementwiseOutput {
            loss: vec![bad_loss],
            ..right.clone()
        };
        let wrong_grad = xent::ElementwiseOutput {
            grad: Some(vec![bad_grad]),
            ..right.clone()
        };
        if loss != ElementwiseLoss::Bce {
            assert!(
                tol.compare_elementwise(&wrong_loss, &want, &tol).is_err(),
                "{loss:?} loss {bad_loss}"
            );
        }
        if bad_grad != right.grad.as_ref().unwrap()[0] {
            assert!(
                tol.compare_elementwise(&wrong_grad, &want, &tol).is_err(),
                "{loss:?} grad {bad_grad}"
            );
        }
    }
}

#[test]
fn nan_and_infinite_differences_give_pytorchs_gradients() {
    // PyTorch 2.15, float32, one element each, reduction sum:
    // x = [nan, inf, 1, 0], y = [0, inf, nan, 0]: l1 and smooth_l1 with
    // beta 0 give gradients [0, 0, 0, 0]; smooth_l1 with beta 1, huber and
    // mse [nan, nan, nan, 0]; every loss [nan, nan, nan, 0].
    let Some(ctx) = ctx() else { return };
    let x = [f32::NAN, f32::INFINITY, 1.0, 0.0];
    let y = [0.0, f32::INFINITY, f32::NAN, 0.0];
    let opts = ElementwiseOptions {
        reduction: Reduction::None,
        ..ElementwiseOptions::new(ElementwiseLoss::Mse)
    };
    for (loss, nan_grad) in [
        (ElementwiseLoss::L1, false),
        (ElementwiseLoss::SmoothL1 { beta: 0.0 }, false),
        (ElementwiseLoss::SmoothL1 { beta: 1.0 }, true),
        (ElementwiseLoss::Huber { delta: 1.0 }, true),
        (ElementwiseLoss::Mse, true),
    ] {
        let gpu = ctx
            .elementwise_loss(
                &x,
                &y,
                &[4],
                Default::default(),
                &xent::ElementwiseOptions { loss, ..opts },
                &Default::default(),
            )
            .unwrap();
        let cpu = cpu::elementwise_loss(
            &x,
            &y,
            &[4],
            Default::default(),
            &xent::ElementwiseOptions { loss, ..opts },
        )
        .unwrap();
        let g = gpu.grad.unwrap();
        let c = cpu.grad.unwrap();
        for i in 0..3 {
            assert!(
                gpu.loss[i].is_nan() && cpu.loss[i].is_nan(),
                "{loss:?} loss {i}"
            );
            assert_eq!(g[i].is_nan(), nan_grad, "{loss:?} gpu grad {i}: {}", g[i]);
            assert_eq!(c[i].is_nan(), nan_grad, "{loss:?} cpu grad {i}: {}", c[i]);
            if !nan_grad {
                assert!(g[i] == 0.0 && c[i] == 0.0, "{loss:?} grad {i}");
            }
        }
        assert!(gpu.loss[3] == 0.0 && g[3] == 0.0, "{loss:?}");
    }
}

#[test]
fn subnormal_differences_keep_their_sign() {
    // A device that flushes subnormals would see 1e-40 − 2e-40 as 0; the
    // sign comes from the values' bits.
    let Some(ctx) = ctx() else { return };
    let (x, y) = (
        [1e-40f32, 2e-40, -1e-45, 0.0],
        [2e-40f32, 1e-40, 1e-45, -0.0],
    );
    let opts = ElementwiseOptions {
        reduction: Reduction::Sum,
        ..ElementwiseOptions::new(ElementwiseLoss::Mse)
    };
    let out = ctx
        .elementwise_loss(
            &x,
            &y,
            &[4],
            Default::default(),
            &xent::ElementwiseOptions {
                loss: ElementwiseLoss::L1,
                ..opts
            },
            &Default::default(),
        )
        .unwrap();
    assert_eq!(out.grad, Some(vec![-1.0, 1.0, -1.0, 0.0]));
}

#[test]
fn bce_with_logits_at_infinite_inputs_gives_pytorchs_values() {
    // PyTorch's loss, (1 − y)·x − l·log_sigmoid(x) (l = pw·y + 1 − y; aten's
    // binary_cross_entropy_with_logits), with log_sigmoid(−∞) = −∞ and
    // log_sigmoid(+∞) = 0: NaN at −∞ for every y (−∞ + ∞, or 0·∞), +∞ at +∞
    // for y < 1 and NaN for y = 1 (0·∞). Its gradient σ(x)·l − pw·y: −pw·y
    // at −∞, l − pw·y = 1 − y at +∞.
    let Some(ctx) = ctx() else { return };
    let inf = f32::INFINITY;
    let x = [-inf, -inf, -inf, inf, inf, inf];
    let y = [0.0, 0.5, 1.0, 0.0, 0.5, 1.0];
    let opts = ElementwiseOptions {
        reduction: Reduction::None,
        ..ElementwiseOptions::new(ElementwiseLoss::BceWithLogits)
    };
    let want_loss = [f32::NAN, f32::NAN, f32::NAN, inf, inf, f32::NAN];
    let same = |a: f64, b: f32| (a.is_nan() && b.is_nan()) || a == f64::from(b);
    for pw in [1.0f32, 2.0] {
        let pos_weight = [pw; 6];
        let weights = xent::LossWeights {
            pos_weight: Some(&pos_weight),
            ..Default::default()
        };
        let want_grad: Vec<f32> = y
            .iter()
            .enumerate()
            .map(|(i, &y)| if i < 3 { -pw * y } else { 1.0 - y })
            .collect();
        let gpu = ctx
            .elementwise_loss(&x, &y, &[6], weights, &opts, &Default::default())
            .unwrap();
        let cpu = cpu::elementwise_loss(&x, &y, &[6], weights, &opts).unwrap();
        let (g, c) = (gpu.grad.unwrap(), cpu.grad.unwrap());
        for i in 0..6 {
            let what = format!("pw {pw}, x {}, y {}", x[i], y[i]);
            assert!(
                same(f64::from(gpu.loss[i]), want_loss[i]),
                "gpu loss, {what}"
            );
            assert!(same(cpu.loss[i], want_loss[i]), "cpu loss, {what}");
            assert_eq!(g[i], want_grad[i], "gpu grad, {what}");
            assert_eq!(c[i], f64::from(want_grad[i]), "cpu grad, {what}");
        }
    }
}
