//! The host API of softmax, log-softmax and their backward: slices in,
//! `Vec`s out, through the recording API; verify mode holds each result to
//! its [`cpu`](crate::cpu) twin.

use super::cpu;
use super::SoftmaxKind;
use crate::core::shape;
use crate::core::shape::Layout;
use crate::core::transfer::STORAGE_OUT;
use crate::core::Context;
use crate::core::Precision;
use crate::error::{GpuScope, Result};

impl Context {
    /// Softmax along the class axis on the GPU.
    ///
    /// # Errors
    /// [`Error::InvalidShape`](crate::Error::InvalidShape) (also for a tensor larger than the device's
    /// largest buffer or binding, checked before uploading),
    /// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch); [`Error::Mismatch`](crate::Error::Mismatch) in
    /// verify mode; [`Error::Gpu`](crate::Error::Gpu); [`Error::DeviceLost`](crate::Error::DeviceLost).
    ///
    /// ```
    /// let ctx = xent::Context::from_env()?;
    /// let p = ctx.softmax(&[0.0, 0.0], &[1, 2])?;
    /// assert_eq!(p, vec![0.5, 0.5]);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn softmax(&self, x: &[f32], dims: &[usize]) -> Result<Vec<f32>> {
        self.normalise(x, dims, SoftmaxKind::Softmax)
    }

    /// Log-softmax along the class axis on the GPU.
    ///
    /// # Errors
    /// As [`Context::softmax`](crate::Context::softmax).
    ///
    /// ```
    /// let ctx = xent::Context::from_env()?;
    /// let y = ctx.log_softmax(&[1.0, 1.0], &[2])?;
    /// assert!((y[0] + std::f32::consts::LN_2).abs() < 1e-6);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn log_softmax(&self, x: &[f32], dims: &[usize]) -> Result<Vec<f32>> {
        self.normalise(x, dims, SoftmaxKind::LogSoftmax)
    }

    /// The backward of softmax on the GPU: given the forward output `y` and the
    /// upstream gradient `dy`, returns `dx = y ⊙ (dy − Σ dy·y)` per row.
    ///
    /// # Errors
    /// As [`Context::softmax`](crate::Context::softmax), for both inputs.
    ///
    /// ```
    /// let ctx = xent::Context::from_env()?;
    /// let dx = ctx.softmax_backward(&[0.5, 0.5], &[1.0, 0.0], &[1, 2])?;
    /// assert_eq!(dx, vec![0.25, -0.25]);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn softmax_backward(&self, y: &[f32], dy: &[f32], dims: &[usize]) -> Result<Vec<f32>> {
        self.normalise_backward(y, dy, dims, SoftmaxKind::Softmax)
    }

    /// The backward of log-softmax on the GPU: given the forward output `y`
    /// (log-probabilities) and `dy`, returns `dx = dy − exp(y)·Σ dy` per row.
    ///
    /// # Errors
    /// As [`Context::softmax`](crate::Context::softmax), for both inputs.
    ///
    /// ```
    /// let ctx = xent::Context::from_env()?;
    /// let half = 0.5f32.ln();
    /// let dx = ctx.log_softmax_backward(&[half, half], &[1.0, 0.0], &[1, 2])?;
    /// assert_eq!(dx, vec![0.5, -0.5]);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn log_softmax_backward(&self, y: &[f32], dy: &[f32], dims: &[usize]) -> Result<Vec<f32>> {
        self.normalise_backward(y, dy, dims, SoftmaxKind::LogSoftmax)
    }

    /// Softmax along the class axis with the input and the output stored in
    /// bf16 on the device (two to a word, rounded to nearest even; sums in
    /// f32), on every device. Returns the bf16 outputs widened exactly to f32.
    ///
    /// # Errors
    /// As [`Context::softmax`] (verify mode holds the output to
    /// [`Tolerance::BF16`](crate::Tolerance::BF16)).
    ///
    /// ```
    /// let ctx = xent::Context::from_env()?.with_verify(xent::Tolerance::default());
    /// let x = [half::bf16::from_f32(0.0); 4];
    /// assert_eq!(ctx.softmax_bf16(&x, &[1, 4])?, vec![0.25; 4]);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn softmax_bf16(&self, x: &[half::bf16], dims: &[usize]) -> Result<Vec<f32>> {
        let x32: Vec<f32> = x.iter().map(|v| v.to_f32()).collect();
        self.normalise_as(
            bytemuck::cast_slice(x),
            &x32,
            dims,
            SoftmaxKind::Softmax,
            Precision::BF16,
        )
    }

    /// Log-softmax as [`Context::softmax_bf16`].
    ///
    /// # Errors
    /// As [`Context::softmax_bf16`].
    ///
    /// ```
    /// let ctx = xent::Context::from_env()?;
    /// let y = ctx.log_softmax_bf16(&[half::bf16::from_f32(1.0); 2], &[2])?;
    /// assert_eq!(y[0], half::bf16::from_f32(-std::f32::consts::LN_2).to_f32());
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn log_softmax_bf16(&self, x: &[half::bf16], dims: &[usize]) -> Result<Vec<f32>> {
        let x32: Vec<f32> = x.iter().map(|v| v.to_f32()).collect();
        self.normalise_as(
            bytemuck::cast_slice(x),
            &x32,
            dims,
            SoftmaxKind::LogSoftmax,
            Precision::BF16,
        )
    }

    fn normalise(&self, x: &[f32], dims: &[usize], kind: SoftmaxKind) -> Result<Vec<f32>> {
        self.normalise_as(bytemuck::cast_slice(x), x, dims, kind, Precision::F32)
    }

    /// The forward on `stored` (the input as the device holds it in
    /// `precision`), verified against the CPU on `x`, its values as f32.
    fn normalise_as(
        &self,
        stored: &[u8],
        x: &[f32],
        dims: &[usize],
        kind: SoftmaxKind,
        precision: Precision,
    ) -> Result<Vec<f32>> {
        let y = self.run_normalise(
            &[("input", stored)],
            x.len(),
            dims,
            precision,
            |enc, bufs, out| self.record_softmax_as(enc, dims, kind, precision, bufs[0], out),
        )?;
        if let Some(tol) = self.verify {
            let reference = match kind {
                SoftmaxKind::Softmax => cpu::softmax_reference(x, dims)?,
                SoftmaxKind::LogSoftmax => cpu::log_softmax_reference(x, dims)?,
            };
            precision.tolerance(tol).check("softmax", &y, &reference)?;
        }
        Ok(y)
    }

    fn normalise_backward(
        &self,
        y: &[f32],
        dy: &[f32],
        dims: &[usize],
        kind: SoftmaxKind,
    ) -> Result<Vec<f32>> {
        let dx = self.run_normalise(
            &[
                ("output", bytemuck::cast_slice(y)),
                ("grad_output", bytemuck::cast_slice(dy)),
            ],
            y.len(),
            dims,
            Precision::F32,
            |enc, bufs, out| self.record_softmax_backward(enc, dims, kind, bufs[0], bufs[1], out),
        )?;
        if let Some(tol) = self.verify {
            let reference = match kind {
                SoftmaxKind::Softmax => cpu::softmax_backward_reference(y, dy, dims)?,
                SoftmaxKind::LogSoftmax => cpu::log_softmax_backward_reference(y, dy, dims)?,
            };
            tol.check("softmax backward", &dx, &reference)?;
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
            shape::length(
                what,
                dims,
                layout.len(),
                v.len() / precision.size() as usize,
            )?;
        }
        self.check_buffer_sizes(dims, &[("input", layout.len() as u64 * 4)])?;
        self.plan_softmax(&layout)?;
        let guard = self.host_lock.lock().unwrap_or_else(|e| e.into_inner());
        let scope = GpuScope::push(&self.device);
        // The first upload finds a lost device (Error::DeviceLost).
        let buffers: Vec<wgpu::Buffer> = inputs
            .iter()
            .map(|(what, v)| {
                // Whole words (bf16 and f16 of an odd count).
                let mut bytes = v.to_vec();
                bytes.resize(v.len().next_multiple_of(4), 0);
                self.upload(what, &bytes)
            })
            .collect::<Result<_>>()?;
        let output = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("xent softmax output"),
            // Whole words, and at least one: an empty batch still reads back a buffer.
            size: (layout.len() as u64 * precision.size())
                .next_multiple_of(4)
                .max(4),
            usage: STORAGE_OUT,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        let refs: Vec<&wgpu::Buffer> = buffers.iter().collect();
        record(&mut encoder, &refs, &output)?;
        let bytes = self.download(encoder, &[&output]);
        scope.pop("running softmax")?;
        drop(guard);
        let bytes = bytes?;
        let mut out = precision.widen(bytes.first().map_or(&[][..], |b| b), layout.len());
        if let Some(fault) = self.fault {
            fault.apply(&mut out, &layout);
        }
        Ok(out)
    }
}
