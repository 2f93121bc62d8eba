//! Mutation checks of the tolerance: GPU results corrupted on purpose (the
//! last 1 % of each row zeroed, as a loop cut short leaves it, or two classes
//! swapped) must be caught by verify mode (the CLI's check, the same
//! comparison, is held to it in `tests/cli.rs`), on shapes whose values are
//! far below the old absolute tolerance of 1e-5, which let such results pass.

mod common;

use xent::{CrossEntropyOptions, Error, Fault, Tolerance};

/// Verify mode with `fault` on the environment's adapter.
fn faulty(fault: Fault) -> Option<xent::Context> {
    common::ctx()?;
    Some(
        xent::Context::from_env()
            .unwrap()
            .with_verify(Tolerance::default())
            .with_fault(fault),
    )
}

fn logits(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = common::Rng(seed);
    (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

/// The tolerance this crate had before: |g − c| ≤ 1e-5 or ≤ 1e-4·max(|g|, |c|).
fn old_policy_passes(gpu: &[f32], cpu: &[f64]) -> bool {
    gpu.iter().zip(cpu).all(|(&g, &c)| {
        let (g, d) = (f64::from(g), (f64::from(g) - c).abs());
        d <= 1e-5 || d <= 1e-4 * g.abs().max(c.abs())
    })
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

#[test]
fn the_old_tolerance_would_have_passed_these_faults() {
    // Why the policy changed: the same corruption, held to |g − c| ≤ 1e-5.
    // Softmax over 500 000 classes: every value below 5e-6.
    let Some(ctx) = common::ctx() else { return };
    let dims = [2, 500_000];
    let x = logits(1_000_000, 1);
    let mut y = ctx
        .softmax(&x, &dims, &xent::SoftmaxOptions::default())
        .unwrap();
    let want = xent::cpu::softmax(&x, &dims).unwrap();
    assert!(Tolerance::default().compare("softmax", &y, &want).is_ok());
    for row in 0..2 {
        y[row * 500_000 + 495_000..(row + 1) * 500_000].fill(0.0);
    }
    assert!(old_policy_passes(&y, &want));
    assert!(Tolerance::default().compare("softmax", &y, &want).is_err());
}
