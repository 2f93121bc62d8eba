//! Softmax and log-softmax, forward and backward, on shapes whose loops
//! would pass Mesa's limit of 65 535 iterations per invocation, and at the
//! switch points of the bound xent keeps, on both sides (the cross-entropy's
//! `loop_bounds` holds its kernels to the same).

use crate::common::logits_and_targets as data;
use xent::{cpu, Tolerance};

fn softmax_matches(dims: &[usize]) {
    if let Some(ctx) = crate::common::ctx() {
        softmax_matches_on(ctx, dims);
    }
}

/// Softmax and log-softmax of `dims`, forward and backward, on `ctx`
/// against the CPU twin under the default tolerance.
pub(super) fn softmax_matches_on(ctx: &xent::Context, dims: &[usize]) {
    let (x, _) = data(dims, 7 + dims.iter().sum::<usize>() as u64);
    let tol = Tolerance::default();
    let what = |op: &str| format!("{op} {dims:?}");
    let fail = |op: &str, e: xent::Error| panic!("{}: {e}", what(op));
    let y = ctx
        .softmax(&x, dims, &xent::SoftmaxOptions::default())
        .unwrap();
    tol.compare("softmax", &y, &cpu::softmax(&x, dims).unwrap())
        .unwrap_or_else(|e| fail("softmax", e));
    let ly = ctx
        .softmax(
            &x,
            dims,
            &xent::SoftmaxOptions {
                kind: xent::SoftmaxKind::LogSoftmax,
            },
        )
        .unwrap();
    tol.check(
        "log_softmax",
        &ly,
        &cpu::log_softmax_reference(&x, dims).unwrap(),
    )
    .unwrap_or_else(|e| fail("log_softmax", e));
    let dy: Vec<f32> = x.iter().rev().copied().collect();
    let dx = ctx
        .softmax_backward(&y, &dy, dims, &xent::SoftmaxOptions::default())
        .unwrap();
    tol.check(
        "softmax backward",
        &dx,
        &cpu::softmax_backward_reference(&y, &dy, dims).unwrap(),
    )
    .unwrap_or_else(|e| fail("softmax backward", e));
    let ldx = ctx
        .softmax_backward(
            &ly,
            &dy,
            dims,
            &xent::SoftmaxOptions {
                kind: xent::SoftmaxKind::LogSoftmax,
            },
        )
        .unwrap();
    tol.check(
        "log_softmax backward",
        &ldx,
        &cpu::log_softmax_backward_reference(&ly, &dy, dims).unwrap(),
    )
    .unwrap_or_else(|e| fail("log_softmax backward", e));
}

#[test]
fn softmax_of_long_rows_and_maps_matches_the_cpu() {
    // (1, 32 768, 2) left its last 4 outputs at 0, (1, 40 000, 2) 28 932 of
    // them, (4, 2 097 152) the last 576 of each row.
    for dims in [&[1, 32768, 2][..], &[1, 40000, 2], &[4, 2_097_152]] {
        softmax_matches(dims);
    }
}

#[test]
fn softmax_at_the_switch_points_matches_the_cpu() {
    // An invocation per pixel loops 2·C times (8 192 is the last); a
    // workgroup of 64 per row 2·⌈C/64⌉ + 12 times (523 904 is the last).
    for dims in [
        &[1, 8192, 3][..],
        &[1, 8193, 3],
        &[2, 523_904],
        &[2, 523_905],
    ] {
        softmax_matches(dims);
    }
}
