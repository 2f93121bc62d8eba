//! The host API of softmax, log-softmax and their backward: slices in,
//! `Vec`s out, through the recording API; verify mode holds each result to
//! its [`cpu`](crate::cpu) twin.

use super::cpu;
use super::plan::SoftmaxDirection;
use super::{SoftmaxBackwardBuffers, SoftmaxBuffers, SoftmaxKind, SoftmaxOptions};
use crate::core::precision::widen_all;
use crate::core::shape;
use crate::core::shape::Layout;
use crate::core::Context;
use crate::core::{Element, Precision};
use crate::error::Result;

/// **Host API** of softmax and log-softmax: slices in, `Vec`s out.
impl Context {
    /// Softmax or log-softmax (`options.kind`) along the class axis on the
    /// GPU, of `x` stored on the device as it is (`f32`, `half::f16` on
    /// devices with `SHADER_F16`, or `half::bf16`: two to a word, rounded
    /// to nearest even; every sum in f32). Returns the stored outputs
    /// widened exactly to f32.
    ///
    /// # Errors
    /// [`Error::InvalidShape`](crate::Error::InvalidShape) (also for a tensor larger than the device's
    /// largest buffer or binding, checked before uploading),
    /// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch), [`Error::Unsupported`](crate::Error::Unsupported)
    /// (f16 without `SHADER_F16`); [`Error::Mismatch`](crate::Error::Mismatch) in verify mode (an
    /// f16 or bf16 output held to [`Tolerance::F16`](crate::Tolerance::F16) or
    /// [`Tolerance::BF16`](crate::Tolerance::BF16)); [`Error::Gpu`](crate::Error::Gpu);
    /// [`Error::DeviceLost`](crate::Error::DeviceLost).
    ///
    /// ```
    /// use xent::{SoftmaxKind, SoftmaxOptions};
    /// let ctx = xent::Context::from_env()?;
    /// let p = ctx.softmax(&[0.0f32, 0.0], &[1, 2], &SoftmaxOptions::default())?;
    /// assert_eq!(p, vec![0.5, 0.5]);
    /// let log = SoftmaxOptions { kind: SoftmaxKind::LogSoftmax };
    /// let y = ctx.softmax(&[half::bf16::from_f32(1.0); 2], &[2], &log)?;
    /// assert_eq!(y[0], half::bf16::from_f32(-std::f32::consts::LN_2).to_f32());
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn softmax<T: Element>(
        &self,
        x: &[T],
        dims: &[usize],
        options: &SoftmaxOptions,
    ) -> Result<Vec<f32>> {
        let precision = T::PRECISION;
        let y = self.run_normalise(
            &[("input", bytemuck::cast_slice(x))],
            x.len(),
            dims,
            precision,
            |enc, bufs, out| {
                let buffers = SoftmaxBuffers {
                    input: bufs[0].slice(..),
                    output: out.slice(..),
                    precision,
                };
                self.record_softmax(enc, dims, options, &buffers)
            },
        )?;
        if let Some(tol) = self.verify {
            let x = widen_all(x);
            let reference = match options.kind {
                SoftmaxKind::Softmax => cpu::softmax_reference(&x, dims)?,
                SoftmaxKind::LogSoftmax => cpu::log_softmax_reference(&x, dims)?,
            };
            precision.tolerance(tol).check("softmax", &y, &reference)?;
        }
        Ok(y)
    }

    /// The backward of softmax or log-softmax (`options.kind`) on the GPU:
    /// given the forward output `y` and the upstream gradient `dy`, returns
    /// `dx = y ⊙ (dy − Σ dy·y)` (softmax) or `dx = dy − exp(y)·Σ dy`
    /// (log-softmax) per row, the three stored as `T` on the device, as
    /// [`Context::softmax`].
    ///
    /// # Errors
    /// As [`Context::softmax`], for both inputs.
    ///
    /// ```
    /// use xent::{SoftmaxKind, SoftmaxOptions};
    /// let ctx = xent::Context::from_env()?;
    /// let dx = ctx.softmax_backward(&[0.5f32, 0.5], &[1.0, 0.0], &[1, 2], &SoftmaxOptions::default())?;
    /// assert_eq!(dx, vec![0.25, -0.25]);
    /// let half = 0.5f32.ln();
    /// let log = SoftmaxOptions { kind: SoftmaxKind::LogSoftmax };
    /// let dx = ctx.softmax_backward(&[half, half], &[1.0, 0.0], &[1, 2], &log)?;
    /// assert_eq!(dx, vec![0.5, -0.5]);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn softmax_backward<T: Element>(
        &self,
        y: &[T],
        dy: &[T],
        dims: &[usize],
        options: &SoftmaxOptions,
    ) -> Result<Vec<f32>> {
        let precision = T::PRECISION;
        let dx = self.run_normalise(
            &[
                ("output", bytemuck::cast_slice(y)),
                ("grad_output", bytemuck::cast_slice(dy)),
            ],
            y.len(),
            dims,
            precision,
            |enc, bufs, out| {
                let buffers = SoftmaxBackwardBuffers {
                    output: bufs[0].slice(..),
                    grad_output: bufs[1].slice(..),
                    grad_input: out.slice(..),
                    precision,
                };
                self.record_softmax_backward(enc, dims, options, &buffers)
            },
        )?;
        if let Some(tol) = self.verify {
            let (y, dy) = (widen_all(y), widen_all(dy));
            let reference = match options.kind {
                SoftmaxKind::Softmax => cpu::softmax_backward_reference(&y, &dy, dims)?,
                SoftmaxKind::LogSoftmax => cpu::log_softmax_backward_reference(&y, &dy, dims)?,
            };
            precision
                .tolerance(tol)
                .check("softmax backward", &dx, &reference)?;
        }
        Ok(dx)
    }

    /// Uploads `inputs` (`len` values each, stored in `precision`), records
    /// with `record` into a fresh output of the same length, submits and
    /// reads the output back as f32.
    fn run_normalise(
        &self,
        inputs: &[(&'static str, &[u8])],
        len: usize,
        dims: &[usize],
        precision: Precision,
        record: impl FnOnce(&mut wgpu::CommandEncoder, &[&wgpu::Buffer], &wgpu::Buffer) -> Result<()>,
    ) -> Result<Vec<f32>> {
        let layout = Layout::from_dims(dims)?;
        shape::length(inputs[0].0, dims, layout.len(), len)?;
        for &(what, v) in inputs {
            let values = v.len() / precision.size() as usize;
            shape::length(what, dims, layout.len(), values)?;
        }
        self.check_buffer_sizes(dims, &[("input", layout.len() as u64 * 4)])?;
        // One input forward (x), two backward (y and dy).
        let direction = match inputs.len() {
            1 => SoftmaxDirection::Forward,
            _ => SoftmaxDirection::Backward,
        };
        self.plan_softmax(&layout, direction)?;
        let run = self.host_run();
        let buffers: Vec<wgpu::Buffer> = inputs
            .iter()
            .map(|(what, v)| run.upload(what, v))
            .collect::<Result<_>>()?;
        let words = (layout.len() as u64 * precision.size()).div_ceil(4) as usize;
        let output = run.output("xent softmax output", words);
        let mut encoder = run.encoder();
        let refs: Vec<&wgpu::Buffer> = buffers.iter().collect();
        record(&mut encoder, &refs, &output)?;
        let mut read = run.finish(encoder, &[&output], "running softmax")?;
        let mut out = read.widened(precision, layout.len());
        self.inject_fault(Some(&mut out), dims);
        Ok(out)
    }
}
