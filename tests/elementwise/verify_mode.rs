//! The mutation check of the elementwise losses: verify mode catches a
//! corrupted gradient.

use super::properties::data;
use xent::{Context, ElementwiseLoss, Error, Tolerance};

#[test]
fn verify_mode_catches_a_corrupted_gradient() {
    // The mutation check: the same call passes clean and fails corrupted.
    let Some(clean) = crate::common::own_ctx() else {
        return;
    };
    let (x, y) = data(ElementwiseLoss::BceWithLogits, 600, 3);
    let call = |ctx: &Context| {
        ctx.elementwise_loss(
            &x,
            &y,
            &[6, 100],
            Default::default(),
            &xent::ElementwiseOptions::new(ElementwiseLoss::BceWithLogits),
            &Default::default(),
        )
    };
    call(&clean.with_verify(Tolerance::default())).unwrap();
    for fault in [xent::Fault::ZeroTail, xent::Fault::SwapClasses] {
        let Some(ctx) = crate::common::own_ctx() else {
            return;
        };
        let err = call(&ctx.with_verify(Tolerance::default()).with_fault(fault)).unwrap_err();
        assert!(
            matches!(err, Error::Mismatch { what: "grad", .. }),
            "{fault:?}: {err}"
        );
    }
}
