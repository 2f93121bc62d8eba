//! The fused linear cross-entropy's host API: slices in, `Vec`s out,
//! through the recording API; verify mode holds the result to the CPU twin.

use super::cpu::{self, LinearOutput};
use super::options::LinearCrossEntropyOptions;
use super::record::LinearBuffers;
use super::LinearDims;
use crate::core::precision::widen_all;
use crate::core::shape::Layout;
use crate::core::status::{words, OpStatus, STATUS_SIZE};
use crate::core::transfer::to_f32;
use crate::core::Reduction;
use crate::core::{Context, Element, Returns};
use crate::error::{Error, GpuScope, Result};
use crate::ops::cross_entropy::host::narrow_targets;
use crate::ops::cross_entropy::CrossEntropyStatus;
use crate::ops::cross_entropy::TargetBuffer;

/// **Host API** of the fused linear cross-entropy: slices in, `Vec`s out.
impl Context {
    /// The fused linear cross-entropy on the GPU: the loss of
    /// `logits = h·Wᵀ + b` (`hidden` `(n, h)`, `weight` `(v, h)`, `bias`
    /// `(v)`, row-major) against class-index `targets` `(n)`, and its
    /// gradients, without the `(n, v)` logits existing whole on the device
    /// (see [`Context::record_linear_cross_entropy`]; the scratch stays
    /// within `opts.scratch_budget`). `hidden`, `weight` and `bias` are
    /// stored on the device as `T` is (`f32`, `half::bf16`, or `half::f16`
    /// on devices with `SHADER_F16`); the outputs are f32. In verify mode
    /// each output is held to [`cpu::linear_cross_entropy`](crate::cpu::linear_cross_entropy)
    /// of the inputs widened to f32.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for a slice of another length than `dims`
    /// needs; [`Error::WeightsLength`]; [`Error::TargetOutOfRange`];
    /// [`Error::InvalidOption`]; the errors of
    /// [`Context::record_linear_cross_entropy`]; [`Error::Mismatch`] in
    /// verify mode; [`Error::Gpu`]; [`Error::DeviceLost`].
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// let ctx = xent::Context::from_env()?.with_verify(xent::Tolerance::default());
    /// let dims = xent::LinearDims { n: 2, h: 2, v: 3 };
    /// let hidden = [1.0f32, 0.0, 0.0, 1.0];
    /// let weight = [1.0f32, 0.0, 0.0, 1.0, -1.0, -1.0];
    /// let out = ctx.linear_cross_entropy(&hidden, &weight, None, &[0, 1], None, &dims, &Default::default(), &Default::default())?;
    /// // Both rows have logits (1, 0, −1) up to order, the target at 1: ln(1 + e⁻¹ + e⁻²).
    /// assert!((out.loss[0] - (1.0 + (-1.0f32).exp() + (-2.0f32).exp()).ln()).abs() < 1e-6);
    /// assert_eq!(out.grad_weight.unwrap().len(), 6);
    /// # Ok(()) }
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn linear_cross_entropy<T: Element>(
        &self,
        hidden: &[T],
        weight: &[T],
        bias: Option<&[T]>,
        targets: &[i64],
        class_weights: Option<&[f32]>,
        dims: &LinearDims,
        opts: &LinearCrossEntropyOptions,
        returns: &Returns,
    ) -> Result<LinearOutput<f32>> {
        let dims = *dims;
        let LinearDims { n, h, v } = dims;
        opts.validate()?;
        opts.loss.check_returns(returns)?;
        // The shapes, by the twin's rule, before anything is uploaded.
        super::check_lengths(
            dims,
            hidden.len(),
            weight.len(),
            bias.map(<[T]>::len),
            targets.len(),
        )?;
        if let Some(w) = class_weights {
            if w.len() != v {
                return Err(Error::WeightsLength {
                    classes: v,
                    actual: w.len(),
                });
            }
        }
        let layout = Layout::from_dims(&[n, v])?;
        let targets32 = narrow_targets(&layout, targets, opts.loss.ignore_index)?;
        let p = T::PRECISION;
        p.supported_on(&self.device, "f16 hidden states and weights")?;
        self.plan_linear_cross_entropy(&dims, opts, returns)?;
        let (hidden_r, weight_r) = (widen_all(hidden), widen_all(weight));
        let bias_r = bias.map(widen_all);

        let guard = self.host_lock.lock().unwrap_or_else(|e| e.into_inner());
        let scope = GpuScope::push(&self.device);
        let output = |label, elems| self.output(label, elems);
        let hidden_buf = self.upload("xent hidden", bytemuck::cast_slice(hidden))?;
        let weight_buf = self.upload("xent weight", bytemuck::cast_slice(weight))?;
        let bias_buf = bias
            .map(|b| self.upload("xent bias", bytemuck::cast_slice(b)))
            .transpose()?;
        let targets_buf = self.upload("xent targets", bytemuck::cast_slice(&targets32))?;
        let weights_buf = class_weights
            .map(|w| self.upload("xent class weights", bytemuck::cast_slice(w)))
            .transpose()?;
        let grads = returns.grad;
        let loss_elems = if opts.loss.reduction == Reduction::None {
            n
        } else {
            1
        };
        let loss_buf = output("xent loss", loss_elems);
        let status_buf = output("xent status", STATUS_SIZE as usize / 4);
        let gh_buf = grads.then(|| output("xent grad hidden", n * h));
        let gw_buf = grads.then(|| output("xent grad weight", v * h));
        let gb_buf = (grads && bias.is_some()).then(|| output("xent grad bias", v));
        let lse_buf = returns.lse.then(|| output("xent lse", n));
        let correct_buf = returns.correct.then(|| output("xent correct", 1));
        let mut encoder = self.device.create_command_encoder(&Default::default());
        self.record_linear_cross_entropy(
            &mut encoder,
            &dims,
            opts,
            &LinearBuffers {
                bias: bias_buf.as_ref().map(|b| b.slice(..)),
                weights: weights_buf.as_ref().map(|b| b.slice(..)),
                precision: p,
                grad_hidden: gh_buf.as_ref().map(|b| b.slice(..)),
                grad_weight: gw_buf.as_ref().map(|b| b.slice(..)),
                grad_bias: gb_buf.as_ref().map(|b| b.slice(..)),
                lse: lse_buf.as_ref().map(|b| b.slice(..)),
                correct: correct_buf.as_ref().map(|b| b.slice(..)),
                ..LinearBuffers::new(
                    hidden_buf.slice(..),
                    weight_buf.slice(..),
                    TargetBuffer::ClassI32(targets_buf.slice(..)),
                    loss_buf.slice(..),
                    status_buf.slice(..),
                )
            },
        )?;
        let mut wanted = vec![&status_buf, &loss_buf];
        for b in [&gh_buf, &gw_buf, &gb_buf, &lse_buf, &correct_buf] {
            wanted.extend(b.as_ref());
        }
        let bytes = self.download(encoder, &wanted);
        scope.pop("running the fused linear cross-entropy")?;
        drop(guard);
        let bytes = bytes?;
        let mut bytes = bytes.iter();
        let mut next = || bytes.next().map_or(&[][..], |b| &b[..]);
        CrossEntropyStatus::from_bytes(next()).check(&layout, opts.loss.ignore_index)?;
        let loss = to_f32(next(), loss_elems);
        let grad_hidden = gh_buf.as_ref().map(|_| to_f32(next(), n * h));
        let grad_weight = gw_buf.as_ref().map(|_| to_f32(next(), v * h));
        let grad_bias = gb_buf.as_ref().map(|_| to_f32(next(), v));
        let lse = lse_buf.as_ref().map(|_| to_f32(next(), n));
        let correct = correct_buf.as_ref().map(|_| u64::from(words(next())[0]));
        let out = LinearOutput {
            loss,
            grad_hidden,
            grad_weight,
            grad_bias,
            lse,
            correct,
            magnitude: None,
        };
        if let Some(tol) = self.verify {
            let reference = cpu::linear_cross_entropy(
                &hidden_r,
                &weight_r,
                bias_r.as_deref(),
                targets,
                class_weights,
                &dims,
                opts,
            )?;
            tol.compare_linear(&out, &reference)?;
        }
        Ok(out)
    }
}
