//! The CPU path's cross-entropy gradients against central finite
//! differences in f64.

use crate::common::generators::{reduction, smoothing};
use crate::common::{Rng, FD_STEP as H, FD_TOL};
use proptest::prelude::*;
use xent::{cpu, CrossEntropyOptions, Reduction};

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
        reduction in reduction(),
        label_smoothing in smoothing(),
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
