//! Verify mode raises no false alarm where a GPU may flush subnormal f32
//! intermediates: probabilities near 2⁻¹²⁶ scaled by class and sample
//! weights, z-loss, smoothing, soft targets near 2⁻¹²⁶, the mean's
//! denominator, a soft cap, in every storage precision; and still catches
//! swapped classes on the same data.

use crate::common::generators::{precision, reduction, zero_or};
use crate::common::near_flush::{config, factors, logits, matters, tiny};
use crate::common::{verified, verified_for, Rng};
use half::{bf16, f16};
use proptest::prelude::*;
use xent::{cpu, CrossEntropyOptions, Element, Precision, Returns, Targets, Tolerance, Weights};

/// Soft targets: per row, each class near 2⁻¹²⁶, 0 or in [0, 1).
fn soft_targets(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len)
        .map(|_| match rng.below(3) {
            0 => tiny(rng),
            1 => 0.0,
            _ => rng.uniform(0.0, 1.0),
        })
        .collect()
}

/// What one case runs on.
struct Case<'a> {
    x: &'a [f32],
    dims: [usize; 2],
    ids: &'a [i64],
    probs: Option<&'a [f32]>,
    class_w: Option<&'a [f32]>,
    sample_w: Option<&'a [f32]>,
    opts: CrossEntropyOptions,
}

/// The case in storage precision `E` with verify mode on (`Err` if it
/// raised an alarm), then the GPU's gradient with the first and last class
/// of every row swapped held to the twin, which must fail wherever either
/// moves past 4 times its bound: the check stays blind to nothing that
/// matters.
fn run<E: Element + Copy + Into<f64>>(
    to: impl Fn(f32) -> E,
    grad_tol: Tolerance,
    case: &Case<'_>,
) -> Result<(), String> {
    let Some(ctx) = verified() else { return Ok(()) };
    let x: Vec<E> = case.x.iter().map(|&v| to(v)).collect();
    let targets = match case.probs {
        Some(p) => Targets::Probs(p),
        None => Targets::I64(case.ids),
    };
    let weights = Weights {
        class: case.class_w,
        sample: case.sample_w,
    };
    let returns = Returns::ROWS;
    let mut gpu = ctx
        .cross_entropy_with(&x, &case.dims, targets, weights, &case.opts, &returns)
        .map_err(|e| format!("false alarm: {e}"))?;
    let widen = |v: &[f32]| v.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
    let x64: Vec<f64> = x.iter().map(|&v| v.into()).collect();
    let probs64 = case.probs.map(widen);
    let targets = match &probs64 {
        Some(p) => Targets::Probs(&p[..]),
        None => Targets::I64(case.ids),
    };
    let (cw, sw) = (case.class_w.map(widen), case.sample_w.map(widen));
    let weights = Weights {
        class: cw.as_deref(),
        sample: sw.as_deref(),
    };
    let cpu = cpu::cross_entropy_with(&x64, &case.dims, targets, weights, &case.opts).unwrap();
    let (want, grad) = (cpu.grad.as_ref().unwrap(), gpu.grad.as_mut().unwrap());
    let [rows, classes] = case.dims;
    let last = classes - 1;
    let m = cpu.magnitude.as_ref().unwrap();
    let (mag, flush) = (m.grad.as_ref().unwrap(), m.grad_flush.as_ref().unwrap());
    let moved =
        |from: usize, to: usize| matters(grad_tol, want[to], want[from], mag[from], flush[from]);
    let matters = (0..rows).any(|r| {
        let (a, b) = (r * classes, r * classes + last);
        moved(a, b) || moved(b, a)
    });
    for r in 0..rows {
        grad.swap(r * classes, r * classes + last);
    }
    let caught = Tolerance::default()
        .compare_cross_entropy(&gpu, &cpu, &grad_tol)
        .is_err();
    if matters && !caught {
        return Err("swapped classes went unnoticed".into());
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn cross_entropy_raises_no_false_alarm_near_flush(
        rows in 1usize..=4,
        classes in prop_oneof![2usize..=8, 1000usize..=1030],
        soft in any::<bool>(),
        class_weighted in any::<bool>(),
        sample_weighted in any::<bool>(),
        reduction in reduction(),
        label_smoothing in zero_or(0.1),
        z_loss in prop_oneof![Just(0.0f64), Just(1e-4), Just(1e-2), Just(1.0)],
        softcap in prop_oneof![Just(None), Just(Some(1000.0f64))],
        precision in precision(),
        seed in any::<u64>(),
    ) {
        if verified_for(precision).is_none() {
            return Ok(());
        }
        let mut rng = Rng(seed);
        let dims = [rows, classes];
        let x = logits(&mut rng, rows, classes);
        let ids: Vec<i64> = (0..rows).map(|_| rng.below(classes) as i64).collect();
        let probs = soft_targets(&mut rng, rows * classes);
        let class_w = factors(&mut rng, classes);
        let sample_w = factors(&mut rng, rows);
        let case = Case {
            x: &x,
            dims,
            ids: &ids,
            probs: soft.then_some(&probs[..]),
            class_w: class_weighted.then_some(&class_w[..]),
            sample_w: sample_weighted.then_some(&sample_w[..]),
            opts: CrossEntropyOptions { reduction, label_smoothing, z_loss, softcap, ..Default::default() },
        };
        let r = match precision {
            Precision::F32 => run(|v| v, Tolerance::default(), &case),
            Precision::F16 => run(f16::from_f32, Tolerance::F16, &case),
            Precision::BF16 => run(bf16::from_f32, Tolerance::BF16, &case),
        };
        prop_assert!(r.is_ok(), "{precision:?} {:?}: {r:?}", case.opts);
    }
}

/// A masked logit (−10³⁸, probability target 0) has an enormous |logp|
/// but nothing there can be flushed: the loss's bound stays tight, and a
/// loss off by 10⁻³ is caught.
#[test]
fn a_masked_logit_does_not_widen_the_bound() {
    let opts = CrossEntropyOptions::default();
    let cpu = cpu::cross_entropy_soft(
        &[0.0f32, -1e38, 0.5],
        &[1, 3],
        &[0.75, 0.0, 0.25],
        None,
        &opts,
    )
    .unwrap();
    let flush = cpu.magnitude.as_ref().unwrap().loss_flush[0];
    assert!(
        flush * f64::from(f32::MIN_POSITIVE) < 1e-30,
        "flush factor {flush}"
    );
    let mut gpu = xent::CrossEntropyOutput {
        loss: vec![cpu.loss[0] as f32 + 1e-3],
        loss_dims: vec![],
        grad: None,
        lse: None,
        correct: None,
        argmax: None,
        entropy: None,
        magnitude: None,
    };
    let tol = Tolerance::default();
    assert!(tol.compare_cross_entropy(&gpu, &cpu, &tol).is_err());
    gpu.loss[0] = cpu.loss[0] as f32;
    tol.compare_cross_entropy(&gpu, &cpu, &tol).unwrap();
}
