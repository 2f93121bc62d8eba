//! Data for the near-flush property tests: values whose f32 intermediates
//! land within 2¹² of f32's smallest normal number 2⁻¹²⁶ on either side,
//! where WGSL lets a GPU flush subnormal values to zero, scaled by factors
//! from 10⁻³ to 10³ (class and sample weights, `pos_weight`, z-loss, the
//! mean's denominator). Verify mode must raise no alarm on them.

use super::Rng;
use proptest::test_runner::Config;
use xent::Tolerance;

/// The cases a near-flush property test runs: `PROPTEST_CASES` when set
/// (for a longer run by hand), else 256.
pub fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// A gap `d` with `e^−d = 2⁻¹²⁶·2^k` for `k` uniform in [−12, 12]: a logit
/// `d` below the row's largest gives a probability near 2⁻¹²⁶.
pub fn tiny_gap(rng: &mut Rng) -> f32 {
    (126.0 - rng.uniform(-12.0, 12.0)) * std::f32::consts::LN_2
}

/// A positive value near 2⁻¹²⁶: `2⁻¹²⁶·2^k`, `k` uniform in [−12, 12]
/// (half of them subnormal).
pub fn tiny(rng: &mut Rng) -> f32 {
    (f32::MIN_POSITIVE.ln() + rng.uniform(-12.0, 12.0) * std::f32::consts::LN_2).exp()
}

/// A factor log-uniform in [10⁻³, 10³].
pub fn factor(rng: &mut Rng) -> f32 {
    (rng.uniform(-3.0, 3.0) * std::f32::consts::LN_10).exp()
}

/// `n` factors log-uniform in [10⁻³, 10³].
pub fn factors(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| factor(rng)).collect()
}

/// Logits for `rows` rows of `classes`: each row's first class at 0, the
/// others either `tiny_gap` below it or within 4 of it.
pub fn logits(rng: &mut Rng, rows: usize, classes: usize) -> Vec<f32> {
    (0..rows * classes)
        .map(|i| match (i % classes, rng.below(2)) {
            (0, _) => 0.0,
            (_, 0) => -tiny_gap(rng),
            _ => rng.uniform(-4.0, 0.0),
        })
        .collect()
}

/// Whether `gpu` in place of the twin's `cpu` (magnitude `magnitude`, flush
/// factor `flush`) is past 4 times its bound under `tol`: a corruption that
/// matters, which the check must catch.
pub fn matters(tol: Tolerance, gpu: f64, cpu: f64, magnitude: f64, flush: f64) -> bool {
    let wide = Tolerance {
        rel: 4.0 * tol.rel,
        abs: 4.0 * tol.abs,
        ..tol
    };
    !wide.matches_flushed(gpu, cpu, magnitude, 4.0 * flush)
}
