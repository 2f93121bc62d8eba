//! Softmax and log-softmax, forward and backward, on the GPU against the
//! CPU on generated shapes (rows around the workgroup size and the wide
//! kernels' threshold, K-dimensional inputs), under the one documented
//! tolerance (`xent::Tolerance::default()`).

use crate::common::generators::{classes, kd_dims, rows};
use crate::common::{ctx, Rng};
use proptest::prelude::*;
use xent::{cpu, Tolerance};

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn softmax_and_log_softmax_match_cpu(
        n in rows(),
        c in classes(),
        seed in any::<u64>(),
    ) {
        let Some(ctx) = ctx() else { return Ok(()) };
        let dims = [n, c];
        let mut rng = Rng(seed);
        let x: Vec<f32> = (0..n * c).map(|_| rng.uniform(-30.0, 30.0)).collect();
        let tol = Tolerance::default();
        let p = ctx.softmax(&x, &dims, &xent::SoftmaxOptions::default()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        tol.compare("softmax", &p, &cpu::softmax(&x, &dims).unwrap()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let lp = ctx.softmax(&x, &dims, &xent::SoftmaxOptions { kind: xent::SoftmaxKind::LogSoftmax }).map_err(|e| TestCaseError::fail(e.to_string()))?;
        tol.check("log_softmax", &lp, &cpu::log_softmax_reference(&x, &dims).unwrap()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn softmax_forward_and_backward_match_cpu(dims in kd_dims(), seed in any::<u64>()) {
        let Some(ctx) = ctx() else { return Ok(()) };
        let layout = xent::Layout::from_dims(&dims).unwrap();
        let mut rng = Rng(seed);
        let x: Vec<f32> = (0..layout.len()).map(|_| rng.uniform(-10.0, 10.0)).collect();
        let dy: Vec<f32> = (0..layout.len()).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let tol = Tolerance::default();
        let fail = |e: xent::Error| TestCaseError::fail(e.to_string());
        let y = ctx.softmax(&x, &dims, &xent::SoftmaxOptions::default()).map_err(fail)?;
        tol.compare("softmax", &y, &cpu::softmax(&x, &dims).unwrap()).map_err(fail)?;
        let ly = ctx.softmax(&x, &dims, &xent::SoftmaxOptions { kind: xent::SoftmaxKind::LogSoftmax }).map_err(fail)?;
        tol.check("log_softmax", &ly, &cpu::log_softmax_reference(&x, &dims).unwrap()).map_err(fail)?;
        let dx = ctx.softmax_backward(&y, &dy, &dims, &xent::SoftmaxOptions::default()).map_err(fail)?;
        tol.check("softmax backward", &dx, &cpu::softmax_backward_reference(&y, &dy, &dims).unwrap()).map_err(fail)?;
        let ldx = ctx.softmax_backward(&ly, &dy, &dims, &xent::SoftmaxOptions { kind: xent::SoftmaxKind::LogSoftmax }).map_err(fail)?;
        tol.check("log_softmax backward", &ldx, &cpu::log_softmax_backward_reference(&ly, &dy, &dims).unwrap()).map_err(fail)?;
    }
}
