//! Recording softmax, log-softmax and their backward into the caller's encoder.

use bytemuck::{Pod, Zeroable};

use super::plan::{SoftmaxDirection, SoftmaxStrategy};
use super::traffic::SoftmaxTraffic;
use super::{SoftmaxBackwardBuffers, SoftmaxBuffers, SoftmaxKind, SoftmaxOptions};
use crate::core::binding::written_apart;
use crate::core::encode::{Dispatch, Dispatches, Timing};
use crate::core::shape::Layout;
use crate::core::traffic::Traffic;
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

impl SoftmaxParams {
    fn new(layout: &Layout, kind: SoftmaxKind, splits: usize) -> Self {
        Self {
            outer: layout.outer as u32,
            classes: layout.classes as u32,
            inner: layout.inner as u32,
            rows: layout.rows() as u32,
            mode: kind.code(),
            splits: splits as u32,
            span: layout.classes.div_ceil(splits) as u32,
            _pad: 0,
        }
    }
}

/// **Recording API** of softmax and log-softmax: your buffers and encoder.
impl Context {
    /// Records softmax or log-softmax of `buffers.input` along the class
    /// axis into `buffers.output`.
    ///
    /// `dims` as in [`Context::record_cross_entropy`](crate::Context::record_cross_entropy);
    /// what each region needs is in [`SoftmaxBuffers`]. The buffers and the
    /// encoder must come from this context's device, never from another
    /// `wgpu::Instance`, as for [`Context::record_cross_entropy`](crate::Context::record_cross_entropy).
    ///
    /// # Errors
    /// [`Error::InvalidShape`](crate::Error::InvalidShape) (also for a tensor, or the partials of its
    /// split rows, past the device's largest binding: softmax is not
    /// chunked), [`Error::BadBuffer`](crate::Error::BadBuffer),
    /// [`Error::BadOffset`](crate::Error::BadOffset), [`Error::Unsupported`](crate::Error::Unsupported)
    /// (f16 without `SHADER_F16`), [`Error::Gpu`](crate::Error::Gpu) and
    /// [`Error::DeviceLost`](crate::Error::DeviceLost) as for cross-entropy.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use wgpu::util::DeviceExt;
    /// use xent::{Precision, SoftmaxBuffers, SoftmaxKind, SoftmaxOptions};
    /// let ctx = xent::Context::from_env()?;
    /// let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    /// let x = ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
    ///     label: None, contents: bytemuck::cast_slice(&[1.0f32, 2.0, 3.0]), usage });
    /// let y = ctx.device().create_buffer(&wgpu::BufferDescriptor {
    ///     label: None, size: 12, usage, mapped_at_creation: false });
    /// let mut encoder = ctx.device().create_command_encoder(&Default::default());
    /// let opts = SoftmaxOptions { kind: SoftmaxKind::LogSoftmax };
    /// let buffers = SoftmaxBuffers { input: x.slice(..), output: y.slice(..), precision: Precision::F32 };
    /// ctx.record_softmax(&mut encoder, &[1, 3], &opts, &buffers)?;
    /// ctx.queue().submit([encoder.finish()]);
    /// # Ok(()) }
    /// ```
    pub fn record_softmax(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        dims: &[usize],
        options: &SoftmaxOptions,
        buffers: &SoftmaxBuffers<'_>,
    ) -> Result<()> {
        let call = self.prepare_softmax(dims, options, buffers)?;
        self.encode(encoder, &call, Timing::Off)
    }

    /// The forward's dispatches, prepared (`record_softmax` encodes them;
    /// `bench` times them).
    pub(crate) fn prepare_softmax(
        &self,
        dims: &[usize],
        options: &SoftmaxOptions,
        buffers: &SoftmaxBuffers<'_>,
    ) -> Result<Dispatches> {
        self.prepare_normalise(
            dims,
            (SoftmaxDirection::Forward, options.kind),
            buffers.precision,
            &[("input", buffers.input), ("output", buffers.output)],
        )
    }

    /// Records the backward of softmax or log-softmax along the class axis:
    /// given the forward output `output` (y) and the upstream gradient
    /// `grad_output` (dy), writes `grad_input` (dx) as a vector-Jacobian product,
    /// `dx = y ⊙ (dy − Σ dy·y)` for softmax, `dx = dy − exp(y)·Σ dy` for log-softmax.
    /// Regions as in [`SoftmaxBackwardBuffers`]; buffers and encoder from this
    /// context's device, as for the forward.
    ///
    /// # Errors
    /// As [`Context::record_softmax`].
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use wgpu::util::DeviceExt;
    /// use xent::{Precision, SoftmaxBackwardBuffers, SoftmaxOptions};
    /// let ctx = xent::Context::from_env()?;
    /// let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    /// let init = |v: &[f32]| ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
    ///     label: None, contents: bytemuck::cast_slice(v), usage });
    /// let (y, dy, dx) = (init(&[0.5, 0.5]), init(&[1.0, 0.0]), init(&[0.0, 0.0]));
    /// let buffers = SoftmaxBackwardBuffers {
    ///     output: y.slice(..), grad_output: dy.slice(..), grad_input: dx.slice(..),
    ///     precision: Precision::F32 };
    /// let mut encoder = ctx.device().create_command_encoder(&Default::default());
    /// ctx.record_softmax_backward(&mut encoder, &[1, 2], &SoftmaxOptions::default(), &buffers)?;
    /// ctx.queue().submit([encoder.finish()]);
    /// # Ok(()) }
    /// ```
    pub fn record_softmax_backward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        dims: &[usize],
        options: &SoftmaxOptions,
        buffers: &SoftmaxBackwardBuffers<'_>,
    ) -> Result<()> {
        let call = self.prepare_softmax_backward(dims, options, buffers)?;
        self.encode(encoder, &call, Timing::Off)
    }

    /// The backward's dispatches, prepared.
    pub(crate) fn prepare_softmax_backward(
        &self,
        dims: &[usize],
        options: &SoftmaxOptions,
        buffers: &SoftmaxBackwardBuffers<'_>,
    ) -> Result<Dispatches> {
        self.prepare_normalise(
            dims,
            (SoftmaxDirection::Backward, options.kind),
            buffers.precision,
            &[
                ("output", buffers.output),
                ("grad_output", buffers.grad_output),
                ("grad_input", buffers.grad_input),
            ],
        )
    }

    /// Shared by the softmax forward and backward: `buffers` are bound at 1
    /// (input), 2 (output) and, for the backward, 3 (upstream gradient), or
    /// their vec4 views 4 slots on.
    fn prepare_normalise(
        &self,
        dims: &[usize],
        (direction, kind): (SoftmaxDirection, SoftmaxKind),
        precision: Precision,
        buffers: &[(&'static str, wgpu::BufferSlice<'_>)],
    ) -> Result<Dispatches> {
        const LABEL: &str = "the softmax pass";
        // As in `prepare_cross_entropy`: popped before anything is recorded.
        let scope = GpuScope::push(&self.device);
        let layout = Layout::from_dims(dims)?;
        self.check_normalise_buffers(&layout, precision, buffers)?;
        if layout.is_empty() {
            // An empty batch: nothing to write, nothing moved.
            scope.pop("preparing the softmax pass")?;
            return Ok(Dispatches::new(LABEL, Vec::new(), Some(Traffic::new(0))));
        }
        let strategy = self.plan_softmax(&layout, direction)?;
        let params = SoftmaxParams::new(&layout, kind, strategy.splits());
        let uniform = self.uniform("xent softmax params", bytemuck::bytes_of(&params))?;
        // Input at 1; the written buffer (last) at 2; an upstream gradient at 3.
        let mut entries = vec![(0, uniform.slice(..)), (1, buffers[0].1)];
        match buffers {
            [_, out] => entries.push((2, out.1)),
            [_, dy, out] => entries.extend([(3, dy.1), (2, out.1)]),
            _ => unreachable!("two or three buffers"),
        }
        // Every dispatch prepared before the pass, so a failure records nothing.
        let entry_points = direction.entries(strategy);
        let pipelines = entry_points
            .iter()
            .map(|&e| self.softmax_pipeline(precision, e, &strategy.specialisation()))
            .collect::<Result<Vec<_>>>()?;
        if let SoftmaxStrategy::Team { quads: true, .. } = strategy {
            // The vec4 teams use only the vec4 views, 4 slots on.
            for (slot, _) in &mut entries {
                *slot += if *slot > 0 { 4 } else { 0 };
            }
        }
        let list =
            self.normalise_dispatches(&layout, strategy, entry_points, pipelines, &entries)?;
        scope.pop("preparing the softmax pass")?;
        let count = SoftmaxTraffic::new(&layout, precision, direction);
        let traffic = Some(count.count(strategy, entry_points));
        Ok(Dispatches::new(LABEL, list, traffic))
    }

    /// Each buffer's size for `layout`'s values in `precision` (whole words
    /// of the storage's values: the binding-size check in the plan counts 4
    /// bytes a value, which covers every precision), and the written one
    /// (last) apart from the read ones.
    fn check_normalise_buffers(
        &self,
        layout: &Layout,
        precision: Precision,
        buffers: &[(&'static str, wgpu::BufferSlice<'_>)],
    ) -> Result<()> {
        let bytes = (layout.len() as u64 * precision.size()).next_multiple_of(4);
        for &(what, buffer) in buffers {
            if precision == Precision::F32 {
                self.check_buffer(what, buffer, layout.len() as u64)?;
            } else {
                self.check_bytes(what, buffer, bytes)?;
            }
        }
        let (written, read) = buffers.split_last().expect("a written buffer");
        written_apart(&[*written], read)
    }

    /// The pass's dispatches of `entry_points` through `pipelines`: one of
    /// the row kernels, or the split rows' partial and finishing kernels over
    /// the scratch's partials.
    fn normalise_dispatches(
        &self,
        layout: &Layout,
        strategy: SoftmaxStrategy,
        entry_points: &[&'static str],
        pipelines: Vec<wgpu::ComputePipeline>,
        entries: &[(u32, wgpu::BufferSlice<'_>)],
    ) -> Result<Vec<Dispatch>> {
        let grid = self.grid(strategy.workgroups(layout))?;
        let SoftmaxStrategy::Split { .. } = strategy else {
            let group = self.bind(&pipelines[0], entries);
            return Ok(vec![(entry_points[0], pipelines[0].clone(), group, grid)]);
        };
        let parts = {
            let mut s = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
            s.aux(&self.device, strategy.partials_bytes(layout))?
        };
        let parts = (4, parts.slice(..));
        // The partial pass reads the input (and dy) but writes only `parts`.
        let read_only = entries.iter().copied().filter(|&(slot, _)| slot != 2);
        let partial_entries: Vec<_> = read_only.chain([parts]).collect();
        let split_entries: Vec<_> = entries.iter().copied().chain([parts]).collect();
        let passes = [partial_entries, split_entries];
        let dispatches = passes.iter().zip(entry_points).zip(pipelines);
        Ok(dispatches
            .map(|((entries, &entry), pipeline)| {
                let group = self.bind(&pipeline, entries);
                (entry, pipeline, group, grid)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::binding::wgsl::{wgsl_fields, wgsl_struct, wgsl_u32};
    use crate::ops::softmax::plan::SOFTMAX_WG;

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
