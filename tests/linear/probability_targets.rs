//! The fused linear cross-entropy with probability targets `(n, v)`, as
//! PyTorch's `F.linear_cross_entropy` takes them: on the GPU (verify mode
//! holds every output to the twin) across windows of rows, tiles, storage
//! precisions and options; one-hot probabilities give the class-index loss.

use crate::common::generators::{precision, reduction, zero_or};
use crate::common::{verified, verified_for, Rng};
use proptest::prelude::*;
use xent::{
    CrossEntropyOptions, Element, LinearCrossEntropyOptions, LinearDims, Precision, Returns,
    Targets,
};

/// Soft targets: each row's values in [0, 1), some exactly 0, not normalised
/// (PyTorch does not ask them to sum to 1).
fn soft(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len)
        .map(|_| {
            if rng.below(4) == 0 {
                0.0
            } else {
                rng.uniform(0.0, 1.0)
            }
        })
        .collect()
}

/// Every output (the scratch depends on them).
const RETURNS: Returns = Returns::ROWS;

/// `opts` with a scratch budget that holds `window` rows of logits (all of
/// them for `None`).
fn with_window(
    dims: &LinearDims,
    opts: LinearCrossEntropyOptions,
    window: Option<usize>,
) -> LinearCrossEntropyOptions {
    let ctx = verified().unwrap();
    let plan = ctx
        .plan_linear_cross_entropy(dims, &opts, &RETURNS)
        .unwrap();
    let fixed = plan.scratch_bytes - plan.window_bytes;
    LinearCrossEntropyOptions {
        scratch_budget: window.map_or(opts.scratch_budget, |w| {
            Some(fixed + 16 + (w * (dims.v * 4).next_multiple_of(16)) as u64)
        }),
        ..opts
    }
}

fn run<T: Element>(
    to: impl Fn(f32) -> T,
    [hidden, weight, bias]: [&[f32]; 3],
    targets: Targets<'_>,
    class_w: Option<&[f32]>,
    dims: &LinearDims,
    opts: &LinearCrossEntropyOptions,
) -> xent::Result<xent::LinearOutput<f32>> {
    let ctx = verified().unwrap();
    let store = |v: &[f32]| v.iter().map(|&v| to(v)).collect::<Vec<T>>();
    let (h, w, b) = (store(hidden), store(weight), store(bias));
    let b = (!bias.is_empty()).then_some(&b[..]);
    ctx.linear_cross_entropy_with(&h, &w, b, targets, class_w, dims, opts, &RETURNS)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn probability_targets_match_the_twin(
        n in prop_oneof![1usize..=4, 60usize..=70, 120usize..=140],
        h in prop_oneof![1usize..=5, 31usize..=34],
        v in prop_oneof![1usize..=6, 127usize..=131, 1000usize..=1030],
        window in prop::option::of(1usize..=70),
        biased in any::<bool>(),
        weighted in any::<bool>(),
        reduction in reduction(),
        label_smoothing in zero_or(0.1),
        z_loss in zero_or(1e-3),
        softcap in prop_oneof![Just(None), Just(Some(3.0f64))],
        precision in precision(),
        seed in any::<u64>(),
    ) {
        if verified_for(precision).is_none() {
            return Ok(());
        }
        let mut rng = Rng(seed);
        let scale = 2.0 / (h as f32).sqrt();
        let hidden: Vec<f32> = (0..n * h).map(|_| rng.uniform(-scale, scale)).collect();
        let weight: Vec<f32> = (0..v * h).map(|_| rng.uniform(-2.0, 2.0)).collect();
        let bias: Vec<f32> = if biased { (0..v).map(|_| rng.uniform(-1.0, 1.0)).collect() } else { Vec::new() };
        let cw: Vec<f32> = (0..v).map(|_| rng.uniform(0.5, 2.0)).collect();
        let probs = soft(&mut rng, n * v);
        let dims = LinearDims { n, h, v };
        let loss = CrossEntropyOptions { reduction, label_smoothing, z_loss, softcap, ..Default::default() };
        let opts = with_window(&dims, LinearCrossEntropyOptions { loss, ..Default::default() }, window);
        let inputs = [&hidden[..], &weight[..], &bias[..]];
        let (t, cw) = (Targets::Probs(&probs), weighted.then_some(&cw[..]));
        let r = match precision {
            Precision::F32 => run(|x| x, inputs, t, cw, &dims, &opts),
            Precision::F16 => run(half::f16::from_f32, inputs, t, cw, &dims, &opts),
            Precision::BF16 => run(half::bf16::from_f32, inputs, t, cw, &dims, &opts),
        };
        prop_assert!(r.is_ok(), "{dims:?} window {window:?} {precision:?} {:?}: {:?}", opts.loss, r.err());
    }
}

#[test]
fn one_hot_probabilities_give_the_class_index_loss() {
    let Some(_) = verified() else { return };
    let dims = LinearDims {
        n: 70,
        h: 9,
        v: 300,
    };
    let mut rng = Rng(3);
    let hidden: Vec<f32> = (0..dims.n * dims.h)
        .map(|_| rng.uniform(-1.0, 1.0))
        .collect();
    let weight: Vec<f32> = (0..dims.v * dims.h)
        .map(|_| rng.uniform(-1.0, 1.0))
        .collect();
    let ids: Vec<i64> = (0..dims.n).map(|_| rng.below(dims.v) as i64).collect();
    let mut one_hot = vec![0.0f32; dims.n * dims.v];
    for (r, &t) in ids.iter().enumerate() {
        one_hot[r * dims.v + t as usize] = 1.0;
    }
    let opts = with_window(&dims, LinearCrossEntropyOptions::default(), Some(16));
    let inputs = [&hidden[..], &weight[..], &[][..]];
    let by_ids = run(|x| x, inputs, Targets::I64(&ids), None, &dims, &opts).unwrap();
    let by_probs = run(|x| x, inputs, Targets::Probs(&one_hot), None, &dims, &opts).unwrap();
    let close = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= 1e-6 * (1.0 + x.abs()))
    };
    assert!(
        close(&by_ids.loss, &by_probs.loss),
        "{:?} {:?}",
        by_ids.loss,
        by_probs.loss
    );
    for (a, b) in [
        (&by_ids.grad_hidden, &by_probs.grad_hidden),
        (&by_ids.grad_weight, &by_probs.grad_weight),
    ] {
        assert!(close(a.as_deref().unwrap(), b.as_deref().unwrap()));
    }
    assert_eq!(by_ids.correct, by_probs.correct);
}
