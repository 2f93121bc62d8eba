//! Comparing GPU results with the CPU reference: the one tolerance policy.
//!
//! A GPU value `g` (f32) matches the CPU value `c` (f64) whose terms have
//! magnitude `M` and whose flush factor is `F` when
//!
//! ```text
//! |g − c| ≤ rel · max(|g|, |c|, M) + abs + F · 2⁻¹²⁶
//! ```
//!
//! or both are NaN, or `c` rounded to f32 is an infinity and `g` is the same
//! infinity (a finite f64 value past f32's range is written as ±∞ by a
//! correct kernel). The defaults: `rel = 1e-4`, `abs = 2⁻¹²⁶` (f32's
//! smallest normal number: WGSL lets a GPU flush smaller results to zero).
//!
//! **Magnitude.** `M` is what the error of an f32 kernel scales with: the sum
//! of the absolute values of the terms the value is computed from, as the
//! CPU twins report it ([`crate::cpu::Reference`],
//! [`crate::cpu::CrossEntropyOutput::magnitude`]). For a value computed
//! without cancellation (a probability, a product of them) `M = |c|`, so the
//! comparison is purely relative: an element left at 0, or wrong by any
//! factor past 1 ± 10⁻⁴, fails however small the tensor's values are (a
//! softmax over 10⁶ classes, the gradient of a `mean` over many rows). Where
//! terms cancel (`p − 1` at the target, `x − max − ln Σ` near 0), `M` is the
//! size of the terms, which is what rounding in f32 is relative to. A
//! logarithm `ln s` of a sum counts as `|ln s| + 0.1`: an f32 sum carries a
//! relative error that its logarithm turns into an absolute one, so a log
//! term may be off by 10⁻⁵ (`rel × 0.1`) times its coefficient.
//!
//! **Flush factor.** WGSL lets a GPU flush any subnormal f32 value to zero:
//! an input, an intermediate (`e^(x − m)` of a probability below 2⁻¹²⁶), or
//! a result. `abs` covers the result itself; an input or intermediate
//! flushed on its way moves the result by at most 2⁻¹²⁶ times the factor it
//! is multiplied by afterwards (a class weight, `pos_weight`, z-loss's
//! `2z·lse`, the mean's `1/Σw`, the weight matrix of the fused op's
//! gradient). `F` is the sum of those factors over the value's inputs and
//! intermediates, as the CPU twins report it ([`crate::cpu::Reference::flush`]):
//! it grows the floor only by what a flush can legitimately leave, only
//! where it can, so a value of 10⁻³⁶ scaled by a weight of 10³ may come out
//! as 0 while an element that matters, left at 0, still fails. The twins
//! count every product and sum as a possible flush, so `F` is at least 1
//! plus the factors.
//!
//! These are set once here for every op and every test, and are not loosened
//! to make a test pass: f32 kernels that subtract the max and merge
//! (max, sum-exp) pairs land within a few ulps of the f64 reference, far
//! inside them.

use super::reference::Reference;
use crate::error::{Error, Result};

/// How far a GPU result may be from the CPU's: GPU value `g` matches CPU
/// value `c` whose terms have magnitude `M` and whose flush factor is `F`
/// when `|g − c| ≤ rel·max(|g|, |c|, M) + abs + F·2⁻¹²⁶`, or both are NaN, or `c` rounded to
/// the output's type is the infinity `g` is (`|c| ≥ overflow`, f32's by
/// default). `M` comes with the CPU twins' values
/// ([`crate::cpu::Reference`], [`crate::cpu::CrossEntropyOutput::magnitude`]):
/// `|c|` for a value computed without cancellation, so that a small value
/// left at 0 never passes, and the size of the terms where they cancel
/// (`p − 1` at a target). `F` is the sum of the factors that multiply the
/// value's f32 inputs and intermediates after a GPU may have flushed them
/// (0 where the twin reports none). The defaults: `rel = 1e-4`, `abs = 2⁻¹²⁶` (f32's
/// smallest normal: a GPU may flush smaller results). The README's
/// "Tolerance policy" says why each part is there.
///
/// ```
/// let tol = xent::Tolerance::default();
/// assert!(tol.matches(1.00001, 1.0));
/// assert!(!tol.matches(1.01, 1.0));
/// // Small values are compared relatively: an unwritten 0 never passes.
/// assert!(!tol.matches(0.0, 1e-9));
/// // Unless the terms they come from were large: p − 1 for p ≈ 1.
/// assert!(tol.matches_terms(0.0, -1e-9, 1.0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Relative part, times `max(|gpu|, |cpu|, magnitude)`.
    pub rel: f64,
    /// Absolute floor.
    pub abs: f64,
    /// Where the output's type rounds to infinity: a CPU value at least
    /// this large is compared as the infinity a kernel writes (f32's
    /// `MAX` plus half its last step by default; f16's 65 520 for
    /// [`Tolerance::F16`]).
    pub overflow: f64,
}

/// f32's smallest normal number, 2⁻¹²⁶: what a flushed f32 value can lose.
const FLUSH: f64 = f32::MIN_POSITIVE as f64;

/// What a CPU value is held to besides itself: the magnitude of its terms
/// (its own size where `None`) and its flush factor (0 where `None`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Terms<'a> {
    pub magnitude: Option<&'a [f64]>,
    pub flush: Option<&'a [f64]>,
}

/// f32's `MAX` plus half its last step: the smallest value f32 rounds to infinity.
const F32_OVERFLOW: f64 = 3.402_823_567_797_336_6e38;

impl Default for Tolerance {
    fn default() -> Self {
        Self {
            rel: 1e-4,
            abs: f64::from(f32::MIN_POSITIVE),
            overflow: F32_OVERFLOW,
        }
    }
}

impl Tolerance {
    /// The policy for outputs stored in f16 (the gradient of
    /// [`Context::cross_entropy_with`](crate::Context::cross_entropy_with) of `half::f16`):
    /// f16 keeps 11 significant bits, a rounding error of at most
    /// 2⁻¹¹ ≈ 4.9e-4 relative, so `rel = 1e-3`; the floor is f16's smallest
    /// normal number, 2⁻¹⁴ ≈ 6.1e-5, below which f16 loses precision and a
    /// device may flush. So an f16 gradient element below 6.1e-5 (a `mean`
    /// over more than ~10⁴ rows) is not checked by this tolerance: hold such
    /// runs to the f32 path, or use `sum`.
    ///
    /// ```
    /// let tol = xent::Tolerance::F16;
    /// // 0.1 and its f16 rounding, 0.09997559, agree; 0.1 and 0.1005 do not.
    /// assert!(tol.matches(f64::from(half::f16::from_f32(0.1).to_f32()), 0.1));
    /// assert!(!tol.matches(0.1005, 0.1));
    /// // Past 65 520 an f16 kernel writes ∞, which this policy, unlike f32's, accepts.
    /// assert!(tol.matches(f64::INFINITY, 70_000.0));
    /// assert!(!xent::Tolerance::default().matches(f64::INFINITY, 70_000.0));
    /// ```
    pub const F16: Tolerance = Tolerance {
        rel: 1e-3,
        abs: 6.103_515_625e-5,
        overflow: 65_520.0,
    };

    /// The policy for outputs stored in bf16 (the gradient of
    /// [`Context::cross_entropy_with`](crate::Context::cross_entropy_with) of `half::bf16`):
    /// bf16 keeps 8 significant bits, a rounding error of at most
    /// 2⁻⁸ ≈ 3.9e-3 relative, so `rel = 8e-3`; bf16 has f32's exponent range,
    /// so the floor is f32's, 2⁻¹²⁶.
    ///
    /// ```
    /// let tol = xent::Tolerance::BF16;
    /// // 0.1 and its bf16 rounding, 0.10009766, agree; 0.1 and 0.1016 (one bf16 step more) do not.
    /// assert!(tol.matches(f64::from(half::bf16::from_f32(0.1).to_f32()), 0.1));
    /// assert!(!tol.matches(0.1016, 0.1));
    /// ```
    pub const BF16: Tolerance = Tolerance {
        rel: 8e-3,
        abs: f32::MIN_POSITIVE as f64,
        // (2 − 2⁻⁸)·2¹²⁷: bf16's largest finite value plus half its last step.
        overflow: 3.396_177_529_230_46e38,
    };

    /// Whether GPU value `gpu` matches CPU value `cpu`, computed without
    /// cancellation (its magnitude is `|cpu|`).
    ///
    /// ```
    /// let tol = xent::Tolerance::default();
    /// assert!(tol.matches(0.50004, 0.5)); // off by 8e-5 relative
    /// assert!(!tol.matches(0.5001, 0.5)); // off by 2e-4
    /// assert!(tol.matches(f64::NAN, f64::NAN) && !tol.matches(0.0, f64::NAN));
    /// ```
    pub fn matches(&self, gpu: f64, cpu: f64) -> bool {
        self.matches_terms(gpu, cpu, cpu.abs())
    }

    /// Whether GPU value `gpu` matches CPU value `cpu` whose terms have
    /// magnitude `magnitude`.
    ///
    /// ```
    /// // A gradient at the target, p − 1 with p = 1 − 1e-6: terms of size 1 cancel.
    /// let tol = xent::Tolerance::default();
    /// assert!(tol.matches_terms(-1.05e-6, -1e-6, 1.0)); // 5e-8 off, within 1e-4 of the terms
    /// assert!(!tol.matches(-1.05e-6, -1e-6)); // but not within 1e-4 of the value
    /// assert!(!tol.matches_terms(-2e-4, -1e-6, 1.0));
    /// ```
    pub fn matches_terms(&self, gpu: f64, cpu: f64, magnitude: f64) -> bool {
        self.excess(gpu, cpu, magnitude, 0.0) <= 0.0
    }

    /// Whether GPU value `gpu` matches CPU value `cpu` whose terms have
    /// magnitude `magnitude` and whose flush factor is `flush` (see the
    /// type's documentation).
    ///
    /// ```
    /// // A probability of 1e-39 (flushed to 0 by the GPU) times a class weight of 100.
    /// let tol = xent::Tolerance::default();
    /// assert!(!tol.matches_terms(0.0, 1e-37, 1e-37)); // 0 is not 1e-37
    /// assert!(tol.matches_flushed(0.0, 1e-37, 1e-37, 101.0)); // unless a flush times 101 explains it
    /// assert!(!tol.matches_flushed(0.0, 1e-30, 1e-30, 101.0)); // and only that much
    /// ```
    pub fn matches_flushed(&self, gpu: f64, cpu: f64, magnitude: f64, flush: f64) -> bool {
        self.excess(gpu, cpu, magnitude, flush) <= 0.0
    }

    /// The absolute part of the bound for a value of flush factor `flush`
    /// (one that is not finite counts as 0: it never widens the bound to
    /// everything).
    fn floor(&self, flush: f64) -> f64 {
        self.abs
            + if flush.is_finite() {
                flush * FLUSH
            } else {
                0.0
            }
    }

    /// How far past its bound `gpu` is (≤ 0 when it matches; +∞ for a NaN or
    /// infinity where the other is not the same).
    fn excess(&self, gpu: f64, cpu: f64, magnitude: f64, flush: f64) -> f64 {
        if gpu.is_nan() || cpu.is_nan() {
            return if gpu.is_nan() && cpu.is_nan() {
                0.0
            } else {
                f64::INFINITY
            };
        }
        let cpu32 = self.as_written(cpu);
        if gpu.is_infinite() || cpu32.is_infinite() {
            return if gpu == cpu32 { 0.0 } else { f64::INFINITY };
        }
        let bound = self.rel * gpu.abs().max(cpu.abs()).max(magnitude) + self.floor(flush);
        (gpu - cpu).abs() - bound
    }

    /// Compares two tensors element by element, each CPU value computed
    /// without cancellation (softmax, probabilities; see [`Tolerance::check`]
    /// for values with a magnitude).
    ///
    /// # Errors
    /// [`Error::Mismatch`] naming the worst element (the one furthest past its
    /// bound), both values and this tolerance; a length difference is a
    /// [`Error::ShapeMismatch`].
    ///
    /// ```
    /// let tol = xent::Tolerance::default();
    /// assert!(tol.compare("loss", &[1.0f32], &[1.0]).is_ok());
    /// assert!(matches!(tol.compare("loss", &[2.0f32], &[1.0]), Err(xent::Error::Mismatch { index: 0, .. })));
    /// ```
    pub fn compare(&self, what: &'static str, gpu: &[f32], cpu: &[f64]) -> Result<()> {
        self.compare_terms(what, gpu, cpu, Terms::default())
    }

    /// Compares a GPU tensor with a CPU [`Reference`] (values, the
    /// magnitudes of their terms and their flush factors).
    ///
    /// # Errors
    /// As [`Tolerance::compare`].
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// let reference = xent::cpu::log_softmax_reference(&[0.0f32, 30.0], &[2])?;
    /// xent::Tolerance::default().check("log_softmax", &[-30.0, 0.0], &reference)?;
    /// # Ok(()) }
    /// ```
    pub fn check(&self, what: &'static str, gpu: &[f32], cpu: &Reference) -> Result<()> {
        let terms = Terms {
            magnitude: Some(&cpu.magnitude),
            flush: Some(&cpu.flush),
        };
        self.compare_terms(what, gpu, &cpu.value, terms)
    }

    /// `compare_terms` where both sides have the output
    /// (`what` of a call that may skip it); `Ok` where either lacks it.
    pub(crate) fn compare_if_both(
        &self,
        what: &'static str,
        gpu: Option<&[f32]>,
        cpu: Option<&[f64]>,
        terms: Terms<'_>,
    ) -> Result<()> {
        match (gpu, cpu) {
            (Some(g), Some(c)) => self.compare_terms(what, g, c, terms),
            _ => Ok(()),
        }
    }

    pub(crate) fn compare_terms(
        &self,
        what: &'static str,
        gpu: &[f32],
        cpu: &[f64],
        terms: Terms<'_>,
    ) -> Result<()> {
        for (of, len) in [
            (what, gpu.len()),
            ("magnitude", terms.magnitude.map_or(cpu.len(), <[f64]>::len)),
            ("flush", terms.flush.map_or(cpu.len(), <[f64]>::len)),
        ] {
            if len != cpu.len() {
                return Err(Error::ShapeMismatch {
                    what: of,
                    shape: vec![cpu.len()],
                    expected: cpu.len(),
                    actual: len,
                });
            }
        }
        let magnitude_at = |i: usize| terms.magnitude.map_or(cpu[i].abs(), |m| m[i]);
        let flush_at = |i: usize| terms.flush.map_or(0.0, |f| f[i]);
        let mut worst: Option<(usize, f64)> = None;
        for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
            let excess = self.excess(f64::from(g), c, magnitude_at(i), flush_at(i));
            if excess > 0.0 && worst.is_none_or(|(_, e)| excess > e) {
                worst = Some((i, excess));
            }
        }
        match worst {
            None => Ok(()),
            Some((index, _)) => Err(Error::Mismatch {
                what,
                index,
                gpu: f64::from(gpu[index]),
                cpu: cpu[index],
                magnitude: magnitude_at(index),
                abs: self.floor(flush_at(index)),
                rel: self.rel,
            }),
        }
    }
}

impl Tolerance {
    /// CPU value `c` as a kernel can write it where that differs in kind:
    /// past the output type's range, the infinity; otherwise `c` itself.
    fn as_written(&self, c: f64) -> f64 {
        if c.abs() >= self.overflow {
            f64::INFINITY.copysign(c)
        } else {
            c
        }
    }
}

/// The GPU's count of correct rows (`None` when not asked for) against the
/// twin's (which counts always), which may differ by `slack`: the rows whose
/// two largest logits lie within f32 rounding of each other.
///
/// # Errors
/// [`Error::Mismatch`] of `"correct"`, its magnitude the slack.
pub(crate) fn compare_count(gpu: Option<u64>, cpu: Option<u64>, slack: u64) -> Result<()> {
    let (Some(g), c) = (gpu, cpu.unwrap_or(0)) else {
        return Ok(());
    };
    if cpu.is_none() || g.abs_diff(c) > slack {
        return Err(Error::Mismatch {
            what: "correct",
            index: 0,
            gpu: g as f64,
            cpu: c as f64,
            magnitude: slack as f64,
            abs: 0.0,
            rel: 0.0,
        });
    }
    Ok(())
}

/// Each row's predicted class, the GPU's against the twin's, exactly:
/// where `ties` lists a row (sorted by row), any of its classes will do
/// (logits within the f32 rounding of a soft-cap or a temperature).
pub(crate) fn compare_classes(
    gpu: Option<&[i64]>,
    cpu: Option<&[i64]>,
    ties: &[(usize, Vec<i64>)],
) -> Result<()> {
    let (Some(g), Some(c)) = (gpu, cpu) else {
        return Ok(());
    };
    let tied = |i: usize, v: i64| match ties.binary_search_by_key(&i, |t| t.0) {
        Ok(k) => ties[k].1.contains(&v),
        Err(_) => false,
    };
    let bad = (0..g.len().max(c.len())).find(|&i| match (g.get(i), c.get(i)) {
        (Some(&gv), Some(&cv)) => gv != cv && !tied(i, gv),
        _ => true,
    });
    match bad {
        None => Ok(()),
        Some(i) => Err(Error::Mismatch {
            what: "argmax",
            index: i,
            gpu: g.get(i).map_or(f64::NAN, |&v| v as f64),
            cpu: c.get(i).map_or(f64::NAN, |&v| v as f64),
            magnitude: 0.0,
            abs: 0.0,
            rel: 0.0,
        }),
    }
}

/// CPU value `c` as an f32 kernel can write it (see [`Tolerance::overflow`]).
fn as_written(c: f64) -> f64 {
    Tolerance::default().as_written(c)
}

/// Largest |gpu − cpu| over two tensors, NaN-aware: positions where both are
/// NaN or the same infinity count as 0, the CPU value taken as f32 would
/// hold it (a finite f64 past f32's range is an infinity). For reports, not
/// for pass/fail.
///
/// ```
/// assert_eq!(xent::max_abs_diff(&[1.0, f32::NAN], &[1.5, f64::NAN]), 0.5);
/// ```
pub fn max_abs_diff(gpu: &[f32], cpu: &[f64]) -> f64 {
    gpu.iter()
        .zip(cpu)
        .map(|(&g, &c)| {
            let g = f64::from(g);
            let c = as_written(c);
            if (g.is_nan() && c.is_nan()) || g == c {
                0.0
            } else {
                (g - c).abs()
            }
        })
        .fold(0.0, f64::max)
}

/// A deliberate corruption of the host API's GPU results, applied after they
/// are read back and before verify mode compares them: the mutation tests
/// use it to show that verify mode and the CLI's check catch an unwritten
/// tail or two swapped classes. Not for use outside tests.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The last 1 % of every row (at least one element) set to 0, as a loop
    /// cut short leaves it.
    ZeroTail,
    /// The first and last class of every row swapped.
    SwapClasses,
}

impl Fault {
    /// Reads a fault's name: `zero-tail` or `swap-classes`.
    ///
    /// ```
    /// use xent::Fault;
    /// assert_eq!(Fault::from_name("zero-tail"), Some(Fault::ZeroTail));
    /// assert_eq!(Fault::from_name("swap-classes"), Some(Fault::SwapClasses));
    /// assert_eq!(Fault::from_name("zero_tail"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "zero-tail" => Some(Fault::ZeroTail),
            "swap-classes" => Some(Fault::SwapClasses),
            _ => None,
        }
    }

    /// Applies the fault to `values` in `layout`'s rows.
    pub(crate) fn apply(self, values: &mut [f32], layout: &crate::Layout) {
        let classes = layout.classes;
        for row in 0..layout.rows() {
            match self {
                Fault::ZeroTail => {
                    for c in classes - classes.div_ceil(100)..classes {
                        values[layout.element(row, c)] = 0.0;
                    }
                }
                Fault::SwapClasses => {
                    values.swap(layout.element(row, 0), layout.element(row, classes - 1));
                }
            }
        }
    }
}
