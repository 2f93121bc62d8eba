//! The worked example's softmax and log-softmax against values derived
//! outside this crate (PyTorch's, and `tests/data/reference.py`).

use crate::common::{assert_close, ctx, CPU_TOL, GPU_TOL, WORKED_DIMS, WORKED_LOGITS};
use xent::cpu;

#[test]
fn log_softmax_row_0_matches_the_note() {
    // The note prints [-0.0005, -8.0005, -9.0005, -12.0005, -13.0005]; full precision:
    let want = [
        -0.0004671678338621021,
        -8.000467167833863,
        -9.000467167833863,
        -12.000467167833863,
        -13.000467167833863,
    ];
    let cpu = cpu::log_softmax(&WORKED_LOGITS, &WORKED_DIMS).unwrap();
    for (g, w) in cpu.iter().zip(want) {
        assert!((g - w).abs() <= CPU_TOL);
    }
    let Some(ctx) = ctx() else { return };
    let gpu = ctx
        .softmax(
            &WORKED_LOGITS,
            &WORKED_DIMS,
            &xent::SoftmaxOptions {
                kind: xent::SoftmaxKind::LogSoftmax,
            },
        )
        .unwrap();
    assert_close("log_softmax row 0", &gpu[..5], &want, GPU_TOL);
    let printed: Vec<String> = gpu[..5].iter().map(|v| format!("{v:.4}")).collect();
    assert_eq!(
        printed,
        ["-0.0005", "-8.0005", "-9.0005", "-12.0005", "-13.0005"]
    );
}

#[test]
fn softmax_of_the_worked_example_sums_to_one_and_matches() {
    // exp of the log-softmax above: row 0 of softmax.
    let want0 = [
        0.9995329412720395,
        0.00033530594715424516,
        0.00012335216446056487,
        6.141342645322141e-06,
        2.259273700403456e-06,
    ];
    let Some(ctx) = ctx() else { return };
    let p = ctx
        .softmax(
            &WORKED_LOGITS,
            &WORKED_DIMS,
            &xent::SoftmaxOptions::default(),
        )
        .unwrap();
    assert_close("softmax row 0", &p[..5], &want0, GPU_TOL);
    for row in p.chunks(5) {
        let s: f32 = row.iter().sum();
        assert!((s - 1.0).abs() < 1e-6, "row sums to {s}");
    }
}
