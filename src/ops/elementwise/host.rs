//! The host API of the elementwise losses: slices in, `Vec`s out, through
//! the recording API; verify mode holds each result to its CPU twin.

use super::buffers::ElementwiseBuffers;
use super::cpu::{self, ElementwiseOutput};
use super::options::{ElementwiseLoss, ElementwiseOptions, LossWeights};
use super::validate;
use crate::error::{GpuScope, Result};
use crate::gpu::transfer::{to_f32, STORAGE_OUT};
use crate::gpu::Context;
use crate::ops::cross_entropy::options::Reduction;
use crate::ops::cross_entropy::{Status, STATUS_SIZE};
use crate::shape::Layout;

impl Context {
    /// An elementwise loss and its gradient on the GPU (see
    /// [`ElementwiseLoss`] for the formulas), as PyTorch's functional loss
    /// of the same name: `input` and `target` of shape `dims` (any shape,
    /// `[]` included), `weights` for the binary losses (see
    /// [`LossWeights`]).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) for an input
    /// or target of another length; [`Error::WeightShape`](crate::Error::WeightShape);
    /// [`Error::InvalidOption`](crate::Error::InvalidOption) for `beta < 0`,
    /// `delta ≤ 0` (or either not finite) or a weight the loss does not
    /// take; [`Error::InputOutOfRange`](crate::Error::InputOutOfRange) for a
    /// `Bce` input outside [0, 1] (found on the GPU);
    /// [`Error::Unsupported`](crate::Error::Unsupported) for 2³² elements or
    /// more; [`Error::Mismatch`](crate::Error::Mismatch) in verify mode;
    /// [`Error::Gpu`](crate::Error::Gpu); [`Error::DeviceLost`](crate::Error::DeviceLost).
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use xent::{ElementwiseLoss, ElementwiseOptions, LossWeights};
    /// let ctx = xent::Context::from_env()?;
    /// // Two labels of one sample, the second positive, counted twice as much.
    /// let pos_weight = [1.0f32, 2.0];
    /// let weights = LossWeights { pos_weight: Some(&pos_weight), ..Default::default() };
    /// let out = ctx.elementwise_loss(ElementwiseLoss::BceWithLogits, &[0.0, 0.0], &[0.0, 1.0],
    ///     &[1, 2], weights, &ElementwiseOptions::default())?;
    /// let ln2 = std::f32::consts::LN_2;
    /// assert!((out.loss[0] - 1.5 * ln2).abs() < 1e-6);
    /// assert_eq!(out.grad, Some(vec![0.25, -0.5]));
    /// # Ok(()) }
    /// ```
    pub fn elementwise_loss(
        &self,
        loss: ElementwiseLoss,
        input: &[f32],
        target: &[f32],
        dims: &[usize],
        weights: LossWeights<'_>,
        options: &ElementwiseOptions,
    ) -> Result<ElementwiseOutput<f32>> {
        let (shape, weight_shape) = validate::slices(loss, dims, input, target, weights)?;
        let bytes = shape.len as u64 * 4;
        self.check_buffer_sizes(dims, &[("input", bytes)])?;
        self.plan_elementwise(&shape, weight_shape, weights.pos_weight.is_some())?;
        let loss_len = if options.reduction == Reduction::None {
            shape.len
        } else {
            1
        };
        let guard = self.host_lock.lock().unwrap_or_else(|e| e.into_inner());
        let scope = GpuScope::push(&self.device);
        let output = |label, words: usize| {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                // At least a word: an empty input still reads back a buffer.
                size: (words as u64 * 4).max(4),
                usage: STORAGE_OUT,
                mapped_at_creation: false,
            })
        };
        // The first upload finds a lost device (Error::DeviceLost).
        let upload = |label, v: &[f32]| {
            // An empty tensor still needs a buffer to bind.
            let bytes: &[u8] = if v.is_empty() {
                &[0; 4]
            } else {
                bytemuck::cast_slice(v)
            };
            self.upload(label, bytes)
        };
        let input_buf = upload("xent input", input)?;
        let target_buf = upload("xent target", target)?;
        let weight_buf = weights
            .weight
            .map(|w| upload("xent weight", w))
            .transpose()?;
        let pos_buf = weights
            .pos_weight
            .map(|w| upload("xent pos_weight", w))
            .transpose()?;
        let loss_buf = output("xent loss", loss_len);
        let grad_buf = options.grad.then(|| output("xent grad", shape.len));
        let status_buf =
            (loss == ElementwiseLoss::Bce).then(|| output("xent status", STATUS_SIZE as usize / 4));
        let mut encoder = self.device.create_command_encoder(&Default::default());
        self.record_elementwise_loss(
            &mut encoder,
            loss,
            dims,
            &ElementwiseBuffers {
                weight: weight_buf.as_ref().zip(weight_shape),
                pos_weight: pos_buf.as_ref(),
                status: status_buf.as_ref(),
                ..ElementwiseBuffers::new(&input_buf, &target_buf, &loss_buf, grad_buf.as_ref())
            },
            options.reduction,
        )?;
        let mut wanted = vec![&loss_buf];
        wanted.extend(grad_buf.as_ref());
        wanted.extend(status_buf.as_ref());
        let bytes = self.download(encoder, &wanted);
        scope.pop("running an elementwise loss")?;
        drop(guard);
        let bytes = bytes?;
        if status_buf.is_some() {
            let status = Status::from_bytes(&bytes[wanted.len() - 1]);
            if status.bad_targets > 0 {
                // The values from the host's copies: the GPU reads them only within its first binding.
                let first = status.first_position as usize;
                let at = |v: &[f32]| v.get(first).copied().unwrap_or(f32::NAN);
                return Err(validate::out_of_range(
                    &shape,
                    first,
                    at(input),
                    at(target),
                    u64::from(status.bad_targets),
                ));
            }
        }
        let mut grad = grad_buf.map(|_| to_f32(&bytes[1], shape.len));
        if let (Some(fault), Some(g)) = (self.fault, grad.as_mut()) {
            if shape.len > 0 {
                fault.apply(g, &Layout::from_dims(&[shape.len])?);
            }
        }
        let out = ElementwiseOutput {
            loss: to_f32(&bytes[0], loss_len),
            loss_dims: if options.reduction == Reduction::None {
                shape.dims.clone()
            } else {
                Vec::new()
            },
            grad,
            magnitude: None,
        };
        if let Some(tol) = self.verify {
            let reference = cpu::elementwise_loss(loss, input, target, dims, weights, options)?;
            tol.compare_elementwise(&out, &reference)?;
        }
        Ok(out)
    }
}
