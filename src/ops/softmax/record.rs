//! Recording softmax, log-softmax and their backward into the caller's encoder.

use bytemuck::{Pod, Zeroable};

use super::plan::{SoftmaxStrategy, SOFTMAX_WG};
use crate::core::binding::no_aliasing;
use crate::core::encode::{Dispatches, Timing};
use crate::core::shape::Layout;
use crate::core::Context;
use crate::core::Precision;
use crate::error::{GpuScope, Result};

/// Mirrors `Params` in `shaders/softmax/kernels.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SoftmaxParams {
    outer: u32,
    classes: u32,
    inner: u32,
    rows: u32,
    mode: u32,
    splits: u32,
    span: u32,
    _pad: u32,
}

/// Which normalisation [`Context::record_softmax`](crate::Context::record_softmax) computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoftmaxKind {
    /// `exp(x − max) / Σ exp(x − max)`.
    Softmax,
    /// `x − max − log Σ exp(x − max)`.
    LogSoftmax,
}

impl SoftmaxKind {
    /// The code of `Params::mode` (`LOG_SOFTMAX` in `shaders/softmax/kernels.wgsl`).
    pub(crate) fn code(self) -> u32 {
        match self {
            SoftmaxKind::Softmax => 0,
            SoftmaxKind::LogSoftmax => 1,
        }
    }
}

impl Context {
    /// Records softmax or log-softmax of `input` along the class axis into `output`.
    ///
    /// `dims` as in [`Context::record_cross_entropy`](crate::Context::record_cross_entropy); both buffers hold
    /// `layout.len()` f32 values and need `STORAGE` usage. The buffers and
    /// the encoder must come from this context's device, never from another
    /// `wgpu::Instance`, as for [`Context::record_cross_entropy`](crate::Context::record_cross_entropy).
    ///
    /// # Errors
    /// [`Error::InvalidShape`](crate::Error::InvalidShape) (also for a tensor, or the partials of its
    /// split rows, past the device's largest binding: softmax is not
    /// chunked), [`Error::BadBuffer`](crate::Error::BadBuffer), [`Error::Gpu`](crate::Error::Gpu) and
    /// [`Error::DeviceLost`](crate::Error::DeviceLost) as for cross-entropy.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use wgpu::util::DeviceExt;
    /// let ctx = xent::Context::from_env()?;
    /// let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    /// let x = ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
    ///     label: None, contents: bytemuck::cast_slice(&[1.0f32, 2.0, 3.0]), usage });
    /// let y = ctx.device().create_buffer(&wgpu::BufferDescriptor {
    ///     label: None, size: 12, usage, mapped_at_creation: false });
    /// let mut encoder = ctx.device().create_command_encoder(&Default::default());
    /// ctx.record_softmax(&mut encoder, &[1, 3], xent::SoftmaxKind::LogSoftmax, &x, &y)?;
    /// ctx.queue().submit([encoder.finish()]);
    /// # Ok(()) }
    /// ```
    pub fn record_softmax(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        dims: &[usize],
        kind: SoftmaxKind,
        input: &wgpu::Buffer,
        output: &wgpu::Buffer,
    ) -> Result<()> {
        self.record_softmax_as(encoder, dims, kind, Precision::F32, input, output)
    }

    /// [`Context::record_softmax`] with the input and the output stored in
    /// `precision` (`BF16` two to a word, `F16` on devices with
    /// `SHADER_F16`; every sum in f32): each buffer holds `layout.len()`
    /// such values, in whole words.
    ///
    /// # Errors
    /// As [`Context::record_softmax`]; [`Error::Unsupported`](crate::Error::Unsupported)
    /// for f16 without `SHADER_F16`.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use wgpu::util::DeviceExt;
    /// let ctx = xent::Context::from_env()?;
    /// let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    /// let x: Vec<half::bf16> = [1.0f32, 2.0, 3.0, 4.0].iter().map(|&v| half::bf16::from_f32(v)).collect();
    /// let x = ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
    ///     label: None, contents: bytemuck::cast_slice(&x), usage });
    /// let y = ctx.device().create_buffer(&wgpu::BufferDescriptor {
    ///     label: None, size: 8, usage, mapped_at_creation: false });
    /// let mut encoder = ctx.device().create_command_encoder(&Default::default());
    /// ctx.record_softmax_as(&mut encoder, &[1, 4], xent::SoftmaxKind::Softmax, xent::Precision::BF16, &x, &y)?;
    /// ctx.queue().submit([encoder.finish()]);
    /// # Ok(()) }
    /// ```
    pub fn record_softmax_as(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        dims: &[usize],
        kind: SoftmaxKind,
        precision: Precision,
        input: &wgpu::Buffer,
        output: &wgpu::Buffer,
    ) -> Result<()> {
        let [narrow, wide, partial, split] = self.softmax_pipelines(
            precision,
            [
                "softmax_narrow",
                "softmax_wide",
                "softmax_partial",
                "softmax_split",
            ],
        )?;
        self.record_normalise(
            encoder,
            dims,
            kind,
            precision,
            [&narrow, &wide, &partial, &split],
            &[("input", input), ("output", output)],
        )
    }

    /// Records the backward of softmax or log-softmax along the class axis:
    /// given the forward output `output` (y) and the upstream gradient
    /// `grad_output` (dy), writes `grad_input` (dx) as a vector-Jacobian product,
    /// `dx = y ⊙ (dy − Σ dy·y)` for softmax, `dx = dy − exp(y)·Σ dy` for log-softmax.
    /// Buffers and encoder from this context's device, as for the forward.
    ///
    /// # Errors
    /// [`Error::InvalidShape`](crate::Error::InvalidShape), [`Error::BadBuffer`](crate::Error::BadBuffer), [`Error::Gpu`](crate::Error::Gpu) and
    /// [`Error::DeviceLost`](crate::Error::DeviceLost) as for the forward.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use wgpu::util::DeviceExt;
    /// let ctx = xent::Context::from_env()?;
    /// let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    /// let init = |v: &[f32]| ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
    ///     label: None, contents: bytemuck::cast_slice(v), usage });
    /// let (y, dy, dx) = (init(&[0.5, 0.5]), init(&[1.0, 0.0]), init(&[0.0, 0.0]));
    /// let mut encoder = ctx.device().create_command_encoder(&Default::default());
    /// ctx.record_softmax_backward(&mut encoder, &[1, 2], xent::SoftmaxKind::Softmax, &y, &dy, &dx)?;
    /// ctx.queue().submit([encoder.finish()]);
    /// # Ok(()) }
    /// ```
    pub fn record_softmax_backward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        dims: &[usize],
        kind: SoftmaxKind,
        output: &wgpu::Buffer,
        grad_output: &wgpu::Buffer,
        grad_input: &wgpu::Buffer,
    ) -> Result<()> {
        self.record_softmax_backward_as(
            encoder,
            dims,
            kind,
            Precision::F32,
            output,
            grad_output,
            grad_input,
        )
    }

    /// [`Context::record_softmax_backward`] with the three tensors stored
    /// in `precision`, as [`Context::record_softmax_as`].
    ///
    /// # Errors
    /// As [`Context::record_softmax_as`].
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use wgpu::util::DeviceExt;
    /// let ctx = xent::Context::from_env()?;
    /// let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    /// let init = |v: &[f32]| {
    ///     let h: Vec<half::bf16> = v.iter().map(|&x| half::bf16::from_f32(x)).collect();
    ///     ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
    ///         label: None, contents: bytemuck::cast_slice(&h), usage })
    /// };
    /// let (y, dy, dx) = (init(&[0.5, 0.5]), init(&[1.0, 0.0]), init(&[0.0, 0.0]));
    /// let mut encoder = ctx.device().create_command_encoder(&Default::default());
    /// ctx.record_softmax_backward_as(&mut encoder, &[1, 2], xent::SoftmaxKind::Softmax,
    ///     xent::Precision::BF16, &y, &dy, &dx)?;
    /// ctx.queue().submit([encoder.finish()]);
    /// # Ok(()) }
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn record_softmax_backward_as(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        dims: &[usize],
        kind: SoftmaxKind,
        precision: Precision,
        output: &wgpu::Buffer,
        grad_output: &wgpu::Buffer,
        grad_input: &wgpu::Buffer,
    ) -> Result<()> {
        let [narrow, wide, partial, split] = self.softmax_pipelines(
            precision,
            [
                "backward_narrow",
                "backward_wide",
                "backward_partial",
                "backward_split",
            ],
        )?;
        self.record_normalise(
            encoder,
            dims,
            kind,
            precision,
            [&narrow, &wide, &partial, &split],
            &[
                ("output", output),
                ("grad_output", grad_output),
                ("grad_input", grad_input),
            ],
        )
    }

    /// Shared by the softmax forward and backward: `buffers` are bound at 1
    /// (input), 2 (output) and, for the backward, 3 (upstream gradient);
    /// `pipelines` are the narrow, wide, split-partial and split kernels.
    #[allow(clippy::too_many_arguments)]
    fn record_normalise(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        dims: &[usize],
        kind: SoftmaxKind,
        precision: Precision,
        [narrow, wide, partial, split]: [&wgpu::ComputePipeline; 4],
        buffers: &[(&'static str, &wgpu::Buffer)],
    ) -> Result<()> {
        // As in `prepare_cross_entropy`: popped before anything is recorded.
        let scope = GpuScope::push(&self.device);
        let layout = Layout::from_dims(dims)?;
        // Whole words of the storage's values (the binding-size check in
        // the plan counts 4 bytes a value, which covers every precision).
        let bytes = (layout.len() as u64 * precision.size()).next_multiple_of(4);
        for &(what, buffer) in buffers {
            if precision == Precision::F32 {
                self.check_buffer(what, buffer, layout.len() as u64)?;
            } else {
                self.check_bytes(what, buffer, bytes)?;
            }
        }
        no_aliasing(buffers)?;
        if layout.is_empty() {
            // An empty batch: nothing to write.
            return Ok(());
        }
        let strategy = self.plan_softmax(&layout)?;
        let splits = strategy.splits();
        let params = SoftmaxParams {
            outer: layout.outer as u32,
            classes: layout.classes as u32,
            inner: layout.inner as u32,
            rows: layout.rows() as u32,
            mode: kind.code(),
            splits: splits as u32,
            span: layout.classes.div_ceil(splits) as u32,
            _pad: 0,
        };
        let uniform = self.uniform("xent softmax params", bytemuck::bytes_of(&params))?;
        // Input at 1; the written buffer (last) at 2; an upstream gradient at 3.
        let mut entries = vec![(0, &uniform), (1, buffers[0].1)];
        match buffers {
            [_, out] => entries.push((2, out.1)),
            [_, dy, out] => entries.extend([(3, dy.1), (2, out.1)]),
            _ => unreachable!("two or three buffers"),
        }
        // Every dispatch prepared before the pass, so a failure records nothing.
        let mut dispatches = Vec::with_capacity(2);
        match strategy {
            SoftmaxStrategy::Narrow | SoftmaxStrategy::Wide => {
                let (entry, pipeline, groups) = match strategy {
                    SoftmaxStrategy::Wide => ("wide", wide, layout.rows()),
                    _ => ("narrow", narrow, layout.rows().div_ceil(SOFTMAX_WG)),
                };
                let group = self.bind(pipeline, &entries);
                dispatches.push((entry, pipeline.clone(), group, self.grid(groups)?));
            }
            SoftmaxStrategy::Split { splits } => {
                let parts = {
                    let mut s = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
                    s.aux(&self.device, strategy.partials_bytes(&layout))?
                };
                let grid = self.grid(layout.rows() * splits)?;
                // The partial pass reads the input (and dy) but writes only `parts`.
                let partial_entries: Vec<_> = entries
                    .iter()
                    .copied()
                    .filter(|&(slot, _)| slot != 2)
                    .chain([(4, &parts)])
                    .collect();
                let split_entries: Vec<_> = entries.iter().copied().chain([(4, &parts)]).collect();
                for (entry, pipeline, entries) in [
                    ("partial", partial, partial_entries),
                    ("split", split, split_entries),
                ] {
                    let group = self.bind(pipeline, &entries);
                    dispatches.push((entry, pipeline.clone(), group, grid));
                }
            }
        }
        scope.pop("preparing the softmax pass")?;
        let call = Dispatches {
            label: "the softmax pass",
            list: dispatches,
        };
        self.encode(encoder, &call, Timing::Off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::binding::wgsl::{wgsl_fields, wgsl_struct, wgsl_u32};

    #[test]
    fn the_codes_and_sizes_shared_with_the_wgsl_agree() {
        let sm = &crate::ops::softmax::pipelines::source(Precision::F32);
        assert_eq!(wgsl_u32(sm, "LOG_SOFTMAX"), SoftmaxKind::LogSoftmax.code());
        assert_eq!(SoftmaxKind::Softmax.code(), 0);
        assert_eq!(wgsl_u32(sm, "WIDE_WG") as usize, SOFTMAX_WG);
        assert_eq!(wgsl_u32(sm, "NARROW_WG") as usize, SOFTMAX_WG);
    }

    #[test]
    fn the_rust_mirror_of_the_uniform_matches_the_wgsl() {
        let (size, members) = wgsl_struct(
            &crate::ops::softmax::pipelines::source(Precision::F32),
            "Params",
        );
        assert_eq!(size, std::mem::size_of::<SoftmaxParams>());
        assert_eq!(
            members,
            wgsl_fields!(SoftmaxParams: outer, classes, inner, rows, mode, splits, span, _pad)
        );
    }
}
