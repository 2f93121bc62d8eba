//! Recording a fused linear cross-entropy into the caller's encoder: per
//! chunk of rows, the logits' product into the window, the cross-entropy's
//! rows passes over it in place, then the three gradient products.

use super::buffers::LinearBuffers;
use super::options::LinearCrossEntropyOptions;
use super::traffic::LinearCount;
use super::LinearDims;
use crate::core::encode::{Dispatch, Dispatches, Timing};
use crate::core::shape::Layout;
use crate::core::Context;
use crate::core::Precision;
use crate::core::{Reduction, Returns};
use crate::error::{GpuScope, Result};
use crate::ops::cross_entropy::record::RowWindow;
use crate::ops::cross_entropy::shard::{ShardPass, ShardStage};
use crate::ops::cross_entropy::traffic::CallCount;
use crate::ops::cross_entropy::CrossEntropyBuffers;
use crate::ops::matmul::buffers::Operand;
use crate::ops::matmul::filter::GradFilter;
use crate::ops::matmul::kernels::ProductShape;
use crate::ops::matmul::split::SplitRule;
use crate::ops::matmul::MatmulDims;
use crate::ops::matmul::{MatmulOptions, MatrixView, ProductBuffers};

/// **Recording API** of the fused linear cross-entropy: your buffers and encoder.
impl Context {
    /// Records the fused linear cross-entropy into `encoder`: the loss of
    /// `logits = h·Wᵀ + b` with class-index or probability targets (every option of
    /// [`LinearCrossEntropyOptions::loss`]), and `∂L/∂h`, `∂L/∂W`, `∂L/∂b`,
    /// without the `(n, v)` logits ever existing whole. One compute pass:
    /// the targets' statistics; then per chunk of
    /// [`LinearPlan::window_rows`](crate::LinearPlan::window_rows) rows: `h·Wᵀ + b` into
    /// the context's window of logits, the cross-entropy's rows passes
    /// overwriting it with `∂L/∂logits` (already divided by the mean's
    /// denominator of all `n` rows), `∂L/∂h` of the chunk's rows
    /// (`g·W`), `∂L/∂W += gᵀ·h` and `∂L/∂b += Σ g` (the first chunk writes,
    /// the others add, in chunk order); then the loss's reduction. Every
    /// sum has a fixed order and no atomics: the same inputs give the same
    /// bits. Nothing is submitted.
    ///
    /// Out-of-range targets do not fault the device: their rows get NaN loss
    /// and gradient, which the products spread over all of `∂L/∂W` and
    /// `∂L/∂b` (and a `mean` or `sum` loss), and the status buffer names the
    /// first of them.
    ///
    /// # Errors
    /// [`Error::InvalidOption`](crate::Error::InvalidOption) (`split_k`
    /// among them, for a cut the products' kernel cannot run);
    /// [`Error::BadOffset`](crate::Error::BadOffset) for a region at an
    /// offset the device cannot bind; [`Error::BadBuffer`](crate::Error::BadBuffer)
    /// for a buffer too small, without `STORAGE`, or an output that aliases
    /// another buffer; the errors of [`Context::plan_linear_cross_entropy`]
    /// and [`Context::record_matmul`]; [`Error::Gpu`](crate::Error::Gpu).
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use wgpu::util::DeviceExt;
    /// let ctx = xent::Context::from_env()?;
    /// let dev = ctx.device();
    /// let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    /// let init = |b: &[u8]| dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
    ///     label: None, contents: b, usage });
    /// let dims = xent::LinearDims { n: 2, h: 3, v: 4 };
    /// let hidden = init(bytemuck::cast_slice(&[0.5f32; 6]));
    /// let weight = init(bytemuck::cast_slice(&[0.25f32; 12]));
    /// let targets = init(bytemuck::cast_slice(&[1i32, 3]));
    /// let (loss, status) = (init(&[0; 4]), init(&[0; 16]));
    /// let (gh, gw) = (init(&[0; 24]), init(&[0; 48]));
    /// let buffers = xent::LinearBuffers {
    ///     grad_hidden: Some(gh.slice(..)), grad_weight: Some(gw.slice(..)),
    ///     ..xent::LinearBuffers::new(hidden.slice(..), weight.slice(..),
    ///         xent::TargetBuffer::ClassI32(targets.slice(..)), loss.slice(..), status.slice(..))
    /// };
    /// let mut encoder = dev.create_command_encoder(&Default::default());
    /// ctx.record_linear_cross_entropy(&mut encoder, &dims, &Default::default(), &buffers)?;
    /// ctx.queue().submit([encoder.finish()]);
    /// # Ok(()) }
    /// ```
    pub fn record_linear_cross_entropy(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        dims: &LinearDims,
        opts: &LinearCrossEntropyOptions,
        buffers: &LinearBuffers<'_>,
    ) -> Result<()> {
        let call = self.prepare_linear_cross_entropy(*dims, opts, buffers, None)?;
        self.encode(encoder, &call, Timing::Off)
    }

    /// With `shard`, `dims` is the whole call's (`v` = C) and the buffers
    /// hold the shard's rows `[c0, c1)` of `W`, `b`, the class weights and
    /// their gradients: the rows passes are the shard's partial (no
    /// gradient products) or finish (`∂L/∂h` the shard's part of the sum).
    pub(crate) fn prepare_linear_cross_entropy(
        &self,
        dims: LinearDims,
        opts: &LinearCrossEntropyOptions,
        b: &LinearBuffers<'_>,
        shard: Option<&ShardPass<'_>>,
    ) -> Result<Dispatches> {
        let whole_v = dims.v;
        if let Some(s) = shard {
            s.range.check(whole_v)?;
        }
        let dims = LinearDims {
            v: shard.map_or(whole_v, |s| s.range.len()),
            ..dims
        };
        // The per-row outputs are held when their buffers are given.
        let rows = Returns {
            correct: b.correct.is_some(),
            argmax: b.argmax.is_some(),
            entropy: b.entropy.is_some(),
            ..Returns::LOSS
        };
        let plan = self.plan_linear(dims, opts, &rows, shard.is_some())?;
        self.check_linear_buffers(dims, b, shard.is_some())?;

        let scope = GpuScope::push(&self.device);
        let (window, d) = {
            let mut s = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
            (
                s.window(&self.device, plan.window_bytes)?,
                s.dummies.clone(),
            )
        };
        let ce = window_buffers(b, window.slice(..));
        let rows = Some(RowWindow {
            rows: plan.window_rows,
        });
        let whole = [dims.n, whole_v];
        let phases = self.prepare_cross_entropy_phases(&whole, &opts.loss, &ce, rows, shard)?;
        // The phases' call statistics, where the filter's threshold scales.
        let stats = opts.filter_eps.and_then(|_| {
            let s = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
            s.aux.clone()
        });
        let call = LinearCall {
            dims,
            opts,
            b,
            window: window.slice(..),
            // An empty shard's products read placeholders: its ∂L/∂h part
            // is a product over k = 0, zeros.
            weight: if dims.v == 0 {
                d.read.slice(..)
            } else {
                b.weight
            },
            placeholder: d.read.slice(..),
            window_rows: plan.window_rows,
            // The products' partial sums in what the window leaves.
            rule: self.split_rule(
                opts.split_k,
                Some(plan.budget.saturating_sub(plan.scratch_bytes)),
            ),
            partial: matches!(shard, Some(s) if matches!(s.stage, ShardStage::Partial { .. })),
            filter: grad_filter(opts, stats.as_ref()),
        };
        let mut list = phases.before;
        for (c, rows_passes) in phases.chunks.into_iter().enumerate() {
            list.extend(self.linear_chunk(&call, c, rows_passes)?);
        }
        if dims.n == 0 && !call.partial {
            list.extend(self.linear_without_rows(&call)?);
        }
        list.extend(phases.after);
        let count = call.count(self.linear_shapes(&call)?, &phases.count, &phases.layout);
        scope.pop("preparing the fused linear cross-entropy")?;
        let label = "the fused linear cross-entropy";
        Ok(Dispatches::new(label, list, Some(count.traffic())))
    }

    /// Chunk `c`'s dispatches: `logits = h·Wᵀ + b` into the window, the
    /// rows passes turning it into `g = ∂L/∂logits` (a shard's partial only
    /// reads it), then `∂L/∂h = g·W` of its rows, `∂L/∂W (+)= gᵀ·h` and
    /// `∂L/∂b (+)= Σ g` (the first chunk writes, the others add).
    fn linear_chunk(
        &self,
        call: &LinearCall<'_>,
        c: usize,
        rows_passes: Vec<Dispatch>,
    ) -> Result<Vec<Dispatch>> {
        let (LinearDims { n, h, v }, b) = (call.dims, call.b);
        let r0 = c * call.window_rows;
        let rows = call.window_rows.min(n - r0);
        let hidden = call.view(b.hidden, h, r0 * h);
        let mut list = Vec::new();
        if v == 0 {
            // No logits: the rows passes are the loss's alone, ∂L/∂h zeros.
            list.extend(rows_passes);
            if let (Some(gh), false) = (b.grad_hidden, call.partial) {
                let a = Operand::plain(MatrixView::dense(call.placeholder, Precision::F32, 0));
                let w = Operand::plain(call.view(call.weight, h, 0));
                list.extend(self.linear_product(call, (rows, h, 0), a, w, (gh, r0 * h), false)?);
            }
            return Ok(list);
        }
        let weight = call.view(b.weight, h, 0);
        // logits = h·Wᵀ + b into the window.
        let logits = ProductBuffers {
            a: hidden,
            b: weight,
            bias: b.bias,
            out: call.window,
            out_offset: 0,
            out_stride: v as u64,
            accumulate: false,
        };
        let opts = MatmulOptions {
            transpose_b: true,
            kernel: call.opts.product_kernel,
            split_k: call.opts.split_k,
            ..Default::default()
        };
        let dims = MatmulDims {
            m: rows,
            n: v,
            k: h,
        };
        list.extend(self.prepare_matmul(dims, &opts, &logits, (&call.rule, None))?);
        list.extend(rows_passes);
        if call.partial {
            return Ok(list);
        }
        if let Some(gh) = b.grad_hidden {
            let (g, w) = (Operand::plain(call.logits()), Operand::plain(weight));
            list.extend(self.linear_product(call, (rows, h, v), g, w, (gh, r0 * h), false)?);
        }
        if let Some(gw) = b.grad_weight {
            let (gt, hidden) = (Operand::transposed(call.logits()), Operand::plain(hidden));
            list.extend(self.linear_product(call, (v, h, rows), gt, hidden, (gw, 0), c > 0)?);
        }
        if let Some(gb) = b.grad_bias {
            list.extend(self.prepare_column_sums(rows, v, &call.logits(), gb, 0, c > 0)?);
        }
        Ok(list)
    }

    /// No rows: no chunk wrote the gradients of W and b, which are zero: a
    /// product over k = 0 and a sum over no rows write them.
    fn linear_without_rows(&self, call: &LinearCall<'_>) -> Result<Vec<Dispatch>> {
        let (LinearDims { h, v, .. }, b) = (call.dims, call.b);
        let mut list = Vec::new();
        if let Some(gw) = b.grad_weight {
            let gt = Operand::transposed(call.logits());
            let hidden = Operand::plain(call.view(b.hidden, h, 0));
            list.extend(self.linear_product(call, (v, h, 0), gt, hidden, (gw, 0), false)?);
        }
        if let Some(gb) = b.grad_bias {
            list.extend(self.prepare_column_sums(0, v, &call.logits(), gb, 0, false)?);
        }
        Ok(list)
    }

    /// The kernels of a call's logits product (h and W) and of its
    /// gradient products (the f32 window and W or h).
    fn linear_shapes(&self, call: &LinearCall<'_>) -> Result<[ProductShape; 2]> {
        let (kernel, p) = (call.opts.product_kernel, call.b.precision);
        Ok([
            self.product_shape(kernel, (p, p))?,
            self.product_shape(kernel, (Precision::F32, p))?,
        ])
    }

    /// `out[offset..] (+)= a·b`, `(m, n, k)`, rows of `n` apart.
    fn linear_product(
        &self,
        call: &LinearCall<'_>,
        (m, n, k): (usize, usize, usize),
        a: Operand<'_>,
        b: Operand<'_>,
        (out, offset): (wgpu::BufferSlice<'_>, usize),
        accumulate: bool,
    ) -> Result<Vec<Dispatch>> {
        let opts = MatmulOptions {
            transpose_a: a.transposed,
            transpose_b: b.transposed,
            kernel: call.opts.product_kernel,
            split_k: call.opts.split_k,
        };
        let buffers = ProductBuffers {
            a: a.view,
            b: b.view,
            bias: None,
            out,
            out_offset: offset as u64,
            out_stride: n as u64,
            accumulate,
        };
        let filter = call.filter.as_ref();
        self.prepare_matmul(
            MatmulDims { m, n, k },
            &opts,
            &buffers,
            (&call.rule, filter),
        )
    }
}

/// What a fused call's chunks are made from.
struct LinearCall<'a> {
    /// The shard's (or the whole call's) dimensions.
    dims: LinearDims,
    opts: &'a LinearCrossEntropyOptions,
    b: &'a LinearBuffers<'a>,
    /// The context's window of logits.
    window: wgpu::BufferSlice<'a>,
    /// `W`, or a placeholder for an empty shard.
    weight: wgpu::BufferSlice<'a>,
    placeholder: wgpu::BufferSlice<'a>,
    window_rows: usize,
    /// How the products cut k.
    rule: SplitRule,
    /// A shard's partial: no gradient products.
    partial: bool,
    /// The gradient products' filter (`filter_eps`).
    filter: Option<GradFilter<'a>>,
}

impl<'a> LinearCall<'a> {
    /// The call's byte count, its products run by `entry`, its window's
    /// cross-entropy counted by `ce` over `layout`.
    fn count(
        &self,
        shapes: [ProductShape; 2],
        ce: &'a CallCount,
        layout: &'a Layout,
    ) -> LinearCount<'a> {
        let b = self.b;
        LinearCount {
            dims: self.dims,
            window_rows: self.window_rows,
            elem: b.precision.size(),
            shapes,
            rule: self.rule,
            bias: b.bias.is_some(),
            grads: [b.grad_hidden, b.grad_weight, b.grad_bias].map(|g| g.is_some()),
            partial: self.partial,
            ce,
            layout,
        }
    }

    /// A dense view of `buffer` in the options' precision, rows `stride`
    /// apart, from element `offset`.
    fn view(&self, buffer: wgpu::BufferSlice<'a>, stride: usize, offset: usize) -> MatrixView<'a> {
        MatrixView {
            offset: offset as u64,
            ..MatrixView::dense(buffer, self.b.precision, stride)
        }
    }

    /// The window of logits (then of `g`), f32, rows `v` apart.
    fn logits(&self) -> MatrixView<'a> {
        MatrixView::dense(self.window, Precision::F32, self.dims.v)
    }
}

/// The gradient products' filter of `opts.filter_eps`, its threshold
/// scaled by the denominator in cross-entropy's call statistics `stats`.
fn grad_filter<'a>(
    opts: &LinearCrossEntropyOptions,
    stats: Option<&'a wgpu::Buffer>,
) -> Option<GradFilter<'a>> {
    let (eps, aux) = opts.filter_eps.zip(stats)?;
    Some(GradFilter {
        eps: eps as f32,
        stats: aux.slice(..),
        mean: opts.loss.reduction == Reduction::Mean,
    })
}

/// Cross-entropy's buffers over the window of f32 logits, its gradient
/// written in place there, with the fused call's targets and outputs.
fn window_buffers<'a>(
    b: &LinearBuffers<'a>,
    window: wgpu::BufferSlice<'a>,
) -> CrossEntropyBuffers<'a> {
    CrossEntropyBuffers {
        logits: window,
        targets: b.targets,
        weights: b.weights,
        sample_weights: None,
        loss: b.loss,
        grad: None,
        status: b.status,
        lse: b.lse,
        correct: b.correct,
        argmax: b.argmax,
        entropy: b.entropy,
        in_place: true,
        precision: Precision::F32,
    }
}
