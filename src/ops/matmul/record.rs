//! Recording a matrix product into the caller's encoder.

use super::buffers::{MatmulOptions, Operand, Operands};
pub use super::buffers::{MatrixView, ProductBuffers};
use super::filter::GradFilter;
use super::kernels::ProductPlan;
use super::params::MatmulParams;
use super::pipelines::MatmulVariant;
use super::split::{SplitPlan, SplitRule};
use super::traffic::ProductCount;
use super::MatmulDims;
use crate::core::device::LOOP_TRIPS_MAX;
use crate::core::encode::{Dispatch, Dispatches, Timing};
use crate::core::Context;
use crate::core::Precision;
use crate::error::{Error, GpuScope, Result};

/// The binding slots of `shaders/matmul/` (a unit test holds them to the WGSL).
pub(crate) mod slot {
    pub const PARAMS: u32 = 0;
    pub const LHS: u32 = 1;
    pub const RHS: u32 = 2;
    pub const OUT: u32 = 3;
    pub const BIAS: u32 = 4;
    pub const LHS4: u32 = 5;
    pub const RHS4: u32 = 6;
    pub const FILTER_STATS: u32 = 7;
}

/// Invocations of a `column_sums` workgroup.
const SUMS_WG: usize = 64;

/// **Recording API** of the matrix products: your buffers and encoder.
impl Context {
    /// Records `out (+)= op(A)·op(B) (+ bias)` into `encoder`: k cut into
    /// slices as [`MatmulOptions::split_k`] says (by default, of the
    /// kernel's bound a dispatch: 4 096 of k for
    /// [`ProductKernel::Tiled`](crate::ProductKernel::Tiled)'s 64 × 64 tiles, 32 768 for
    /// [`ProductKernel::Blocks`](crate::ProductKernel::Blocks)' 128 × 32 blocks, 3 072 for
    /// [`ProductKernel::Coop`](crate::ProductKernel::Coop) and 96 for its emulation), each
    /// slice summed in f32 in ascending k, the slices' sums added to the
    /// output in order; one fixed order for every element (no atomics), so
    /// the same inputs give the same bits, whether the slices run one after
    /// another or several at once (their partial sums in the context's
    /// scratch). Nothing is submitted.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] (`split_k`) for a cut the kernel cannot run;
    /// [`Error::BadOffset`] for a region at an offset the device cannot bind;
    /// [`Error::BadBuffer`] for an operand or output outside its region, past
    /// one binding, with a stride shorter than its rows, without `STORAGE`,
    /// or an output that is an input's buffer; [`Error::Unsupported`] for
    /// more tiles along an axis than the device dispatches (65 535 tiles or
    /// blocks of 64 or 128 columns, or of 64 or 32 rows), or an f16 operand
    /// without `SHADER_F16`; [`Error::Gpu`].
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use wgpu::util::DeviceExt;
    /// use xent::{MatrixView, Precision, ProductBuffers};
    /// let ctx = xent::Context::from_env()?;
    /// let dev = ctx.device();
    /// let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    /// let init = |v: &[f32]| dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
    ///     label: None, contents: bytemuck::cast_slice(v), usage });
    /// // h (2 × 3) · Wᵀ with W (4 × 3): logits (2 × 4).
    /// let (h, w) = (init(&[1.0; 6]), init(&[0.5; 12]));
    /// let out = init(&[0.0; 8]);
    /// let buffers = ProductBuffers {
    ///     a: MatrixView::dense(h.slice(..), Precision::F32, 3),
    ///     b: MatrixView::dense(w.slice(..), Precision::F32, 3),
    ///     bias: None, out: out.slice(..), out_offset: 0, out_stride: 4, accumulate: false,
    /// };
    /// let opts = xent::MatmulOptions { transpose_b: true, ..Default::default() };
    /// let mut encoder = dev.create_command_encoder(&Default::default());
    /// ctx.record_matmul(&mut encoder, &xent::MatmulDims { m: 2, n: 4, k: 3 }, &opts, &buffers)?;
    /// ctx.queue().submit([encoder.finish()]);
    /// # Ok(()) }
    /// ```
    pub fn record_matmul(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        dims: &MatmulDims,
        opts: &MatmulOptions,
        buffers: &ProductBuffers<'_>,
    ) -> Result<()> {
        let rule = self.split_rule(opts.split_k, None);
        let list = self.prepare_matmul(*dims, opts, buffers, (&rule, None))?;
        let shape = self.product_shape(opts.kernel, (buffers.a.precision, buffers.b.precision))?;
        let count = ProductCount {
            shape,
            split: rule.plan(&shape, *dims),
            dims: *dims,
            names: ["a", "b", "out"],
            elems: (buffers.a.precision.size(), buffers.b.precision.size()),
            bias: buffers.bias.is_some(),
            accumulate: buffers.accumulate,
        };
        let call = Dispatches::new("the matrix product", list, Some(count.traffic()));
        self.encode(encoder, &call, Timing::Off)
    }

    /// Validates and prepares one product's dispatches: one per batch of
    /// slices of k (at least one), cut as `rule` says, and the batches'
    /// sums; none for an empty output. With `filter`, A is a window of
    /// gradients whose steps below its threshold are skipped.
    pub(crate) fn prepare_matmul(
        &self,
        dims: MatmulDims,
        opts: &MatmulOptions,
        b: &ProductBuffers<'_>,
        (rule, filter): (&SplitRule, Option<&GradFilter<'_>>),
    ) -> Result<Vec<Dispatch>> {
        let ops = Operands::new(opts, b);
        let MatmulDims { m, n, .. } = dims;
        let scope = GpuScope::push(&self.device);
        self.check_product(dims, &ops, b)?;
        let precisions = (ops.a.view.precision, ops.b.view.precision);
        let kernel = self.product_kernel(opts.kernel, precisions, m, n)?;
        rule.check(&kernel.shape)?;
        if m == 0 || n == 0 {
            scope.pop("preparing a matrix product")?;
            return Ok(Vec::new());
        }
        let variant = MatmulVariant {
            lhs: ops.a.view.precision,
            rhs: ops.b.view.precision,
            a_k_contig: !ops.a.transposed,
            b_k_contig: ops.b.transposed,
            a_vec: ops.a.aligned(),
            b_vec: ops.b.aligned(),
            has_bias: b.bias.is_some(),
            filter: filter.is_some(),
        };
        let pipeline = match kernel.shape.entry {
            "matmul_coop" => self.coop_pipeline(variant, kernel.shape.native)?,
            entry => self.matmul_pipeline(variant, entry)?,
        };
        let split = rule.plan(&kernel.shape, dims);
        let inputs = (&ops, b, filter);
        let list = self.product_slices(dims, inputs, (&kernel, split), &pipeline)?;
        scope.pop("preparing a matrix product")?;
        Ok(list)
    }

    /// The operands', bias's and output's views, and an output apart from
    /// every input.
    fn check_product(
        &self,
        MatmulDims { m, n, k }: MatmulDims,
        ops: &Operands<'_>,
        b: &ProductBuffers<'_>,
    ) -> Result<()> {
        ops.a.check(self, "a", m, k)?;
        ops.b.check(self, "b", k, n)?;
        if let Some(bias) = b.bias {
            let bytes = (n as u64 * ops.b.view.precision.size()).next_multiple_of(4);
            self.check_bytes("bias", bias, bytes)?;
        }
        let out_view = MatrixView {
            buffer: b.out,
            precision: Precision::F32,
            offset: b.out_offset,
            stride: b.out_stride,
        };
        Operand::plain(out_view).check(self, "out", m, n)?;
        for (what, input) in [
            ("a", Some(ops.a.view.buffer)),
            ("b", Some(ops.b.view.buffer)),
            ("bias", b.bias),
        ] {
            if input.is_some_and(|i| i.buffer() == b.out.buffer()) {
                return Err(Error::BadBuffer {
                    what: "out",
                    reason: format!("it is the buffer of input `{what}`"),
                });
            }
        }
        Ok(())
    }

    /// A dispatch per batch of slices of k, in order: a batch of one
    /// writes the output (or adds to it, with `accumulate`) with the bias
    /// when it is the first, the later ones add; a batch of several writes
    /// its slices' partial sums to the context's scratch, which
    /// `sum_slices` adds to the output in order.
    fn product_slices(
        &self,
        dims: MatmulDims,
        (ops, b, filter): (&Operands<'_>, &ProductBuffers<'_>, Option<&GradFilter<'_>>),
        (kernel, split): (&ProductPlan, SplitPlan),
        pipeline: &wgpu::ComputePipeline,
    ) -> Result<Vec<Dispatch>> {
        let MatmulDims { m, n, k } = dims;
        let (read, partials) = {
            let mut s = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
            let bytes = 4 * (m * n * split.parallel) as u64;
            let partials = (split.parallel > 1)
                .then(|| s.partials(&self.device, bytes))
                .transpose()?;
            (s.dummies.read.clone(), partials)
        };
        let bias = b.bias.unwrap_or(read.slice(..));
        let stats = filter.map_or(read.slice(..), |f| f.stats);
        let mut list = Vec::new();
        for (i, (k0, k1, slices)) in split.batches(k).into_iter().enumerate() {
            let first = i == 0;
            let mut params = MatmulParams::batch(dims, ops, (k0, k1), split.len);
            if let Some(f) = filter {
                params = f.apply(params);
            }
            // The caller's output, with the bias and the accumulation of a
            // product's one dispatch.
            let into_out = MatmulParams {
                accumulate: u32::from(b.accumulate || !first),
                skip_bias: u32::from(!first),
                ..params.to_out(b)
            };
            let grid = (kernel.grid.0, kernel.grid.1 * slices);
            match &partials {
                Some(p) if slices > 1 => {
                    let into_partials = MatmulParams {
                        skip_bias: 1,
                        c_sm: n as u32,
                        slice_out: (m * n) as u32,
                        ..params
                    };
                    let bind = (&into_partials, [p.slice(..), bias, stats]);
                    list.push(self.product_dispatch(kernel, (ops, &read), bind, grid, pipeline)?);
                    let sum = MatmulParams {
                        k: slices as u32,
                        slice_out: (m * n) as u32,
                        ..into_out
                    };
                    let rhs = (ops.b.view.precision, b.bias.is_some());
                    list.push(self.sum_slices(rhs, &sum, [p.slice(..), b.out, bias])?);
                }
                _ => {
                    let bind = (&into_out, [b.out, bias, stats]);
                    list.push(self.product_dispatch(kernel, (ops, &read), bind, grid, pipeline)?);
                }
            }
        }
        Ok(list)
    }

    /// One dispatch of the product kernel with `params`, into `out`, with
    /// the bias and the filter's statistics (placeholders where absent).
    fn product_dispatch(
        &self,
        kernel: &ProductPlan,
        (ops, read): (&Operands<'_>, &wgpu::Buffer),
        (params, [out, bias, stats]): (&MatmulParams, [wgpu::BufferSlice<'_>; 3]),
        grid: (usize, usize),
        pipeline: &wgpu::ComputePipeline,
    ) -> Result<Dispatch> {
        // The vec4 views, over whole runs of 4 (16 bytes in f32, 8 in f16
        // and bf16: a binding rounded to 16 would cut off a last run the
        // kernel reads); a placeholder for a buffer under one run, whose
        // `aligned()` is false: never read.
        let view4 = |v: &Operand<'_>| -> (wgpu::Buffer, (u64, u64)) {
            if v.view.buffer.size() >= v.quad_bytes() {
                let r = v.view.buffer;
                (r.buffer().clone(), self.whole_range(r, v.quad_bytes()))
            } else {
                (read.clone(), self.whole_range(read.slice(..), 16))
            }
        };
        let ((lhs4, lhs4_range), (rhs4, rhs4_range)) = (view4(&ops.a), view4(&ops.b));
        let uniform = self.uniform("xent matmul params", bytemuck::bytes_of(params))?;
        let entries = [
            (slot::PARAMS, uniform.slice(..)),
            (slot::LHS, ops.a.view.buffer),
            (slot::RHS, ops.b.view.buffer),
            (slot::OUT, out),
            (slot::BIAS, bias),
        ];
        let mut entries: Vec<_> = entries
            .iter()
            .map(|&(slot, r)| (slot, r.buffer(), self.whole_range(r, 4)))
            .collect();
        // The cooperative kernel stages scalars (no vec4 views).
        entries.push((
            slot::FILTER_STATS,
            stats.buffer(),
            self.whole_range(stats, 4),
        ));
        if kernel.shape.entry != "matmul_coop" {
            entries.extend([
                (slot::LHS4, &lhs4, lhs4_range),
                (slot::RHS4, &rhs4, rhs4_range),
            ]);
        }
        let group = self.bind_ranges(pipeline, &entries);
        let grid = (grid.0 as u32, grid.1 as u32);
        Ok((kernel.shape.entry, pipeline.clone(), group, grid))
    }

    /// Prepares `out[out_offset + j] (+)= Σ_{i<m} A(i, j)` for `j < n`, `i`
    /// ascending (the bias's gradient): `a` not transposed, `m` at most the
    /// loop bound.
    pub(crate) fn prepare_column_sums(
        &self,
        m: usize,
        n: usize,
        a: &MatrixView<'_>,
        out: wgpu::BufferSlice<'_>,
        out_offset: u64,
        accumulate: bool,
    ) -> Result<Option<Dispatch>> {
        let scope = GpuScope::push(&self.device);
        Operand::plain(*a).check(self, "a", m, n)?;
        let out_view = MatrixView::dense(out, Precision::F32, n);
        Operand::plain(MatrixView {
            offset: out_offset,
            ..out_view
        })
        .check(self, "out", 1, n)?;
        if m > LOOP_TRIPS_MAX {
            return Err(Error::Unsupported {
                what: "column sums this long",
                reason: format!("{m} rows, more than the loop bound of {LOOP_TRIPS_MAX}"),
            });
        }
        if n == 0 {
            scope.pop("preparing column sums")?;
            return Ok(None);
        }
        let params = MatmulParams {
            accumulate: u32::from(accumulate),
            a_offset: a.offset as u32,
            a_sm: a.stride as u32,
            a_sk: 1,
            c_offset: out_offset as u32,
            ..MatmulParams::outputs(MatmulDims { m, n, k: 0 })
        };
        let variant = MatmulVariant {
            lhs: a.precision,
            rhs: Precision::F32,
            a_k_contig: true,
            b_k_contig: true,
            a_vec: false,
            b_vec: false,
            has_bias: false,
            filter: false,
        };
        let pipeline = self.matmul_pipeline(variant, "column_sums")?;
        let uniform = self.uniform("xent column sums params", bytemuck::bytes_of(&params))?;
        let entries = [
            (slot::PARAMS, uniform.slice(..)),
            (slot::LHS, a.buffer),
            (slot::OUT, out),
        ];
        let group = self.bind(&pipeline, &entries);
        let grid = self.grid(n.div_ceil(SUMS_WG))?;
        scope.pop("preparing column sums")?;
        Ok(Some(("column_sums", pipeline, group, grid)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::binding::wgsl::{wgsl_fields, wgsl_struct};
    use crate::ops::matmul::kernels::{COOP_BLOCK, TILE, TILE_K};

    #[test]
    fn the_params_and_slots_match_the_wgsl() {
        let src = crate::ops::matmul::pipelines::source(Precision::F32, Precision::F32);
        let (size, members) = wgsl_struct(&src, "MatmulParams");
        assert_eq!(size, std::mem::size_of::<MatmulParams>());
        assert_eq!(
            members[..19],
            wgsl_fields!(MatmulParams: m, n, k, accumulate, a_offset, a_sm, a_sk, b_offset,
                b_sk, b_sn, c_offset, c_sm, skip_bias, side, share, slice_k, slice_out,
                filter_eps, filter_mean)[..]
        );
        let module = wgpu::naga::front::wgsl::parse_str(&src).unwrap();
        let mut bound: Vec<(u32, String)> = module
            .global_variables
            .iter()
            .filter_map(|(_, v)| Some((v.binding.as_ref()?.binding, v.name.clone()?)))
            .collect();
        bound.sort();
        let want: Vec<(u32, String)> = [
            (slot::PARAMS, "mp"),
            (slot::LHS, "lhs"),
            (slot::RHS, "rhs"),
            (slot::OUT, "out"),
            (slot::BIAS, "bias"),
            (slot::LHS4, "lhs4"),
            (slot::RHS4, "rhs4"),
            (slot::FILTER_STATS, "filter_stats"),
        ]
        .into_iter()
        .map(|(n, s)| (n, s.to_string()))
        .collect();
        assert_eq!(bound, want);
        for (name, rust) in [("TILE", TILE), ("TILE_K", TILE_K)] {
            assert_eq!(
                crate::core::binding::wgsl::wgsl_u32(&src, name) as usize,
                rust,
                "{name}"
            );
        }
        let coop =
            crate::ops::matmul::pipelines::coop_source(Precision::BF16, Precision::BF16, false);
        assert_eq!(
            crate::core::binding::wgsl::wgsl_u32(&coop, "BLOCK") as usize,
            COOP_BLOCK
        );
        assert_eq!(
            crate::core::binding::wgsl::wgsl_u32(&coop, "TK") as usize,
            TILE_K
        );
    }
}
