//! The host API of softmax, log-softmax and their backward: slices in,
//! `Vec`s out, through the recording API; verify mode holds each result to
//! its [`cpu`](crate::cpu) twin.

use super::SoftmaxKind;
use crate::cpu;
use crate::error::{GpuScope, Result};
use crate::gpu::transfer::{to_f32, STORAGE_OUT};
use crate::gpu::Context;
use crate::shape::Layout;
use crate::validate;

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

    fn normalise(&self, x: &[f32], dims: &[usize], kind: SoftmaxKind) -> Result<Vec<f32>> {
        let y = self.run_normalise(&[("input", x)], dims, |enc, bufs, out| {
            self.record_softmax(enc, dims, kind, bufs[0], out)
        })?;
        if let Some(tol) = self.verify {
            let reference = match kind {
                SoftmaxKind::Softmax => cpu::softmax_reference(x, dims)?,
                SoftmaxKind::LogSoftmax => cpu::log_softmax_reference(x, dims)?,
            };
            tol.check("softmax", &y, &reference)?;
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
            &[("output", y), ("grad_output", dy)],
            dims,
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

    /// Uploads `inputs`, records with `record` into a fresh output of the
    /// same length, submits and reads the output back.
    fn run_normalise(
        &self,
        inputs: &[(&'static str, &[f32])],
        dims: &[usize],
        record: impl FnOnce(&mut wgpu::CommandEncoder, &[&wgpu::Buffer], &wgpu::Buffer) -> Result<()>,
    ) -> Result<Vec<f32>> {
        let layout = Layout::from_dims(dims)?;
        for &(what, v) in inputs {
            validate::length(what, dims, layout.len(), v.len())?;
        }
        self.check_buffer_sizes(dims, &[("input", layout.len() as u64 * 4)])?;
        self.plan_softmax(&layout)?;
        let guard = self.host_lock.lock().unwrap_or_else(|e| e.into_inner());
        let scope = GpuScope::push(&self.device);
        // The first upload finds a lost device (Error::DeviceLost).
        let buffers: Vec<wgpu::Buffer> = inputs
            .iter()
            .map(|(what, v)| self.upload(what, bytemuck::cast_slice(v)))
            .collect::<Result<_>>()?;
        let output = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("xent softmax output"),
            // At least a word: an empty batch still reads back a buffer.
            size: (layout.len() as u64 * 4).max(4),
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
        let mut out = to_f32(bytes.first().map_or(&[][..], |b| b), layout.len());
        if let Some(fault) = self.fault {
            fault.apply(&mut out, &layout);
        }
        Ok(out)
    }
}
