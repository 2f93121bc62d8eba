//! The benchmarks' data: one deterministic generator (splitmix64, which
//! `benches/compare_torch.py` reproduces), and each op's tensors drawn from
//! it and stored in the case's precision.

use super::BenchOp;
use crate::core::shape::Layout;
use crate::core::Precision;
use crate::ops::softmax::SoftmaxKind;

/// Deterministic benchmark data: logits uniform in [-10, 10), class targets.
/// The same generator as `benches/compare_torch.py`'s (splitmix64).
///
/// ```
/// let layout = xent::Layout::from_dims(&[4, 10]).unwrap();
/// let (logits, targets) = xent::bench::bench_data(&layout, 0x5eed);
/// assert_eq!((logits.len(), targets.len()), (40, 4));
/// assert!(logits.iter().all(|x| (-10.0..10.0).contains(x)) && targets.iter().all(|&t| (0..10).contains(&t)));
/// ```
pub fn bench_data(layout: &Layout, seed: u64) -> (Vec<f32>, Vec<i64>) {
    let mut state = seed;
    let mut next = move || splitmix(&mut state);
    let logits = (0..layout.len())
        .map(|_| ((next() >> 40) as f32 / (1u64 << 24) as f32) * 20.0 - 10.0)
        .collect();
    let targets = (0..layout.rows())
        .map(|_| (next() % layout.classes as u64) as i64)
        .collect();
    (logits, targets)
}

/// The next splitmix64 draw from `state`: the benchmarks' one generator,
/// which `benches/compare_torch.py` reproduces.
pub(crate) fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The second tensor of an op of three, from the benchmarks' generator (seed
/// 0x7a67): an elementwise loss's targets in [0, 1], softmax backward's dy
/// in [-1, 1).
pub(super) fn second_tensor(op: BenchOp, layout: &Layout) -> Vec<f32> {
    let values = bench_data(layout, 0x7a67).0;
    match op {
        BenchOp::SoftmaxBackward(_) => values.iter().map(|v| v / 10.0).collect(),
        _ => values.iter().map(|v| (v + 10.0) / 20.0).collect(),
    }
}

/// A forward output for a backward case, from the generator's values x in
/// [-10, 10): p = (x + 10.5) / (10.5 C), in (0, 2/C) and summing to about 1
/// over a row, or its logarithm for log-softmax: values of the size a real
/// forward gives, so that the backward's outputs are too.
pub(super) fn forward_like(kind: SoftmaxKind, x: &[f32], classes: usize) -> Vec<f32> {
    let scale = 10.5 * classes as f32;
    let p = x.iter().map(|v| (v + 10.5) / scale);
    match kind {
        SoftmaxKind::Softmax => p.collect(),
        SoftmaxKind::LogSoftmax => p.map(f32::ln).collect(),
    }
}

/// `values` as the device stores them in `precision` (widened back to f32
/// exactly) and their bytes, in whole vec4s as the host API uploads them.
pub(super) fn stored(precision: Precision, values: &[f32]) -> (Vec<f32>, Vec<u8>) {
    let (widened, mut bytes): (Vec<f32>, Vec<u8>) = match precision {
        Precision::F32 => (values.to_vec(), bytemuck::cast_slice(values).to_vec()),
        Precision::F16 => {
            let h: Vec<half::f16> = values.iter().map(|&v| half::f16::from_f32(v)).collect();
            (
                h.iter().map(|v| v.to_f32()).collect(),
                bytemuck::cast_slice(&h).to_vec(),
            )
        }
        Precision::BF16 => {
            let h: Vec<half::bf16> = values.iter().map(|&v| half::bf16::from_f32(v)).collect();
            (
                h.iter().map(|v| v.to_f32()).collect(),
                bytemuck::cast_slice(&h).to_vec(),
            )
        }
    };
    bytes.resize(bytes.len().next_multiple_of(16), 0);
    (widened, bytes)
}
