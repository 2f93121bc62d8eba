//! Each row's predicted class and entropy on rows full of ties, −∞ and NaN,
//! on every row strategy and through the vocabulary split, against the
//! twin: the first index of the largest value (a NaN the largest), as
//! `torch.argmax`, whichever workgroup, lane or shard holds each tied value,
//! with subgroup shuffles and with workgroup memory.

use crate::common::{ctx, small_binding_ctx, Rng};
use proptest::prelude::*;
use std::sync::OnceLock;
use xent::{cpu, Context, CrossEntropyOptions, Returns, Strategy, Targets, Tolerance, Weights};

/// A context without SUBGROUP: its kernels merge through workgroup memory
/// where the default one may shuffle.
fn plain() -> Option<&'static Context> {
    static PLAIN: OnceLock<Option<Context>> = OnceLock::new();
    PLAIN.get_or_init(|| small_binding_ctx(1 << 26)).as_ref()
}

/// A shape each forced strategy serves (the specialised kernels at C = 12
/// and 33), with the strategy; `Auto` for the sharded calls.
const SHAPES: [(Strategy, &[usize]); 11] = [
    (Strategy::Wide, &[3, 130]),
    (Strategy::Wide4, &[3, 256]),
    (Strategy::WideMixed, &[3, 257]),
    (Strategy::Narrow, &[37, 13]),
    (Strategy::Narrow, &[2, 5, 3, 3]),
    (Strategy::Narrow4, &[37, 12]),
    (Strategy::Narrow4, &[9, 68]),
    (Strategy::Pixels4, &[2, 33, 4, 4]),
    (Strategy::Split, &[3, 2_000]),
    (Strategy::Team, &[37, 300]),
    (Strategy::Team4, &[37, 64]),
];

/// Few distinct values, so most rows tie at their maximum: a NaN in about
/// 1 in 100, −∞ in 1 in 20, ±0 both.
fn tied_logits(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| match rng.below(100) {
            0 => f32::NAN,
            1..=5 => f32::NEG_INFINITY,
            k => [-1.0, 0.0, -0.0, 0.5, 1.0][k % 5],
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn ties_and_nans_predict_the_first_largest_everywhere(
        shape in 0..SHAPES.len(),
        shards in prop::option::of(1usize..5),
        workgroup_memory in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let Some(ctx) = (if workgroup_memory { plain() } else { ctx() }) else { return Ok(()) };
        let (strategy, dims) = SHAPES[shape];
        let layout = xent::Layout::from_dims(dims).unwrap();
        let x = tied_logits(layout.len(), seed);
        let mut rng = Rng(seed ^ 1);
        let t: Vec<i64> = (0..layout.rows()).map(|_| rng.below(layout.classes) as i64).collect();
        let opts = CrossEntropyOptions {
            strategy: if shards.is_some() { Strategy::Auto } else { strategy },
            reduction: xent::Reduction::None,
            ..Default::default()
        };
        let (targets, weights) = (Targets::I64(&t), Weights::none());
        let fail = |e: xent::Error| TestCaseError::fail(format!("{} {dims:?} {shards:?}: {e}", strategy.name()));
        let gpu = match shards {
            Some(k) => ctx.cross_entropy_sharded(&x, dims, targets, weights, &opts, &Returns::ROWS, k),
            None => ctx.cross_entropy_with(&x, dims, targets, weights, &opts, &Returns::ROWS),
        }
        .map_err(fail)?;
        let want = cpu::cross_entropy_with(&x, dims, targets, weights, &opts).unwrap();
        // No temperature or cap: no row may predict either of two classes.
        prop_assert!(want.magnitude.as_ref().unwrap().argmax_ties.is_empty());
        prop_assert_eq!(gpu.argmax.as_deref(), want.argmax.as_deref());
        prop_assert_eq!(gpu.correct, want.correct);
        let tol = Tolerance::default();
        tol.compare_cross_entropy(&gpu, &want, &tol).map_err(fail)?;
    }
}
