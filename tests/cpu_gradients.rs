//! The CPU path's gradients against central finite differences in f64.

mod common;

use common::Rng;
use proptest::prelude::*;
use xent::{cpu, CrossEntropyOptions, Reduction};

/// Central differences with step h = 1e-6 on f64 logits of size ≤ 5 are
/// accurate to ~1e-9 in the loss's units; 1e-6 leaves room for curvature.
const FD_TOL: f64 = 1e-6;
const H: f64 = 1e-6;

fn scalar_loss(
    x: &[f64],
    dims: &[usize],
    targets: &[i64],
    w: Option<&[f64]>,
    opts: &CrossEntropyOptions,
) -> f64 {
    // For `none` the gradient is that of the sum of the per-target losses.
    cpu::cross_entropy(x, dims, targets, w, opts)
        .unwrap()
        .loss
        .iter()
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 60, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn cross_entropy_gradient_is_the_derivative_of_the_loss(
        n in 1usize..5,
        c in 1usize..7,
        inner in prop_oneof![Just(1usize), 2usize..4],
        seed in any::<u64>(),
        weighted in any::<bool>(),
        ignore_some in any::<bool>(),
        reduction in prop_oneof![Just(Reduction::Mean), Just(Reduction::Sum), Just(Reduction::None)],
        label_smoothing in prop_oneof![Just(0.0f64), 0.0f64..1.0],
    ) {
        let dims = if inner == 1 { vec![n, c] } else { vec![n, c, inner] };
        let mut rng = Rng(seed);
        let x: Vec<f64> = (0..n * c * inner).map(|_| f64::from(rng.uniform(-5.0, 5.0))).collect();
        let mut targets: Vec<i64> = (0..n * inner).map(|_| rng.below(c) as i64).collect();
        if ignore_some {
            targets[0] = -100;
        }
        let w: Option<Vec<f64>> = weighted.then(|| (0..c).map(|_| f64::from(rng.uniform(0.1, 3.0))).collect());
        let opts = CrossEntropyOptions { reduction, label_smoothing, ..Default::default() };
        let out = cpu::cross_entropy(&x, &dims, &targets, w.as_deref(), &opts).unwrap();
        let grad = out.grad.unwrap();
        if reduction == Reduction::Mean && targets.iter().all(|&t| t == -100) {
            return Ok(()); // NaN loss: no derivative to take
        }
        for i in 0..x.len() {
            let mut xp = x.clone();
            let mut xm = x.clone();
            xp[i] += H;
            xm[i] -= H;
            let fd = (scalar_loss(&xp, &dims, &targets, w.as_deref(), &opts)
                - scalar_loss(&xm, &dims, &targets, w.as_deref(), &opts)) / (2.0 * H);
            prop_assert!((fd - grad[i]).abs() <= FD_TOL, "element {}: analytic {} vs finite difference {}", i, grad[i], fd);
        }
    }
}

/// Finite differences of the CPU softmax / log-softmax against the CPU
/// backward (vector-Jacobian products) and the full Jacobian.
mod softmax_backward {
    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 40, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn vjp_is_the_derivative_of_dy_dot_y(
            n in 1usize..4,
            c in 1usize..7,
            inner in prop_oneof![Just(1usize), 2usize..4],
            seed in any::<u64>(),
            log in any::<bool>(),
        ) {
            let dims = [n, c, inner];
            let mut rng = Rng(seed);
            let x: Vec<f64> = (0..n * c * inner).map(|_| f64::from(rng.uniform(-4.0, 4.0))).collect();
            let dy: Vec<f64> = (0..x.len()).map(|_| f64::from(rng.uniform(-1.0, 1.0))).collect();
            let forward = |x: &[f64]| if log { cpu::log_softmax(x, &dims).unwrap() } else { cpu::softmax(x, &dims).unwrap() };
            let y = forward(&x);
            let dx = if log { cpu::log_softmax_backward(&y, &dy, &dims).unwrap() } else { cpu::softmax_backward(&y, &dy, &dims).unwrap() };
            let dot = |x: &[f64]| forward(x).iter().zip(&dy).map(|(a, b)| a * b).sum::<f64>();
            for i in 0..x.len() {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[i] += H;
                xm[i] -= H;
                let fd = (dot(&xp) - dot(&xm)) / (2.0 * H);
                prop_assert!((fd - dx[i]).abs() <= FD_TOL, "element {}: vjp {} vs finite difference {}", i, dx[i], fd);
            }
        }

        #[test]
        fn jacobian_is_the_derivative_of_softmax(c in 1usize..8, seed in any::<u64>()) {
            let mut rng = Rng(seed);
            let x: Vec<f64> = (0..c).map(|_| f64::from(rng.uniform(-4.0, 4.0))).collect();
            let y = cpu::softmax(&x, &[c]).unwrap();
            let j = cpu::softmax_jacobian(&y).unwrap();
            for col in 0..c {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[col] += H;
                xm[col] -= H;
                let (yp, ym) = (cpu::softmax(&xp, &[c]).unwrap(), cpu::softmax(&xm, &[c]).unwrap());
                for row in 0..c {
                    let fd = (yp[row] - ym[row]) / (2.0 * H);
                    prop_assert!((fd - j[row][col]).abs() <= FD_TOL, "J[{}][{}] = {} vs {}", row, col, j[row][col], fd);
                }
            }
        }
    }
}
