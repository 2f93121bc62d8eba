//! The proptest strategies the test crates share: options (reductions,
//! smoothing, z-loss, softcap, input and target kinds, weight layouts,
//! storage precisions) and shapes. Strategies a single test module uses stay
//! in that module.
//!
//! The elementwise property test keeps regression seeds
//! (`tests/elementwise/properties.proptest-regressions`): a seed replays the
//! same cases only while the strategies it draws from (`reduction`,
//! `weight_shape`) keep their alternatives in the same order.

use proptest::prelude::*;
use xent::{InputKind, Precision, ProductKernel, Reduction, SplitK, WeightShape};

/// Every reduction.
pub fn reduction() -> impl Strategy<Value = Reduction> {
    prop_oneof![
        Just(Reduction::None),
        Just(Reduction::Mean),
        Just(Reduction::Sum)
    ]
}

/// Label smoothing: off, or anywhere in [0, 1).
pub fn smoothing() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0f64), 0.0f64..1.0]
}

/// Label smoothing: off, all of it, or anywhere in [0, 1).
pub fn smoothing_or_one() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0f64), Just(1.0f64), 0.0f64..1.0]
}

/// The z-loss coefficient: off, or in [1e-4, 1e-2).
pub fn z_loss() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0f64), 1e-4f64..1e-2]
}

/// 0 (an option off) or `value`.
pub fn zero_or(value: f64) -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0f64), Just(value)]
}

/// No softcap, or a cap of 3 (inside the generated logits' range: most of
/// them saturate).
pub fn softcap() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![Just(None), Just(Some(3.0f64))]
}

/// The temperature: none (1), or in [0.1, 10) (both sides of 1).
pub fn temperature() -> impl Strategy<Value = f64> {
    prop_oneof![Just(1.0f64), 0.1f64..1.0, 1.0f64..10.0]
}

/// Every input kind.
pub fn input_kind() -> impl Strategy<Value = InputKind> {
    prop_oneof![
        Just(InputKind::Logits),
        Just(InputKind::LogProbs),
        Just(InputKind::Probs)
    ]
}

/// Every input kind, logits half the time.
pub fn input_kind_mostly_logits() -> impl Strategy<Value = InputKind> {
    prop_oneof![
        2 => Just(InputKind::Logits),
        1 => Just(InputKind::LogProbs),
        1 => Just(InputKind::Probs)
    ]
}

/// How a test passes its targets: class ids of a type, or probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    I64,
    I32,
    U8,
    Probs,
}

/// Every target kind.
pub fn target_kind() -> impl Strategy<Value = TargetKind> {
    prop_oneof![
        Just(TargetKind::I64),
        Just(TargetKind::I32),
        Just(TargetKind::U8),
        Just(TargetKind::Probs)
    ]
}

/// An elementwise weight: none, the input's shape, or the last axis's.
pub fn weight_shape() -> impl Strategy<Value = Option<WeightShape>> {
    prop_oneof![
        Just(None),
        Just(Some(WeightShape::Full)),
        Just(Some(WeightShape::LastAxis))
    ]
}

/// Every storage precision (f16 needs SHADER_F16: tests skip it without).
pub fn precision() -> impl Strategy<Value = Precision> {
    prop_oneof![
        Just(Precision::F32),
        Just(Precision::BF16),
        Just(Precision::F16)
    ]
}

/// f32 or bf16 storage (every device has both).
pub fn precision_without_f16() -> impl Strategy<Value = Precision> {
    prop_oneof![Just(Precision::F32), Just(Precision::BF16)]
}

/// Row counts: one, a few, and more than a workgroup's 64.
pub fn rows() -> impl Strategy<Value = usize> {
    prop_oneof![Just(1usize), 2usize..50, 60usize..200]
}

/// Class counts around the kernels' boundaries: 1, below/at/above the
/// workgroup size (64) and the wide-kernel threshold (128), and larger.
pub fn classes() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(1usize),
        2usize..10,
        60usize..70,
        126usize..131,
        131usize..700
    ]
}

/// (N, C, spatial…): N below 40, C from 1 to 300, up to two spatial axes
/// below 9.
pub fn small_dims() -> impl Strategy<Value = Vec<usize>> {
    (
        1usize..40,
        prop_oneof![Just(1usize), 2usize..70, 120usize..300],
        prop::collection::vec(1usize..9, 0..=2),
    )
        .prop_map(|(n, c, spatial)| {
            let mut dims = vec![n, c];
            dims.extend(spatial);
            dims
        })
}

/// K-dimensional inputs (N, C, spatial…): K = 0 to 3 of odd and even
/// spatial sizes, N from 1 to 4, C from 1 to 300 around the workgroup size
/// and the wide kernels' threshold; a tenth of those without a spatial axis
/// unbatched (C).
pub fn kd_dims() -> impl Strategy<Value = Vec<usize>> {
    let classes = prop_oneof![
        Just(1usize),
        2usize..8,
        60usize..70,
        120usize..140,
        250usize..=300
    ];
    let spatial = prop::collection::vec(
        prop_oneof![Just(1usize), Just(3usize), Just(5usize), 2usize..12],
        0..=3,
    );
    dims_of(1usize..5, classes, spatial)
}

/// Smaller K-dimensional inputs than [`kd_dims`] (K up to 2), empty batches
/// (N = 0) among them.
pub fn small_kd_dims() -> impl Strategy<Value = Vec<usize>> {
    let classes = prop_oneof![Just(1usize), 2usize..9, 60usize..70, 250usize..=300];
    let spatial = prop::collection::vec(prop_oneof![Just(1usize), Just(3usize), 2usize..6], 0..=2);
    dims_of(0usize..5, classes, spatial)
}

/// (N, C, spatial…) of the given parts, or, a tenth of the time when there
/// is no spatial axis, the unbatched (C).
fn dims_of(
    n: impl Strategy<Value = usize>,
    classes: impl Strategy<Value = usize>,
    spatial: impl Strategy<Value = Vec<usize>>,
) -> impl Strategy<Value = Vec<usize>> {
    (prop::bool::weighted(0.1), n, classes, spatial).prop_map(|(unbatched, n, c, spatial)| {
        if unbatched && spatial.is_empty() {
            vec![c]
        } else {
            let mut d = vec![n, c];
            d.extend(spatial);
            d
        }
    })
}

/// The kernel's own slices, or slices of 16 to 96 of k (within every
/// kernel's but the emulated cooperative one's with f32 operands, see
/// [`within`]) 1 to 5 at once.
pub fn split_k() -> impl Strategy<Value = SplitK> {
    prop_oneof![
        Just(SplitK::Auto),
        (1usize..=6, 1usize..=5).prop_map(|(l, parallel)| SplitK::Slices {
            len: 16 * l,
            parallel
        }),
    ]
}

/// `split`'s slices cut to what `kernel` runs for products with up to
/// `f32_operands` f32 operands: the emulated cooperative kernel's slice of
/// a dispatch, 96 of k, is 48 with one f32 operand and 32 with two (its
/// products of halves); every other kernel's holds [`split_k`]'s.
pub fn within(split: SplitK, kernel: ProductKernel, f32_operands: usize) -> SplitK {
    match split {
        SplitK::Slices { len, parallel } if kernel == ProductKernel::CoopEmulated => {
            SplitK::Slices {
                len: len.min(96 / (1 + f32_operands)),
                parallel,
            }
        }
        other => other,
    }
}
