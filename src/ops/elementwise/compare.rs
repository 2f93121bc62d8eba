//! Verify mode's comparison of an elementwise loss call's outputs with the twin's.

use super::cpu::ElementwiseOutput;
use crate::core::verify::{Terms, Tolerance};
use crate::error::Result;

impl Tolerance {
    /// Compares every output of an elementwise loss call: the loss and,
    /// where both have it, the gradient, with the magnitudes of `cpu`;
    /// `grad` is the gradient's tolerance (e.g. [`Tolerance::BF16`] for a
    /// bf16 one).
    ///
    /// # Errors
    /// As [`Tolerance::compare`].
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use xent::{cpu, ElementwiseLoss, ElementwiseOptions};
    /// let reference = cpu::elementwise_loss(&[1.0, -2.0], &[0.0, 0.0], &[2],
    ///     Default::default(), &ElementwiseOptions::new(ElementwiseLoss::L1))?;
    /// let mut gpu = xent::ElementwiseOutput { loss: vec![1.5], loss_dims: vec![],
    ///     grad: Some(vec![0.5, -0.5]), magnitude: None };
    /// let tol = xent::Tolerance::default();
    /// tol.compare_elementwise(&gpu, &reference, &tol)?;
    /// gpu.grad = Some(vec![0.5, 0.5]);
    /// assert!(tol.compare_elementwise(&gpu, &reference, &tol).is_err());
    /// # Ok(()) }
    /// ```
    pub fn compare_elementwise(
        &self,
        gpu: &ElementwiseOutput<f32>,
        cpu: &ElementwiseOutput<f64>,
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
        grad.compare_if_both("grad", gpu.grad.as_deref(), cpu.grad.as_deref(), grad_terms)
    }
}
