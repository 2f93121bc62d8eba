//! Mutation checks of the tolerance: GPU results corrupted on purpose (the
//! last 1 % of each row zeroed, as a loop cut short leaves it, or two classes
//! swapped) must be caught by verify mode (the CLI's check, the same
//! comparison, is held to it in `tests/cli.rs`), on shapes whose values are
//! far below the old absolute tolerance of 1e-5, which let such results pass.

use crate::common::uniform_logits as logits;
use xent::{CrossEntropyOptions, Error, Fault, Tolerance};

/// Verify mode with `fault` on the environment's adapter.
fn faulty(fault: Fault) -> Option<xent::Context> {
    crate::common::ctx()?;
    Some(
        xent::Context::from_env()
            .unwrap()
            .with_verify(Tolerance::default())
            .with_fault(fault),
    )
}

fn mismatch<T: std::fmt::Debug>(what: &str, r: xent::Result<T>) {
    assert!(
        matches!(r, Err(Error::Mismatch { .. })),
        "{what}: verify mode let a corrupted result through: {r:?}"
    );
}

#[test]
fn verify_mode_catches_an_unwritten_tail_and_swapped_classes() {
    for fault in [Fault::ZeroTail, Fault::SwapClasses] {
        let Some(ctx) = faulty(fault) else { return };
        // Softmax over 200 000 classes: every value ~5e-6.
        let dims = [2, 200_000];
        let x = logits(400_000, 1);
        mismatch(
            "softmax",
            ctx.softmax(&x, &dims, &xent::SoftmaxOptions::default()),
        );
        mismatch("log_softmax backward", {
            let y = xent::cpu::log_softmax(&x, &dims).unwrap();
            let y: Vec<f32> = y.iter().map(|&v| v as f32).collect();
            ctx.softmax_backward(
                &y,
                &x,
                &dims,
                &xent::SoftmaxOptions {
                    kind: xent::SoftmaxKind::LogSoftmax,
                },
            )
        });
        // The gradient of a mean over long rows and over a map.
        for (dims, classes) in [
            (vec![3usize, 150_000], 150_000usize),
            (vec![2, 21, 64, 64], 21),
        ] {
            let layout = xent::Layout::from_dims(&dims).unwrap();
            let x = logits(layout.len(), 2);
            let t: Vec<i64> = (0..layout.rows()).map(|r| (r % classes) as i64).collect();
            mismatch(
                &format!("{fault:?} grad {dims:?}"),
                ctx.cross_entropy(
                    &x,
                    &dims,
                    &t,
                    None,
                    &CrossEntropyOptions::default(),
                    &Default::default(),
                ),
            );
        }
    }
}
