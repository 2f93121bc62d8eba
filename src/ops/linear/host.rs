//! The fused linear cross-entropy's host API: slices in, `Vec`s out,
//! through the recording API; verify mode holds the result to the CPU twin.

use super::buffers::LinearBuffers;
use super::cpu::{self, LinearOutput};
use super::options::LinearCrossEntropyOptions;
use super::LinearDims;
use crate::core::host_run::{HostRun, Readback};
use crate::core::precision::widen_all;
use crate::core::shape::Layout;
use crate::core::{Context, Element, Returns};
use crate::error::Result;
use crate::ops::cross_entropy::host::{check_host_inputs, DeviceTargets};
use crate::ops::cross_entropy::targets::{Targets, Weights};
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
    /// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) for a slice of another length than `dims`
    /// needs; [`Error::WeightsLength`](crate::Error::WeightsLength); [`Error::TargetOutOfRange`](crate::Error::TargetOutOfRange);
    /// [`Error::InvalidOption`](crate::Error::InvalidOption); the errors of
    /// [`Context::record_linear_cross_entropy`]; [`Error::Mismatch`](crate::Error::Mismatch) in
    /// verify mode; [`Error::Gpu`](crate::Error::Gpu); [`Error::DeviceLost`](crate::Error::DeviceLost).
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
        let targets = Targets::I64(targets);
        self.linear_cross_entropy_with(
            hidden,
            weight,
            bias,
            targets,
            class_weights,
            dims,
            opts,
            returns,
        )
    }

    /// [`Context::linear_cross_entropy`] with any target kind, as PyTorch's
    /// `F.linear_cross_entropy`: class indices `(n)` (i64, i32 or u8) or
    /// f32 probabilities `(n, v)` (soft labels; label smoothing applies as
    /// in [`CrossEntropyOptions`](crate::CrossEntropyOptions), and `mean`
    /// divides by `n`). In verify mode each output is held to
    /// [`cpu::linear_cross_entropy_with`](crate::cpu::linear_cross_entropy_with).
    ///
    /// # Errors
    /// As [`Context::linear_cross_entropy`]; for probabilities
    /// [`Error::InvalidProbability`](crate::Error::InvalidProbability) (negative or NaN) and
    /// [`Error::InvalidOption`](crate::Error::InvalidOption) (an `ignore_index` other than the default).
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// let ctx = xent::Context::from_env()?.with_verify(xent::Tolerance::default());
    /// let dims = xent::LinearDims { n: 1, h: 1, v: 2 };
    /// let probs = xent::Targets::Probs(&[0.5, 0.5]);
    /// let out = ctx.linear_cross_entropy_with(&[1.0f32], &[1.0, -1.0], None, probs, None, &dims,
    ///     &Default::default(), &Default::default())?;
    /// // logits [1, −1] against (½, ½): ln(2·cosh 1).
    /// assert!((out.loss[0] - (2.0 * 1f32.cosh()).ln()).abs() < 1e-6);
    /// # Ok(()) }
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn linear_cross_entropy_with<T: Element>(
        &self,
        hidden: &[T],
        weight: &[T],
        bias: Option<&[T]>,
        targets: Targets<'_>,
        class_weights: Option<&[f32]>,
        dims: &LinearDims,
        opts: &LinearCrossEntropyOptions,
        returns: &Returns,
    ) -> Result<LinearOutput<f32>> {
        let inputs = LinearInputs {
            hidden,
            weight,
            bias,
            targets,
            class_weights,
        };
        let targets = inputs.check(self, dims, opts, returns)?;
        self.plan_linear_cross_entropy(dims, opts, returns)?;
        let run = self.host_run();
        let hidden_buf = run.upload("xent hidden", bytemuck::cast_slice(hidden))?;
        let weight_buf = run.upload("xent weight", bytemuck::cast_slice(weight))?;
        let bias_buf = run.upload_opt("xent bias", bias)?;
        let targets_buf = run.upload("xent targets", targets.bytes())?;
        let weights_buf = run.upload_opt("xent class weights", class_weights)?;
        let outputs = LinearOutputs::new(&run, dims, bias.is_some(), opts, returns);
        let mut encoder = run.encoder();
        let buffers = LinearBuffers {
            bias: bias_buf.as_ref().map(|b| b.slice(..)),
            weights: weights_buf.as_ref().map(|b| b.slice(..)),
            precision: T::PRECISION,
            ..outputs.buffers(
                hidden_buf.slice(..),
                weight_buf.slice(..),
                targets.buffer(&targets_buf),
            )
        };
        self.record_linear_cross_entropy(&mut encoder, dims, opts, &buffers)?;
        let mut wanted = outputs.wanted();
        wanted.extend(outputs.grads());
        let what = "running the fused linear cross-entropy";
        let mut read = run.finish(encoder, &wanted, what)?;
        let mut out = read_outputs(&mut read, dims, opts, returns)?;
        if returns.grad {
            read_grads(&mut read, &mut out, dims, &[dims.v], bias.is_some());
        }
        self.verify_linear(&out, &inputs, dims, opts)?;
        Ok(out)
    }

    /// Holds `out` to the twin on `inputs` (widened to f32) in verify mode.
    pub(crate) fn verify_linear<T: Element>(
        &self,
        out: &LinearOutput<f32>,
        inputs: &LinearInputs<'_, T>,
        dims: &LinearDims,
        opts: &LinearCrossEntropyOptions,
    ) -> Result<()> {
        let Some(tol) = self.verify else {
            return Ok(());
        };
        let bias = inputs.bias.map(widen_all);
        let (hidden, weight) = (widen_all(inputs.hidden), widen_all(inputs.weight));
        let weights = inputs.class_weights;
        let reference = cpu::linear_cross_entropy_with(
            &hidden,
            &weight,
            bias.as_deref(),
            inputs.targets,
            weights,
            dims,
            opts,
        )?;
        tol.compare_linear(out, &reference)
    }
}

/// A host call's inputs, as the caller gave them.
pub(crate) struct LinearInputs<'a, T> {
    pub(crate) hidden: &'a [T],
    pub(crate) weight: &'a [T],
    pub(crate) bias: Option<&'a [T]>,
    pub(crate) targets: Targets<'a>,
    pub(crate) class_weights: Option<&'a [f32]>,
}

impl<'a, T: Element> LinearInputs<'a, T> {
    /// The checks before anything is uploaded (options, returns, lengths by
    /// the twin's rule, the targets and class weights by the
    /// cross-entropy's, element type), and the targets as the GPU reads them.
    pub(crate) fn check(
        &self,
        ctx: &Context,
        dims: &LinearDims,
        opts: &LinearCrossEntropyOptions,
        returns: &Returns,
    ) -> Result<DeviceTargets<'a>> {
        opts.validate()?;
        let (hidden, weight) = (self.hidden.len(), self.weight.len());
        let bias = self.bias.map(<[T]>::len);
        super::check_lengths(*dims, hidden, weight, bias)?;
        let layout = Layout::from_dims(&[dims.n, dims.v])?;
        let weights = Weights {
            class: self.class_weights,
            sample: None,
        };
        let (len, loss) = (layout.len(), &opts.loss);
        let targets = check_host_inputs(&layout, len, self.targets, weights, loss, returns)?;
        T::PRECISION.supported_on(&ctx.device, "f16 hidden states and weights")?;
        Ok(targets)
    }
}

/// The outputs of a host call (or of one shard of a split one, `dims.v`
/// its classes): loss, status, the gradients and per-row outputs asked for.
pub(crate) struct LinearOutputs {
    loss: wgpu::Buffer,
    status: wgpu::Buffer,
    grad_hidden: Option<wgpu::Buffer>,
    grad_weight: Option<wgpu::Buffer>,
    grad_bias: Option<wgpu::Buffer>,
    lse: Option<wgpu::Buffer>,
    correct: Option<wgpu::Buffer>,
    argmax: Option<wgpu::Buffer>,
    entropy: Option<wgpu::Buffer>,
}

impl LinearOutputs {
    pub(crate) fn new(
        run: &HostRun<'_>,
        dims: &LinearDims,
        bias: bool,
        opts: &LinearCrossEntropyOptions,
        returns: &Returns,
    ) -> Self {
        let LinearDims { n, h, v } = *dims;
        let grads = returns.grad;
        Self {
            loss: run.output("xent loss", opts.loss.reduction.loss_len(n)),
            status: run.status(),
            grad_hidden: run.output_if(grads, "xent grad hidden", n * h),
            grad_weight: run.output_if(grads, "xent grad weight", v * h),
            grad_bias: run.output_if(grads && bias, "xent grad bias", v),
            lse: run.output_if(returns.lse, "xent lse", n),
            correct: run.output_if(returns.correct, "xent correct", 1),
            argmax: run.output_if(returns.argmax, "xent argmax", n),
            entropy: run.output_if(returns.entropy, "xent entropy", n),
        }
    }

    /// The recording API's buffers with these outputs (no bias, no class
    /// weights, f32).
    pub(crate) fn buffers<'b>(
        &'b self,
        hidden: wgpu::BufferSlice<'b>,
        weight: wgpu::BufferSlice<'b>,
        targets: TargetBuffer<'b>,
    ) -> LinearBuffers<'b> {
        let slice = |b: &'b Option<wgpu::Buffer>| b.as_ref().map(|b| b.slice(..));
        let (loss, status) = (self.loss.slice(..), self.status.slice(..));
        LinearBuffers {
            grad_hidden: slice(&self.grad_hidden),
            grad_weight: slice(&self.grad_weight),
            grad_bias: slice(&self.grad_bias),
            lse: slice(&self.lse),
            correct: slice(&self.correct),
            argmax: slice(&self.argmax),
            entropy: slice(&self.entropy),
            ..LinearBuffers::new(hidden, weight, targets, loss, status)
        }
    }

    /// The outputs but the gradients, in the order [`read_outputs`] takes
    /// them.
    pub(crate) fn wanted(&self) -> Vec<&wgpu::Buffer> {
        let mut wanted = vec![&self.status, &self.loss];
        wanted.extend(self.lse.as_ref());
        wanted.extend(self.correct.as_ref());
        wanted.extend(self.argmax.as_ref());
        wanted.extend(self.entropy.as_ref());
        wanted
    }

    /// The gradients, in the order [`read_grads`] takes a shard's.
    pub(crate) fn grads(&self) -> impl Iterator<Item = &wgpu::Buffer> {
        [&self.grad_hidden, &self.grad_weight, &self.grad_bias]
            .into_iter()
            .flatten()
    }
}

/// Reads [`LinearOutputs::wanted`]: the status (its error, if it reports
/// bad input), then the outputs; the gradients are left to [`read_grads`].
pub(crate) fn read_outputs(
    read: &mut Readback,
    dims: &LinearDims,
    opts: &LinearCrossEntropyOptions,
    returns: &Returns,
) -> Result<LinearOutput<f32>> {
    let layout = Layout::from_dims(&[dims.n, dims.v])?;
    let status: CrossEntropyStatus = read.status();
    status.check(&layout, opts.loss.ignore_index)?;
    Ok(LinearOutput {
        loss: read.f32s(opts.loss.reduction.loss_len(dims.n)),
        grad_hidden: None,
        grad_weight: None,
        grad_bias: None,
        lse: returns.lse.then(|| read.f32s(dims.n)),
        correct: returns.correct.then(|| read.count()),
        argmax: returns.argmax.then(|| read.i64s(dims.n)),
        entropy: returns.entropy.then(|| read.f32s(dims.n)),
        magnitude: None,
    })
}

/// Reads the [`LinearOutputs::grads`] of shards of `shard_classes` classes
/// each, in shard order, into `out`: `∂L/∂h` the sum of the shards' parts
/// in shard order (one shard's its own), `∂L/∂W` and `∂L/∂b` their rows put
/// together.
pub(crate) fn read_grads(
    read: &mut Readback,
    out: &mut LinearOutput<f32>,
    dims: &LinearDims,
    shard_classes: &[usize],
    bias: bool,
) {
    let (n, h) = (dims.n, dims.h);
    let mut grad_hidden: Option<Vec<f32>> = None;
    let mut grad_weight = Vec::with_capacity(dims.v * h);
    let mut grad_bias = Vec::with_capacity(if bias { dims.v } else { 0 });
    for &classes in shard_classes {
        let part = read.f32s(n * h);
        match grad_hidden.as_mut() {
            Some(sum) => sum.iter_mut().zip(part).for_each(|(a, b)| *a += b),
            None => grad_hidden = Some(part),
        }
        grad_weight.extend(read.f32s(classes * h));
        if bias {
            grad_bias.extend(read.f32s(classes));
        }
    }
    out.grad_hidden = grad_hidden;
    out.grad_weight = Some(grad_weight);
    out.grad_bias = bias.then_some(grad_bias);
}
