//! Verify mode's comparison of a fused linear cross-entropy call's outputs with the twin's.

use super::cpu::LinearMagnitude;
use super::LinearOutput;
use crate::core::verify::{compare_classes, compare_count, Terms, Tolerance};
use crate::error::Result;

impl Tolerance {
    /// Compares every output of a fused linear cross-entropy call (loss,
    /// the three gradients, lse, entropy, predicted classes, argmax count)
    /// with the magnitudes of `cpu`.
    ///
    /// # Errors
    /// As [`Tolerance::compare`].
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// let dims = xent::LinearDims { n: 1, h: 1, v: 2 };
    /// let cpu = xent::cpu::linear_cross_entropy(&[1.0f32], &[1.0, -1.0], None, &[0], None, &dims,
    ///     &Default::default())?;
    /// let mut gpu = xent::LinearOutput { loss: vec![0.126_928], grad_hidden: Some(vec![-0.238_406]),
    ///     grad_weight: Some(vec![-0.119_203, 0.119_203]), grad_bias: None, lse: None, correct: None,
    ///     argmax: None, entropy: None, magnitude: None };
    /// let tol = xent::Tolerance::default();
    /// tol.compare_linear(&gpu, &cpu)?;
    /// gpu.grad_weight = Some(vec![-0.119_203, -0.119_203]);
    /// assert!(tol.compare_linear(&gpu, &cpu).is_err());
    /// # Ok(()) }
    /// ```
    pub fn compare_linear(&self, gpu: &LinearOutput<f32>, cpu: &LinearOutput<f64>) -> Result<()> {
        let m = cpu.magnitude.as_ref();
        let loss = Terms {
            magnitude: m.map(|m| &m.loss[..]),
            flush: m.map(|m| &m.loss_flush[..]),
        };
        self.compare_terms("loss", &gpu.loss, &cpu.loss, loss)?;
        let terms = |magnitude: fn(&LinearMagnitude) -> Option<&Vec<f64>>,
                     flush: fn(&LinearMagnitude) -> Option<&Vec<f64>>| Terms {
            magnitude: m.and_then(magnitude).map(|v| &v[..]),
            flush: m.and_then(flush).map(|v| &v[..]),
        };
        let pairs = [
            (
                "grad_hidden",
                &gpu.grad_hidden,
                &cpu.grad_hidden,
                terms(|m| m.grad_hidden.as_ref(), |m| m.grad_hidden_flush.as_ref()),
            ),
            (
                "grad_weight",
                &gpu.grad_weight,
                &cpu.grad_weight,
                terms(|m| m.grad_weight.as_ref(), |m| m.grad_weight_flush.as_ref()),
            ),
            (
                "grad_bias",
                &gpu.grad_bias,
                &cpu.grad_bias,
                terms(|m| m.grad_bias.as_ref(), |m| m.grad_bias_flush.as_ref()),
            ),
            (
                "lse",
                &gpu.lse,
                &cpu.lse,
                terms(|m| m.lse.as_ref(), |_| None),
            ),
            (
                "entropy",
                &gpu.entropy,
                &cpu.entropy,
                terms(|m| m.entropy.as_ref(), |_| None),
            ),
        ];
        for (what, g, c, terms) in pairs {
            self.compare_if_both(what, g.as_deref(), c.as_deref(), terms)?;
        }
        // Rows whose top two logits are within the products' error may
        // predict either and count either way. The twin counts always; the
        // GPU when asked.
        let ties = m.map_or(&[][..], |m| &m.argmax_ties[..]);
        compare_classes(gpu.argmax.as_deref(), cpu.argmax.as_deref(), ties)?;
        compare_count(gpu.correct, cpu.correct, m.map_or(0, |m| m.correct_slack))
    }
}
