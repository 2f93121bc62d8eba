//! The temperature against PyTorch's values
//! (`tests/data/reference_row_outputs.py`: `F.cross_entropy` of
//! `cap·tanh((x / T) / cap)`): the loss, its gradient with respect to the
//! original logits (which carries the 1/T) and the log-sum-exp of the
//! logits as the loss sees them, on the CPU twin and the GPU; and the fused
//! op's temperature against cross-entropy's on its materialised logits.

#[path = "../data/row_output_values.rs"]
mod values;

use crate::common::{assert_pytorch_f64, verified};
use values::{RowCase, IDS, LOGITS, PROBS, ROW_CASES};
use xent::{cpu, CrossEntropyOptions, Returns, Targets, Tolerance, Weights};

fn options(case: &RowCase) -> CrossEntropyOptions {
    CrossEntropyOptions {
        temperature: case.temperature,
        softcap: case.softcap,
        label_smoothing: case.label_smoothing,
        reduction: case.reduction.parse().unwrap(),
        ..Default::default()
    }
}

#[test]
fn temperature_matches_pytorch() {
    let Some(ctx) = verified() else { return };
    let returns = Returns::ROWS;
    for case in ROW_CASES {
        let opts = options(case);
        let targets = if case.probs {
            Targets::Probs(&PROBS[..])
        } else {
            Targets::I64(&IDS[..])
        };
        let twin =
            cpu::cross_entropy_with(&LOGITS, &[4, 6], targets, Weights::none(), &opts).unwrap();
        assert_pytorch_f64(&format!("{} loss", case.name), &twin.loss, case.loss);
        assert_eq!(
            twin.argmax.as_deref(),
            Some(&case.argmax[..]),
            "{} argmax",
            case.name
        );
        assert_pytorch_f64(
            &format!("{} entropy", case.name),
            twin.entropy.as_ref().unwrap(),
            &case.entropy,
        );
        assert_pytorch_f64(
            &format!("{} grad", case.name),
            twin.grad.as_ref().unwrap(),
            &case.grad,
        );
        assert_pytorch_f64(
            &format!("{} lse", case.name),
            twin.lse.as_ref().unwrap(),
            &case.lse,
        );
        // The GPU (verify mode holds it to the twin) against PyTorch.
        let gpu = ctx
            .cross_entropy_with(&LOGITS, &[4, 6], targets, Weights::none(), &opts, &returns)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let mut reference = twin.clone();
        reference.loss = case.loss.to_vec();
        reference.grad = Some(case.grad.to_vec());
        reference.lse = Some(case.lse.to_vec());
        reference.entropy = Some(case.entropy.to_vec());
        assert_eq!(
            gpu.argmax.as_deref(),
            Some(&case.argmax[..]),
            "{} GPU argmax",
            case.name
        );
        let tol = Tolerance::default();
        tol.compare_cross_entropy(&gpu, &reference, &tol)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    }
}

#[test]
fn a_temperature_of_one_is_none_and_bad_ones_are_refused() {
    let Some(ctx) = verified() else { return };
    let t = Targets::I64(&IDS[..]);
    let run = |temperature: f64| {
        let opts = CrossEntropyOptions {
            temperature,
            ..Default::default()
        };
        ctx.cross_entropy_with(
            &LOGITS,
            &[4, 6],
            t,
            Weights::none(),
            &opts,
            &Default::default(),
        )
    };
    let plain = ctx
        .cross_entropy_with(
            &LOGITS,
            &[4, 6],
            t,
            Weights::none(),
            &Default::default(),
            &Default::default(),
        )
        .unwrap();
    assert_eq!(run(1.0).unwrap(), plain);
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-300] {
        let e = run(bad).unwrap_err();
        assert!(
            matches!(
                e,
                xent::Error::InvalidOption {
                    name: "temperature",
                    ..
                }
            ),
            "{bad}: {e}"
        );
    }
    let nll = CrossEntropyOptions {
        temperature: 2.0,
        input: xent::InputKind::LogProbs,
        ..Default::default()
    };
    assert!(matches!(
        nll.validate(),
        Err(xent::Error::InvalidOption { name: "input", .. })
    ));
}

/// Logits up to 10⁴ over a temperature that is not a power of two: the
/// kernels' f32 `x / T` (within 2.5 ulp) is off from the twin's exact
/// quotient by up to 10⁻³, which the twin's magnitudes account for, so
/// verify mode raises no alarm (it did before they did).
#[test]
fn large_logits_over_a_temperature_raise_no_false_alarm() {
    let Some(ctx) = verified() else { return };
    let mut rng = crate::common::Rng(11);
    for (dims, scale) in [
        ([8usize, 300usize], 1e4f32),
        ([64, 5], 3e3),
        ([3, 70_000], 1e4),
    ] {
        let n: usize = dims.iter().product();
        let x: Vec<f32> = (0..n).map(|_| rng.uniform(-scale, scale)).collect();
        let ids: Vec<i64> = (0..dims[0]).map(|_| rng.below(dims[1]) as i64).collect();
        for temperature in [0.7, 0.3, 3.3] {
            for reduction in [xent::Reduction::None, xent::Reduction::Sum] {
                let opts = CrossEntropyOptions {
                    temperature,
                    reduction,
                    z_loss: 1e-4,
                    ..Default::default()
                };
                let returns = Returns::ROWS;
                let r = ctx.cross_entropy_with(
                    &x,
                    &dims,
                    Targets::I64(&ids),
                    Weights::none(),
                    &opts,
                    &returns,
                );
                assert!(
                    r.is_ok(),
                    "{dims:?} T {temperature} {reduction:?}: {:?}",
                    r.err()
                );
            }
        }
    }
}
