//! Recording a matrix product into the caller's encoder.

use bytemuck::{Pod, Zeroable};

use super::buffers::{MatmulOptions, Operand, Operands};
pub use super::buffers::{MatrixView, ProductBuffers};
use super::kernels::ProductPlan;
use super::pipelines::MatmulVariant;
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
}

/// Invocations of a `column_sums` workgroup.
const SUMS_WG: usize = 64;

/// Mirrors `MatmulParams` in `shaders/matmul/product.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    accumulate: u32,
    a_offset: u32,
    a_sm: u32,
    a_sk: u32,
    b_offset: u32,
    b_sk: u32,
    b_sn: u32,
    c_offset: u32,
    c_sm: u32,
    skip_bias: u32,
    /// The emulated cooperative kernel's tile side (16) and elements of a
    /// tile per invocation (8), the bounds of its loops: from the uniform,
    /// GL's compilers keep them as loops (unrolled, llvmpipe's GL took
    /// minutes to compile the module).
    side: u32,
    share: u32,
    _pad: u32,
}

/// **Recording API** of the matrix products: your buffers and encoder.
impl Context {
    /// Records `out (+)= op(A)·op(B) (+ bias)` into `encoder`: f32
    /// accumulation over k in ascending order, one fixed order for every
    /// element (no atomics), so the same inputs give the same bits; one
    /// dispatch per slice of k under the loop bound (4 096 of k for
    /// [`ProductKernel::Tiled`](crate::ProductKernel::Tiled)'s 64 × 64 tiles, 32 768 for
    /// [`ProductKernel::Blocks`](crate::ProductKernel::Blocks)' 128 × 32 blocks, 3 072 for
    /// [`ProductKernel::Coop`](crate::ProductKernel::Coop) and 96 for its emulation), each adding its slice in
    /// order. Nothing is submitted.
    ///
    /// # Errors
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
        let list = self.prepare_matmul(*dims, opts, buffers)?;
        let precisions = (buffers.a.precision, buffers.b.precision);
        let count = ProductCount {
            shape: self.product_shape(opts.kernel, precisions)?,
            dims: *dims,
            names: ["a", "b", "out"],
            elems: (buffers.a.precision.size(), buffers.b.precision.size()),
            bias: buffers.bias.is_some(),
            accumulate: buffers.accumulate,
        };
        let call = Dispatches::new("the matrix product", list, Some(count.traffic()));
        self.encode(encoder, &call, Timing::Off)
    }

    /// Validates and prepares one product's dispatches: one per
    /// slice of k of its kernel (at least one), none for an empty output.
    pub(crate) fn prepare_matmul(
        &self,
        dims: MatmulDims,
        opts: &MatmulOptions,
        b: &ProductBuffers<'_>,
    ) -> Result<Vec<Dispatch>> {
        let ops = Operands::new(opts, b);
        let MatmulDims { m, n, .. } = dims;
        let scope = GpuScope::push(&self.device);
        self.check_product(dims, &ops, b)?;
        let precisions = (ops.a.view.precision, ops.b.view.precision);
        let kernel = self.product_kernel(opts.kernel, precisions, m, n)?;
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
        };
        let pipeline = match kernel.shape.entry {
            "matmul_coop" => self.coop_pipeline(variant, kernel.shape.native)?,
            entry => self.matmul_pipeline(variant, entry)?,
        };
        let list = self.product_slices(dims, (&ops, b), &kernel, &pipeline)?;
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

    /// A dispatch per slice of k, in order: the first writes (or adds, with
    /// `accumulate`) with the bias, the others add.
    fn product_slices(
        &self,
        MatmulDims { m, n, k }: MatmulDims,
        (ops, b): (&Operands<'_>, &ProductBuffers<'_>),
        kernel: &ProductPlan,
        pipeline: &wgpu::ComputePipeline,
    ) -> Result<Vec<Dispatch>> {
        let (a_sm, a_sk) = ops.a.strides();
        let (b_sk, b_sn) = ops.b.strides();
        let read = {
            let s = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
            s.dummies.read.clone()
        };
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
        let bias = b.bias.unwrap_or(read.slice(..));
        let grid = (kernel.grid.0 as u32, kernel.grid.1 as u32);
        let mut list = Vec::new();
        let mut k0 = 0;
        loop {
            let k1 = (k0 + kernel.shape.k_step).min(k);
            let first = k0 == 0;
            let params = MatmulParams {
                m: m as u32,
                n: n as u32,
                k: (k1 - k0) as u32,
                accumulate: u32::from(b.accumulate || !first),
                a_offset: (ops.a.view.offset + k0 as u64 * a_sk) as u32,
                a_sm: a_sm as u32,
                a_sk: a_sk as u32,
                b_offset: (ops.b.view.offset + k0 as u64 * b_sk) as u32,
                b_sk: b_sk as u32,
                b_sn: b_sn as u32,
                c_offset: b.out_offset as u32,
                c_sm: b.out_stride as u32,
                skip_bias: u32::from(!first),
                side: 16,
                share: 8,
                _pad: 0,
            };
            let uniform = self.uniform("xent matmul params", bytemuck::bytes_of(&params))?;
            let entries = [
                (slot::PARAMS, uniform.slice(..)),
                (slot::LHS, ops.a.view.buffer),
                (slot::RHS, ops.b.view.buffer),
                (slot::OUT, b.out),
                (slot::BIAS, bias),
            ];
            let mut entries: Vec<_> = entries
                .iter()
                .map(|&(slot, r)| (slot, r.buffer(), self.whole_range(r, 4)))
                .collect();
            // The cooperative kernel stages scalars: no vec4 views.
            if kernel.shape.entry != "matmul_coop" {
                entries.extend([
                    (slot::LHS4, &lhs4, lhs4_range),
                    (slot::RHS4, &rhs4, rhs4_range),
                ]);
            }
            let group = self.bind_ranges(pipeline, &entries);
            list.push((kernel.shape.entry, pipeline.clone(), group, grid));
            if k1 == k {
                return Ok(list);
            }
            k0 = k1;
        }
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
            m: m as u32,
            n: n as u32,
            k: 0,
            accumulate: u32::from(accumulate),
            a_offset: a.offset as u32,
            a_sm: a.stride as u32,
            a_sk: 1,
            b_offset: 0,
            b_sk: 0,
            b_sn: 0,
            c_offset: out_offset as u32,
            c_sm: 0,
            skip_bias: 0,
            side: 16,
            share: 8,
            _pad: 0,
        };
        let variant = MatmulVariant {
            lhs: a.precision,
            rhs: Precision::F32,
            a_k_contig: true,
            b_k_contig: true,
            a_vec: false,
            b_vec: false,
            has_bias: false,
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
            members[..15],
            wgsl_fields!(MatmulParams: m, n, k, accumulate, a_offset, a_sm, a_sk, b_offset,
                b_sk, b_sn, c_offset, c_sm, skip_bias, side, share)[..]
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
