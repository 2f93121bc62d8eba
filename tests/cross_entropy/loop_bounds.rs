//! Shapes whose loops would pass Mesa's limit of 65 535 iterations per
//! invocation (llvmpipe and lavapipe end the loops there without an error),
//! and the switch points of the bound xent keeps (`LOOP_TRIPS_MAX` = 16 384
//! in `src/ops/cross_entropy/plan.rs`), on both sides (softmax's:
//! `tests/softmax/loop_bounds.rs`). The switch points here are those of the
//! software adapters' 8-invocation wide workgroups; the unit tests of
//! `RowStrategy` and `SoftmaxStrategy` pin the rule for other sizes.

use crate::common::{assert_matches_cpu, logits_and_targets as data};
use xent::{cpu, CrossEntropyOptions, Reduction, Targets, Tolerance, Weights};

/// Cross-entropy of random logits, reduction none and mean, against the CPU.
fn cross_entropy_matches(dims: &[usize]) {
    let Some(ctx) = crate::common::ctx() else {
        return;
    };
    let (x, t) = data(dims, dims.iter().product::<usize>() as u64);
    for reduction in [Reduction::None, Reduction::Mean] {
        let opts = CrossEntropyOptions {
            reduction,
            label_smoothing: 0.1,
            ..Default::default()
        };
        let what = format!("{dims:?} {reduction:?}");
        let got = ctx
            .cross_entropy_with(
                &x,
                dims,
                Targets::I64(&t),
                Weights::none(),
                &opts,
                &Default::default(),
            )
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let want =
            cpu::cross_entropy_with(&x, dims, Targets::I64(&t), Weights::none(), &opts).unwrap();
        assert_matches_cpu(&what, &got, &want);
    }
}

#[test]
fn maps_with_many_classes_match_the_cpu() {
    // Each was wrong past the limit: the gradient of the last classes
    // (32 768, 52 426), the loss (70 000), and the (B, V, T) layout of
    // language models (`logits.transpose(1, 2)`).
    for dims in [[1, 32768, 4], [1, 52426, 2], [1, 70000, 4], [2, 50257, 8]] {
        cross_entropy_matches(&dims);
    }
}

#[test]
fn maps_at_the_switch_points_match_the_cpu() {
    // rows_pixels4 loops 2·C + ⌈C/32⌉ times: 8 065 classes is the last it
    // takes. rows_narrow loops C/4 + 3 + C + ⌈C/32⌉ times: 12 785 is its last.
    for dims in [[1, 8065, 4], [1, 8066, 4], [1, 12785, 3], [1, 12786, 3]] {
        cross_entropy_matches(&dims);
    }
}

#[test]
fn long_rows_at_the_switch_points_match_the_cpu() {
    // rows_wide4 with 8 invocations loops 2·⌈C/8/8⌉ + 6 times: 524 096
    // classes is its last; four rows are not split for occupancy on a
    // software adapter. C % 4 != 0 runs rows_wide_mixed (rows_wide_quads on
    // buffers that end mid-vec4, the same walk) with rows_wide4's count.
    for dims in [[4, 524_096], [4, 524_100], [4, 524_099]] {
        cross_entropy_matches(&dims);
    }
}

#[test]
fn very_long_rows_give_ln_c() {
    // Zero logits: loss ln C, gradient 1/C, minus 1 at the target. 4 193 988
    // classes gave ln 2²¹ on Mesa; a single row of 9 M classes needs more
    // than the 32 spans rows were once split into.
    let Some(ctx) = crate::common::ctx() else {
        return;
    };
    for (rows, classes) in [(4usize, 4_193_988usize), (1, 9_000_000)] {
        let x = vec![0.0f32; rows * classes];
        let t: Vec<i64> = (0..rows).map(|r| ((r * 7_919) % classes) as i64).collect();
        let opts = CrossEntropyOptions {
            reduction: Reduction::None,
            ..Default::default()
        };
        let got = ctx
            .cross_entropy(&x, &[rows, classes], &t, None, &opts, &Default::default())
            .unwrap();
        let ln_c = (classes as f64).ln();
        let tol = Tolerance::default();
        tol.compare("loss", &got.loss, &vec![ln_c; rows]).unwrap();
        let p = 1.0 / classes as f64;
        let mut want = vec![p; rows * classes];
        for (r, &t) in t.iter().enumerate() {
            want[r * classes + t as usize] = p - 1.0;
        }
        tol.compare("grad", got.grad.as_ref().unwrap(), &want)
            .unwrap_or_else(|e| panic!("{rows} x {classes}: {e}"));
    }
}
