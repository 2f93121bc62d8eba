//! Verify mode raises no false alarm where a GPU may flush subnormal f32
//! intermediates of the elementwise losses: bce-with-logits whose sigmoid is
//! near 2⁻¹²⁶, differences near 2⁻¹²⁶, targets near 2⁻¹²⁶, scaled by
//! `weight` and `pos_weight` from 10⁻³ to 10³ and by the mean's 1/n, in
//! every storage precision; and still catches a zeroed gradient element
//! that matters on the same data.

use crate::common::generators::{precision, reduction};
use crate::common::near_flush::{config, factors, matters, tiny, tiny_gap};
use crate::common::{verified, verified_for, Rng};
use half::{bf16, f16};
use proptest::prelude::*;
use xent::{cpu, Element, ElementwiseLoss, ElementwiseOptions, LossWeights, Precision, Tolerance};

/// A value near 2⁻¹²⁶ of either sign.
fn signed_tiny(rng: &mut Rng) -> f32 {
    if rng.below(2) == 0 {
        tiny(rng)
    } else {
        -tiny(rng)
    }
}

/// A binary target: 0, 1, in [0, 1), or near 2⁻¹²⁶.
fn binary_target(rng: &mut Rng) -> f32 {
    match rng.below(4) {
        0 => 0.0,
        1 => 1.0,
        2 => rng.uniform(0.0, 1.0),
        _ => tiny(rng),
    }
}

/// One element's input and target for `loss`.
fn element(loss: ElementwiseLoss, rng: &mut Rng) -> (f32, f32) {
    match loss {
        ElementwiseLoss::BceWithLogits => {
            let x = match rng.below(3) {
                0 => -tiny_gap(rng),
                1 => tiny_gap(rng),
                _ => rng.uniform(-6.0, 6.0),
            };
            (x, binary_target(rng))
        }
        ElementwiseLoss::Bce => (rng.uniform(1e-3, 1.0), binary_target(rng)),
        _ if rng.below(4) == 0 => (rng.uniform(-2.0, 2.0), rng.uniform(-2.0, 2.0)),
        _ => (signed_tiny(rng), signed_tiny(rng)),
    }
}

fn losses() -> impl Strategy<Value = ElementwiseLoss> {
    prop_oneof![
        3 => Just(ElementwiseLoss::BceWithLogits),
        1 => Just(ElementwiseLoss::Bce),
        1 => Just(ElementwiseLoss::Mse),
        1 => Just(ElementwiseLoss::L1),
        1 => prop_oneof![Just(1e-3f64), Just(1.0)].prop_map(|beta| ElementwiseLoss::SmoothL1 { beta }),
        1 => prop_oneof![Just(1e-3f64), Just(1.0)].prop_map(|delta| ElementwiseLoss::Huber { delta }),
    ]
}

/// The case in storage precision `E` with verify mode on (`Err` on an
/// alarm), then the GPU's gradient with its largest element zeroed held to
/// the twin, which must fail when 0 is past 4 times that element's bound.
fn run<E: Element + Copy + Into<f64>>(
    to: impl Fn(f32) -> E,
    grad_tol: Tolerance,
    (x, y): (&[f32], &[f32]),
    weights: LossWeights<'_>,
    opts: &ElementwiseOptions,
) -> Result<(), String> {
    let Some(ctx) = verified() else { return Ok(()) };
    let (xe, ye): (Vec<E>, Vec<E>) = (
        x.iter().map(|&v| to(v)).collect(),
        y.iter().map(|&v| to(v)).collect(),
    );
    let dims = [x.len()];
    let mut gpu = ctx
        .elementwise_loss(&xe, &ye, &dims, weights, opts, &Default::default())
        .map_err(|e| format!("false alarm: {e}"))?;
    let narrow = |v: &[E]| {
        v.iter()
            .map(|&v| Into::<f64>::into(v) as f32)
            .collect::<Vec<f32>>()
    };
    let cpu = cpu::elementwise_loss(&narrow(&xe), &narrow(&ye), &dims, weights, opts).unwrap();
    let want = cpu.grad.as_ref().unwrap();
    let (i, &big) = want
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        .unwrap();
    gpu.grad.as_mut().unwrap()[i] = 0.0;
    let m = cpu.magnitude.as_ref().unwrap();
    let (mag, flush) = (
        m.grad.as_ref().unwrap()[i],
        m.grad_flush.as_ref().unwrap()[i],
    );
    let matters = matters(grad_tol, 0.0, big, mag, flush);
    let caught = Tolerance::default()
        .compare_elementwise(&gpu, &cpu, &grad_tol)
        .is_err();
    if matters && !caught {
        return Err(format!("a zeroed gradient of {big:e} went unnoticed"));
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn elementwise_losses_raise_no_false_alarm_near_flush(
        loss in losses(),
        n in prop_oneof![1usize..=8, 4094usize..=4098],
        weighted in any::<bool>(),
        pos_weighted in any::<bool>(),
        reduction in reduction(),
        precision in precision(),
        seed in any::<u64>(),
    ) {
        if verified_for(precision).is_none() {
            return Ok(());
        }
        let mut rng = Rng(seed);
        let (x, y): (Vec<f32>, Vec<f32>) = (0..n).map(|_| element(loss, &mut rng)).unzip();
        let w = factors(&mut rng, n);
        let pw = factors(&mut rng, n);
        let weights = LossWeights {
            weight: (weighted && loss.takes_weight()).then_some(&w[..]),
            pos_weight: (pos_weighted && loss.takes_pos_weight()).then_some(&pw[..]),
        };
        let opts = ElementwiseOptions { loss, reduction };
        let data = (&x[..], &y[..]);
        let r = match precision {
            Precision::F32 => run(|v| v, Tolerance::default(), data, weights, &opts),
            Precision::F16 => run(f16::from_f32, Tolerance::F16, data, weights, &opts),
            Precision::BF16 => run(bf16::from_f32, Tolerance::BF16, data, weights, &opts),
        };
        prop_assert!(r.is_ok(), "{precision:?} {opts:?}: {r:?}");
    }
}
