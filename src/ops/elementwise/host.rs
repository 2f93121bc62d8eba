//! The host API of the elementwise losses: slices in, `Vec`s out, through
//! the recording API; verify mode holds each result to its CPU twin.

use std::borrow::Cow;

use super::buffers::ElementwiseBuffers;
use super::cpu::{self, ElementwiseOutput};
use super::options::{ElementwiseOptions, LossWeights};
use super::status::ElementwiseStatus;
use super::validate;
use crate::core::Context;
use crate::core::{Element, Precision, Returns};
use crate::error::Result;

/// **Host API** of the elementwise losses: slices in, `Vec`s out.
impl Context {
    /// An elementwise loss and its gradient on the GPU (see
    /// [`ElementwiseLoss`](crate::ElementwiseLoss) for the formulas), as PyTorch's functional loss
    /// of the same name: `input` and `target` of shape `dims` (any shape,
    /// `[]` included), `weights` for the binary losses (see
    /// [`LossWeights`]), the loss and the reduction in `options`. The input,
    /// the target and the gradient are stored on the device as `T` is
    /// (`f32`, `half::bf16` two to a word, or `half::f16` on devices with
    /// `SHADER_F16`); weights, losses and every sum stay f32. The returned
    /// gradient holds the stored values widened exactly to f32.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) for an input
    /// or target of another length; [`Error::WeightShape`](crate::Error::WeightShape);
    /// [`Error::InvalidOption`](crate::Error::InvalidOption) for `beta < 0`,
    /// `delta ≤ 0` (or either not finite) or a weight the loss does not
    /// take; [`Error::InputOutOfRange`](crate::Error::InputOutOfRange) for a
    /// `Bce` input outside [0, 1] (found on the GPU);
    /// [`Error::Unsupported`](crate::Error::Unsupported) for 2³² elements or
    /// more, or f16 without `SHADER_F16`; [`Error::Mismatch`](crate::Error::Mismatch)
    /// in verify mode (an f16 or bf16 gradient held to its type's
    /// tolerance); [`Error::Gpu`](crate::Error::Gpu); [`Error::DeviceLost`](crate::Error::DeviceLost).
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use xent::{ElementwiseLoss, ElementwiseOptions, LossWeights};
    /// let ctx = xent::Context::from_env()?.with_verify(xent::Tolerance::default());
    /// // Two labels of one sample, the second positive, counted twice as much.
    /// let pos_weight = [1.0f32, 2.0];
    /// let weights = LossWeights { pos_weight: Some(&pos_weight), ..Default::default() };
    /// let opts = ElementwiseOptions::new(ElementwiseLoss::BceWithLogits);
    /// let out = ctx.elementwise_loss(&[0.0f32, 0.0], &[0.0, 1.0], &[1, 2], weights, &opts, &Default::default())?;
    /// let ln2 = std::f32::consts::LN_2;
    /// assert!((out.loss[0] - 1.5 * ln2).abs() < 1e-6);
    /// assert_eq!(out.grad, Some(vec![0.25, -0.5]));
    /// // The same in bf16 on the device.
    /// let bf = |v: &[f32]| v.iter().map(|&x| half::bf16::from_f32(x)).collect::<Vec<_>>();
    /// let (x, y) = (bf(&[0.5, -1.0, 2.0]), bf(&[1.0, 0.0, 1.0]));
    /// let out = ctx.elementwise_loss(&x, &y, &[3], Default::default(), &opts, &Default::default())?;
    /// assert!((out.loss[0] - 0.304756).abs() < 1e-5); // from the formula, in f64
    /// # Ok(()) }
    /// ```
    pub fn elementwise_loss<T: Element>(
        &self,
        input: &[T],
        target: &[T],
        dims: &[usize],
        weights: LossWeights<'_>,
        options: &ElementwiseOptions,
        returns: &Returns,
    ) -> Result<ElementwiseOutput<f32>> {
        let stored = Stored {
            precision: T::PRECISION,
            input: bytemuck::cast_slice(input),
            target: bytemuck::cast_slice(target),
        };
        self.run_elementwise(stored, dims, weights, options, returns)
    }

    /// Uploads `stored`, records, reads back and verifies against the CPU on
    /// the stored values as f32.
    fn run_elementwise(
        &self,
        stored: Stored<'_>,
        dims: &[usize],
        weights: LossWeights<'_>,
        options: &ElementwiseOptions,
        returns: &Returns,
    ) -> Result<ElementwiseOutput<f32>> {
        validate::returns(returns)?;
        let (input, target) = (stored.values(stored.input), stored.values(stored.target));
        let (input, target) = (&input[..], &target[..]);
        let (shape, weight_shape) = validate::slices(options.loss, dims, input, target, weights)?;
        stored
            .precision
            .supported_on(&self.device, "f16 inputs and gradients")?;
        self.check_buffer_sizes(dims, &[("input", shape.len as u64 * 4)])?;
        self.plan_elementwise(&shape, weight_shape, weights.pos_weight.is_some())?;
        let run = self.host_run();
        let input_buf = run.upload("xent input", stored.input)?;
        let target_buf = run.upload("xent target", stored.target)?;
        let weight_buf = run.upload_opt("xent weight", weights.weight)?;
        let pos_buf = run.upload_opt("xent pos_weight", weights.pos_weight)?;
        let loss_len = options.reduction.loss_len(shape.len);
        let loss_buf = run.output("xent loss", loss_len);
        let grad_words = (shape.len as u64 * stored.precision.size()).div_ceil(4) as usize;
        let grad_buf = run.output_if(returns.grad, "xent grad", grad_words);
        let status_buf = run.status();
        let mut encoder = run.encoder();
        let buffers = ElementwiseBuffers {
            weight: weight_buf.as_ref().map(|b| b.slice(..)).zip(weight_shape),
            pos_weight: pos_buf.as_ref().map(|b| b.slice(..)),
            precision: stored.precision,
            ..ElementwiseBuffers::new(
                input_buf.slice(..),
                target_buf.slice(..),
                loss_buf.slice(..),
                grad_buf.as_ref().map(|b| b.slice(..)),
                status_buf.slice(..),
            )
        };
        self.record_elementwise_loss(&mut encoder, dims, options, &buffers)?;
        let mut wanted = vec![&status_buf, &loss_buf];
        wanted.extend(grad_buf.as_ref());
        let mut read = run.finish(encoder, &wanted, "running an elementwise loss")?;
        let status: ElementwiseStatus = read.status();
        if status.bad_elements > 0 {
            // The values from the host's copies: the GPU reads them only
            // within its first binding.
            let first = status.first_position as usize;
            let at = |v: &[f32]| v.get(first).copied().unwrap_or(f32::NAN);
            let bad = u64::from(status.bad_elements);
            let (x, y) = (at(input), at(target));
            return Err(validate::out_of_range(&shape, first, x, y, bad));
        }
        let mut out = ElementwiseOutput {
            loss: read.f32s(loss_len),
            loss_dims: options.reduction.loss_dims(&shape.dims),
            grad: returns
                .grad
                .then(|| read.widened(stored.precision, shape.len)),
            magnitude: None,
        };
        self.inject_fault(out.grad.as_mut(), &[shape.len]);
        if let Some(tol) = self.verify {
            let reference = cpu::elementwise_loss(input, target, dims, weights, options)?;
            // A half-precision gradient is held to its type's tolerance.
            tol.compare_elementwise(&out, &reference, &stored.precision.tolerance(tol))?;
        }
        Ok(out)
    }
}

/// The host's input and target as the device stores them.
struct Stored<'a> {
    precision: Precision,
    input: &'a [u8],
    target: &'a [u8],
}

impl<'a> Stored<'a> {
    /// `bytes` (the input's or the target's) as f32: f32 ones as they are,
    /// half-precision ones widened exactly.
    fn values(&self, bytes: &'a [u8]) -> Cow<'a, [f32]> {
        match self.precision {
            Precision::F32 => Cow::Borrowed(bytemuck::cast_slice(bytes)),
            p => Cow::Owned(p.widen(bytes, bytes.len() / p.size() as usize)),
        }
    }
}
