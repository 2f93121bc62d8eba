//! The CPU path's softmax and log-softmax backward (vector-Jacobian
//! products) and the full Jacobian against central finite differences in
//! f64.

use crate::common::{Rng, FD_STEP as H, FD_TOL};
use proptest::prelude::*;
use xent::cpu;

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
