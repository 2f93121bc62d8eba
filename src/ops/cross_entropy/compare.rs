//! Verify mode's comparison of a cross-entropy call's outputs with the twin's.

use super::cpu::CrossEntropyOutput;
use crate::core::verify::{compare_classes, compare_count, Terms, Tolerance};
use crate::error::Result;

impl Tolerance {
    /// Compares every output of a cross-entropy call: the loss, and the
    /// gradient and log-sum-exp where both have them (with the magnitudes of
    /// `cpu`, when it has them), and the correct count exactly. `grad` is
    /// the tolerance of the gradient (e.g. [`Tolerance::F16`] for an f16 one).
    ///
    /// # Errors
    /// As [`Tolerance::compare`]; a different correct count is an
    /// [`Error::Mismatch`](crate::Error::Mismatch) with no tolerance.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// let cpu = xent::cpu::cross_entropy(&[0.0f32, 0.0], &[2], &[1], None, &Default::default())?;
    /// let mut gpu = xent::cpu::CrossEntropyOutput {
    ///     loss: vec![std::f32::consts::LN_2], loss_dims: vec![], grad: Some(vec![0.5, -0.5]),
    ///     lse: None, correct: None, argmax: None, entropy: None, magnitude: None };
    /// let tol = xent::Tolerance::default();
    /// tol.compare_cross_entropy(&gpu, &cpu, &tol)?;
    /// gpu.grad = Some(vec![0.5, 0.0]);
    /// assert!(tol.compare_cross_entropy(&gpu, &cpu, &tol).is_err());
    /// # Ok(()) }
    /// ```
    pub fn compare_cross_entropy(
        &self,
        gpu: &CrossEntropyOutput<f32>,
        cpu: &CrossEntropyOutput<f64>,
        grad: &Tolerance,
    ) -> Result<()> {
        let m = cpu.magnitude.as_ref();
        let loss = Terms {
            magnitude: m.map(|m| &m.loss[..]),
            flush: m.map(|m| &m.loss_flush[..]),
        };
        self.compare_terms("loss", &gpu.loss, &cpu.loss, loss)?;
        let grad_terms = Terms {
            magnitude: m.and_then(|m| m.grad.as_deref()),
            flush: m.and_then(|m| m.grad_flush.as_deref()),
        };
        grad.compare_if_both("grad", gpu.grad.as_deref(), cpu.grad.as_deref(), grad_terms)?;
        let lse = Terms {
            magnitude: m.and_then(|m| m.lse.as_deref()),
            flush: None,
        };
        self.compare_if_both("lse", gpu.lse.as_deref(), cpu.lse.as_deref(), lse)?;
        let entropy = Terms {
            magnitude: m.and_then(|m| m.entropy.as_deref()),
            flush: None,
        };
        let (g, c) = (gpu.entropy.as_deref(), cpu.entropy.as_deref());
        self.compare_if_both("entropy", g, c, entropy)?;
        // The predicted classes exactly (ties: the first index), but for
        // rows within the cap's and the temperature's f32 rounding.
        let ties = m.map_or(&[][..], |m| &m.argmax_ties[..]);
        compare_classes(gpu.argmax.as_deref(), cpu.argmax.as_deref(), ties)?;
        // The twin counts always; the GPU when asked. Rows whose top two
        // logits are within f32 rounding may count either way.
        compare_count(gpu.correct, cpu.correct, m.map_or(0, |m| m.correct_slack))
    }
}
