//! Verify mode raises no false alarm on the fused linear cross-entropy
//! where a GPU may flush subnormal f32 intermediates: logits whose
//! probabilities are near 2⁻¹²⁶, class weights from 10⁻³ to 10³, z-loss,
//! smoothing, a soft cap, the gradients' products with W and h, in every
//! storage precision; and still catches a zeroed `∂L/∂h` element that
//! matters on the same data.

use crate::common::generators::{precision, reduction, zero_or};
use crate::common::near_flush::{config, factors, matters, tiny_gap};
use crate::common::{verified, verified_for, Rng};
use half::{bf16, f16};
use proptest::prelude::*;
use xent::{
    cpu, CrossEntropyOptions, Element, LinearCrossEntropyOptions, LinearDims, Precision, Returns,
    Tolerance,
};

/// Hidden states and weights whose logits sit near `tiny_gap` below each
/// row's largest: `h[r, 0] = 1`, `W[c, 0]` at 0, `−tiny_gap` or in [−4, 0],
/// and small other components.
fn data(rng: &mut Rng, dims: LinearDims) -> (Vec<f32>, Vec<f32>) {
    let LinearDims { n, h, v } = dims;
    let hidden = (0..n * h)
        .map(|i| {
            if i % h == 0 {
                1.0
            } else {
                rng.uniform(-1.0, 1.0)
            }
        })
        .collect();
    let weight = (0..v * h)
        .map(|i| match (i / h, i % h, rng.below(2)) {
            (0, 0, _) => 0.0,
            (_, 0, 0) => -tiny_gap(rng),
            (_, 0, _) => rng.uniform(-4.0, 0.0),
            _ => rng.uniform(-0.05, 0.05),
        })
        .collect();
    (hidden, weight)
}

/// Inputs of one case.
struct Case<'a> {
    hidden: &'a [f32],
    weight: &'a [f32],
    bias: Option<&'a [f32]>,
    targets: &'a [i64],
    class_w: Option<&'a [f32]>,
    dims: LinearDims,
    opts: LinearCrossEntropyOptions,
}

/// The case stored as `E` with verify mode on (`Err` on an alarm), then
/// the GPU's `∂L/∂h` with its largest element zeroed held to the twin,
/// which must fail when 0 is past 4 times that element's bound.
fn run<E: Element + Copy + Into<f64>>(
    to: impl Fn(f32) -> E,
    case: &Case<'_>,
) -> Result<(), String> {
    let Some(ctx) = verified() else { return Ok(()) };
    let store = |v: &[f32]| v.iter().map(|&v| to(v)).collect::<Vec<E>>();
    let (hidden, weight, bias) = (store(case.hidden), store(case.weight), case.bias.map(store));
    let returns = Returns::ROWS;
    let (dims, opts) = (&case.dims, &case.opts);
    let mut gpu = ctx
        .linear_cross_entropy(
            &hidden,
            &weight,
            bias.as_deref(),
            case.targets,
            case.class_w,
            dims,
            opts,
            &returns,
        )
        .map_err(|e| format!("false alarm: {e}"))?;
    let widen = |v: &[E]| v.iter().map(|&v| v.into()).collect::<Vec<f64>>();
    let cw = case
        .class_w
        .map(|w| w.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>());
    let b64 = bias.as_deref().map(widen);
    let cpu = cpu::linear_cross_entropy(
        &widen(&hidden),
        &widen(&weight),
        b64.as_deref(),
        case.targets,
        cw.as_deref(),
        dims,
        opts,
    )
    .unwrap();
    let want = cpu.grad_hidden.as_ref().unwrap();
    let (i, &big) = want
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        .unwrap();
    gpu.grad_hidden.as_mut().unwrap()[i] = 0.0;
    let tol = Tolerance::default();
    let m = cpu.magnitude.as_ref().unwrap();
    let mag = m.grad_hidden.as_ref().unwrap()[i];
    let flush = m.grad_hidden_flush.as_ref().unwrap()[i];
    let matters = matters(tol, 0.0, big, mag, flush);
    if matters && tol.compare_linear(&gpu, &cpu).is_ok() {
        return Err(format!("a zeroed ∂L/∂h of {big:e} went unnoticed"));
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn linear_cross_entropy_raises_no_false_alarm_near_flush(
        n in 1usize..=5,
        h in prop_oneof![1usize..=4, 31usize..=33],
        v in prop_oneof![2usize..=8, 127usize..=131],
        biased in any::<bool>(),
        weighted in any::<bool>(),
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
        let dims = LinearDims { n, h, v };
        let (hidden, weight) = data(&mut rng, dims);
        let bias: Vec<f32> = (0..v).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let targets: Vec<i64> = (0..n).map(|_| rng.below(v) as i64).collect();
        let class_w = factors(&mut rng, v);
        let loss = CrossEntropyOptions { reduction, label_smoothing, z_loss, softcap, ..Default::default() };
        let case = Case {
            hidden: &hidden,
            weight: &weight,
            bias: biased.then_some(&bias[..]),
            targets: &targets,
            class_w: weighted.then_some(&class_w[..]),
            dims,
            opts: LinearCrossEntropyOptions { loss, ..Default::default() },
        };
        let r = match precision {
            Precision::F32 => run(|v| v, &case),
            Precision::F16 => run(f16::from_f32, &case),
            Precision::BF16 => run(bf16::from_f32, &case),
        };
        prop_assert!(r.is_ok(), "{precision:?} {:?}: {r:?}", case.opts.loss);
    }
}
