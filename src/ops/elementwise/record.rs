//! Recording an elementwise loss into the caller's encoder: the plan, the
//! uniforms, pipelines and bind groups of each chunk, the reduce.

use bytemuck::{Pod, Zeroable};

use super::buffers::ElementwiseBuffers;
use super::options::{ElementwiseLoss, ElementwiseOptions, WeightShape};
use super::pipelines::ElementwiseVariant;
use super::plan::{ElementwisePlan, BLOCK};
use super::traffic::ElementwiseTraffic;
use super::validate::{self, Elements};
use crate::core::binding::written_apart;
use crate::core::encode::{Dispatch, Dispatches, Timing};
use crate::core::scratch::Dummies;
use crate::core::status::STATUS_SIZE;
use crate::core::Context;
use crate::core::Reduction;
use crate::error::{GpuScope, Result};

/// The binding slots of `shaders/elementwise/loss.wgsl`.
pub(crate) mod slot {
    pub const PARAMS: u32 = 0;
    pub const INPUT: u32 = 1;
    pub const TARGET: u32 = 2;
    pub const WEIGHT: u32 = 3;
    pub const POS_WEIGHT: u32 = 4;
    pub const GRAD: u32 = 5;
    pub const AUX: u32 = 6;
    pub const LOSS: u32 = 7;
    pub const STATUS: u32 = 8;
    /// The vec4 views of `elementwise4`: the scalar slot plus 10.
    pub const VEC4: u32 = 10;
}

/// Mirrors `Params` in `shaders/elementwise/loss.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct ElementwiseParams {
    n: u32,
    first: u32,
    first_block: u32,
    blocks: u32,
    last: u32,
    phase: u32,
    reduction: u32,
    _pad: u32,
    param: f32,
    denom: f32,
    nan: f32,
    grad_scale: f32,
}

/// **Recording API** of the elementwise losses: your buffers and encoder.
impl Context {
    /// Records an elementwise loss (see [`ElementwiseLoss`] for the
    /// formulas) over tensors of shape `dims` into `encoder`: the loss into
    /// `buffers.loss`, the gradient into `buffers.grad` if given, and
    /// `Bce`'s check of its input into `buffers.status` (which every loss
    /// writes: zeros where nothing was found). Nothing is
    /// submitted. Tensors past the device's largest binding are split into
    /// chunks; the sum is reduced in a fixed order (no atomics), so the same
    /// inputs give the same bits. Buffers and encoder from this context's
    /// device.
    ///
    /// # Errors
    /// As [`Context::elementwise_loss`](crate::Context::elementwise_loss)
    /// for the shape and the options; [`Error::BadOffset`](crate::Error::BadOffset) for a region at an
    /// offset the device cannot bind; [`Error::BadBuffer`](crate::Error::BadBuffer) for a buffer
    /// without `STORAGE` usage or too small, a written buffer also passed
    /// in another role;
    /// [`Error::Gpu`](crate::Error::Gpu), [`Error::DeviceLost`](crate::Error::DeviceLost). A `Bce` input outside [0, 1]
    /// is reported in the status buffer, not here.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use wgpu::util::DeviceExt;
    /// let ctx = xent::Context::from_env()?;
    /// let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    /// let init = |v: &[f32]| ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
    ///     label: None, contents: bytemuck::cast_slice(v), usage });
    /// let (x, y, loss, grad) = (init(&[0.5, 2.0]), init(&[0.0, 0.0]), init(&[0.0]), init(&[0.0, 0.0]));
    /// let status = init(&[0.0; 4]);
    /// let buffers = xent::ElementwiseBuffers::new(x.slice(..), y.slice(..), loss.slice(..),
    ///     Some(grad.slice(..)), status.slice(..));
    /// let mut encoder = ctx.device().create_command_encoder(&Default::default());
    /// let opts = xent::ElementwiseOptions::new(xent::ElementwiseLoss::Mse);
    /// ctx.record_elementwise_loss(&mut encoder, &[2], &opts, &buffers)?;
    /// ctx.queue().submit([encoder.finish()]);
    /// # Ok(()) }
    /// ```
    pub fn record_elementwise_loss(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        dims: &[usize],
        options: &ElementwiseOptions,
        buffers: &ElementwiseBuffers<'_>,
    ) -> Result<()> {
        let call = self.prepare_elementwise(dims, options, buffers)?;
        self.encode(encoder, &call, Timing::Off)
    }

    /// Validation, the plan and every dispatch of an elementwise call, ready
    /// to encode (the benchmarks encode the same list with timestamps).
    pub(crate) fn prepare_elementwise(
        &self,
        dims: &[usize],
        options: &ElementwiseOptions,
        b: &ElementwiseBuffers<'_>,
    ) -> Result<Dispatches> {
        let (loss, reduction) = (options.loss, options.reduction);
        // Popped before anything is recorded, as for cross-entropy.
        let scope = GpuScope::push(&self.device);
        let weight_len = |shape: WeightShape, e: &Elements| match shape {
            WeightShape::Full => e.len,
            WeightShape::LastAxis => e.last,
        };
        let e = Elements::new(dims)?;
        let (shape, weight_shape) = validate::call(
            loss,
            dims,
            e.len,
            e.len,
            b.weight.map(|(_, s)| weight_len(s, &e)),
            b.pos_weight.map(|_| e.last),
        )?;
        self.check_elementwise_buffers(&shape, b, reduction)?;
        let plan = self.plan_elementwise(&shape, weight_shape, b.pos_weight.is_some())?;
        let base = base_params(loss, &shape, &plan, reduction);
        // Nothing to reduce or check (`none` of a loss that takes any
        // value): the reduce reads no block and only clears the status.
        let nothing = reduction == Reduction::None && loss != ElementwiseLoss::Bce;
        let (first, count) = if nothing { (0, 0) } else { plan.reduced() };
        let reduced = ElementwiseParams {
            first_block: first as u32,
            blocks: count as u32,
            ..base
        };
        // First, as it finds a lost device (Error::DeviceLost).
        let reduce_uniform =
            self.uniform("xent elementwise params", bytemuck::bytes_of(&reduced))?;
        let (aux, dummies) = {
            let mut s = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
            (
                s.aux(&self.device, plan.scratch_bytes())?,
                s.dummies.clone(),
            )
        };
        let call = ElementwiseCall {
            b,
            reduction,
            reduces: !nothing,
            variant: ElementwiseVariant {
                loss: loss.code(),
                has_weight: b.weight.is_some(),
                weight_last: weight_shape == Some(WeightShape::LastAxis),
                has_pos_weight: b.pos_weight.is_some(),
                write_grad: b.grad.is_some(),
                precision: b.precision,
            },
            shape,
            weight_shape,
            plan,
            base,
            aux,
            dummies,
        };
        let mut list: Vec<Dispatch> = Vec::with_capacity(call.plan.chunks.len() + 2);
        for &chunk in &call.plan.chunks {
            list.push(self.elementwise_chunk(&call, chunk)?);
        }
        list.extend(self.elementwise_reduction(&call, &reduce_uniform)?);
        scope.pop("preparing the elementwise loss")?;
        let traffic = ElementwiseTraffic::of(&call.shape, b, call.weight_shape, reduction);
        let traffic = Some(traffic.count(&call.plan, call.reduces));
        Ok(Dispatches::new("the elementwise loss", list, traffic))
    }

    /// The loss kernel over elements `[e0, e1)`, one binding's worth.
    fn elementwise_chunk(
        &self,
        call: &ElementwiseCall<'_>,
        (e0, e1): (usize, usize),
    ) -> Result<Dispatch> {
        let plan = &call.plan;
        let params = ElementwiseParams {
            n: (e1 - e0) as u32,
            first: e0 as u32,
            first_block: (e0 / BLOCK) as u32,
            phase: (e0 % call.shape.last.max(1)) as u32,
            ..call.base
        };
        let uniform = self.uniform("xent elementwise params", bytemuck::bytes_of(&params))?;
        let r = self.chunk_regions(call, (e0, e1));
        let pipeline = self.elementwise_pipeline(call.variant, plan.entry())?;
        let params_range = (0, std::mem::size_of::<ElementwiseParams>() as u64);
        let aux_range = self.whole_range(call.aux.slice(..), 4);
        // Each kernel's bindings: the scalar slots, or their vec4 views.
        let mut entries = vec![
            (slot::PARAMS, &uniform, params_range),
            (slot::WEIGHT, &r.weight.0, r.weight.1),
            (slot::POS_WEIGHT, &r.pos_weight.0, r.pos_weight.1),
            (slot::AUX, &call.aux, aux_range),
        ];
        let vec4 = if plan.vec4 { slot::VEC4 } else { 0 };
        entries.extend([
            (slot::INPUT + vec4, &r.input.0, r.input.1),
            (slot::TARGET + vec4, &r.target.0, r.target.1),
            (slot::GRAD + vec4, &r.grad.0, r.grad.1),
            (slot::LOSS + vec4, &r.loss.0, r.loss.1),
        ]);
        if plan.vec4 {
            entries.push((slot::WEIGHT + slot::VEC4, &r.weight4.0, r.weight4.1));
        }
        let group = self.bind_ranges(&pipeline, &entries);
        let grid = self.grid((e1 - e0).div_ceil(BLOCK))?;
        Ok((plan.entry(), pipeline, group, grid))
    }

    /// What a chunk of elements `e0..e1` binds of each buffer: the f32
    /// ranges (weights, losses) and the storage's (input, target, gradient:
    /// whole words, chunks starting at whole blocks), regions bound whole,
    /// and placeholders for the buffers not given.
    fn chunk_regions(&self, call: &ElementwiseCall<'_>, (e0, e1): (usize, usize)) -> ChunkRegions {
        let (b, d) = (call.b, &call.dummies);
        let range = (e0 as u64 * 4, (e1 - e0) as u64 * 4);
        let elem = b.precision.size();
        let stored = (
            e0 as u64 * elem,
            ((e1 - e0) as u64 * elem).next_multiple_of(4),
        );
        // A range of a caller's region, and a region bound whole.
        let part = |r: wgpu::BufferSlice<'_>, (offset, size): (u64, u64)| {
            (r.buffer().clone(), (r.offset() + offset, size))
        };
        let whole = |r: wgpu::BufferSlice<'_>| (r.buffer().clone(), self.whole_range(r, 4));
        let dummy = |buffer: &wgpu::Buffer| (buffer.clone(), (0, 16));
        // As validated: a last-axis weight as long as the input is its shape's.
        let weight_given = b.weight.map(|(w, _)| w).zip(call.weight_shape);
        ChunkRegions {
            weight: match weight_given {
                Some((w, WeightShape::Full)) => part(w, range),
                Some((w, WeightShape::LastAxis)) => whole(w),
                None => dummy(&d.read),
            },
            weight4: match weight_given {
                Some((w, WeightShape::Full)) => part(w, range),
                _ => dummy(&d.read),
            },
            pos_weight: b.pos_weight.map_or_else(|| dummy(&d.read), whole),
            grad: b.grad.map_or_else(|| dummy(&d.grad), |g| part(g, stored)),
            loss: match call.reduction {
                Reduction::None => part(b.loss, range),
                _ => dummy(&d.loss),
            },
            input: part(b.input, stored),
            target: part(b.target, stored),
        }
    }

    /// The blocks' statistics folded and reduced (and `Bce`'s input check
    /// reported), unless nothing is reduced.
    fn elementwise_reduction(
        &self,
        call: &ElementwiseCall<'_>,
        reduce_uniform: &wgpu::Buffer,
    ) -> Result<Vec<Dispatch>> {
        let (b, d) = (call.b, &call.dummies);
        let k = |entry| self.elementwise_pipeline(call.variant, entry);
        let mut list = Vec::new();
        if call.plan.folds > 0 && call.reduces {
            let pipeline = k("elementwise_fold")?;
            let uniform =
                self.uniform("xent elementwise params", bytemuck::bytes_of(&call.base))?;
            let group = self.bind(
                &pipeline,
                &[
                    (slot::PARAMS, uniform.slice(..)),
                    (slot::AUX, call.aux.slice(..)),
                ],
            );
            list.push((
                "elementwise_fold",
                pipeline,
                group,
                self.grid(call.plan.folds)?,
            ));
        }
        let pipeline = k("elementwise_reduce")?;
        let loss_buf = match call.reduction {
            Reduction::None => d.loss.slice(..),
            _ => b.loss,
        };
        // An empty input still needs a binding; the reduce reads input and
        // target only at a bad position.
        let (input, target) = match call.shape.len {
            0 => (d.read.slice(..), d.read.slice(..)),
            _ => (b.input, b.target),
        };
        let entries = [
            (slot::PARAMS, reduce_uniform.slice(..)),
            (slot::INPUT, input),
            (slot::TARGET, target),
            (slot::AUX, call.aux.slice(..)),
            (slot::LOSS, loss_buf),
            (slot::STATUS, b.status),
        ];
        let group = self.bind(&pipeline, &entries);
        list.push(("elementwise_reduce", pipeline, group, (1, 1)));
        Ok(list)
    }

    /// Usage and sizes of the caller's buffers, and no written buffer in two roles.
    fn check_elementwise_buffers(
        &self,
        shape: &Elements,
        b: &ElementwiseBuffers<'_>,
        reduction: Reduction,
    ) -> Result<()> {
        let n = shape.len as u64;
        // The storage's tensors in whole words.
        let stored = (n * b.precision.size()).next_multiple_of(4);
        self.check_bytes("input", b.input, stored)?;
        self.check_bytes("target", b.target, stored)?;
        if let Some((w, s)) = b.weight {
            let len = match s {
                WeightShape::Full => n,
                WeightShape::LastAxis => shape.last as u64,
            };
            self.check_size("weight", w, len)?;
        }
        if let Some(pw) = b.pos_weight {
            self.check_size("pos_weight", pw, shape.last as u64)?;
        }
        let loss_len = if reduction == Reduction::None { n } else { 1 };
        self.check_size("loss", b.loss, loss_len)?;
        if let Some(g) = b.grad {
            self.check_bytes("grad", g, stored)?;
        }
        self.check_bytes("status", b.status, STATUS_SIZE)?;
        let mut all: Vec<(&'static str, wgpu::BufferSlice<'_>)> =
            vec![("input", b.input), ("target", b.target)];
        all.extend(b.weight.map(|(w, _)| ("weight", w)));
        all.extend(b.pos_weight.map(|w| ("pos_weight", w)));
        let written: Vec<(&'static str, wgpu::BufferSlice<'_>)> = [
            Some(("loss", b.loss)),
            b.grad.map(|g| ("grad", g)),
            Some(("status", b.status)),
        ]
        .into_iter()
        .flatten()
        .collect();
        written_apart(&written, &all)
    }
}

/// What an elementwise call's dispatches are made from.
struct ElementwiseCall<'a> {
    b: &'a ElementwiseBuffers<'a>,
    reduction: Reduction,
    /// Whether the reduce reads the blocks' statistics (a loss to reduce,
    /// or bce's input check); else it only clears the status.
    reduces: bool,
    variant: ElementwiseVariant,
    shape: Elements,
    weight_shape: Option<WeightShape>,
    plan: ElementwisePlan,
    /// The uniform every chunk's copy starts from.
    base: ElementwiseParams,
    aux: wgpu::Buffer,
    dummies: Dummies,
}

/// The uniform of a call, before a chunk sets its elements.
fn base_params(
    loss: ElementwiseLoss,
    shape: &Elements,
    plan: &ElementwisePlan,
    reduction: Reduction,
) -> ElementwiseParams {
    let denom = if reduction == Reduction::Mean {
        shape.len as f64
    } else {
        1.0
    };
    ElementwiseParams {
        n: 0,
        first: 0,
        first_block: 0,
        blocks: plan.blocks as u32,
        last: shape.last as u32,
        phase: 0,
        reduction: reduction.code(),
        _pad: 0,
        param: loss.param(),
        denom: denom as f32,
        nan: f32::NAN,
        grad_scale: (1.0 / denom) as f32,
    }
}

/// A buffer and the (offset, size) of it a binding covers.
type Bound = (wgpu::Buffer, (u64, u64));

/// What one chunk's dispatch binds of each buffer.
struct ChunkRegions {
    weight: Bound,
    /// The vec4 view of a full-shape weight.
    weight4: Bound,
    pos_weight: Bound,
    grad: Bound,
    loss: Bound,
    input: Bound,
    target: Bound,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::binding::wgsl::{wgsl_fields, wgsl_struct, wgsl_u32};
    use crate::core::Precision;
    use crate::ops::elementwise::pipelines::source as elementwise_source;
    use crate::ops::elementwise::plan::{ELEMENTWISE_WG, STATS_WORDS};

    #[test]
    fn the_rust_mirror_of_the_uniform_matches_the_wgsl() {
        let (size, members) = wgsl_struct(&elementwise_source(Precision::F32), "Params");
        assert_eq!(size, std::mem::size_of::<ElementwiseParams>());
        assert_eq!(
            members,
            wgsl_fields!(ElementwiseParams: n, first, first_block, blocks, last, phase, reduction,
                _pad, param, denom, nan, grad_scale)
        );
    }

    #[test]
    fn the_codes_and_slots_shared_with_the_wgsl_agree() {
        let src = elementwise_source(Precision::F32);
        let names = ["bce_with_logits", "bce", "mse", "l1", "smooth_l1", "huber"];
        for (loss, name) in ElementwiseLoss::ALL.into_iter().zip(names) {
            let constant = format!("LOSS_{}", name.to_uppercase());
            assert_eq!(wgsl_u32(&src, &constant), loss.code(), "{constant}");
        }
        assert_eq!(wgsl_u32(&src, "REDUCTION_NONE"), Reduction::None.code());
        assert_eq!(wgsl_u32(&src, "REDUCTION_MEAN"), Reduction::Mean.code());
        assert_eq!(wgsl_u32(&src, "BLOCK") as usize, BLOCK);
        assert_eq!(
            wgsl_u32(&src, "FOLD") as usize,
            crate::ops::elementwise::plan::FOLD
        );
        assert_eq!(wgsl_u32(&src, "STATS_WG") as usize, ELEMENTWISE_WG);
        assert_eq!(wgsl_u32(&src, "STATS_WORDS") as usize, STATS_WORDS);
        use wgpu::naga;
        let module = naga::front::wgsl::parse_str(&src).unwrap();
        let mut bound: Vec<(u32, String)> = module
            .global_variables
            .iter()
            .filter_map(|(_, v)| Some((v.binding.as_ref()?.binding, v.name.clone()?)))
            .collect();
        bound.sort();
        let scalar = [
            (slot::PARAMS, "p"),
            (slot::INPUT, "input"),
            (slot::TARGET, "targets"),
            (slot::WEIGHT, "weight"),
            (slot::POS_WEIGHT, "pos_weight"),
            (slot::GRAD, "grad"),
            (slot::AUX, "aux"),
            (slot::LOSS, "loss_out"),
            (slot::STATUS, "status"),
        ];
        let vec4 = [
            (slot::INPUT + slot::VEC4, "input4"),
            (slot::TARGET + slot::VEC4, "targets4"),
            (slot::WEIGHT + slot::VEC4, "weight4"),
            (slot::GRAD + slot::VEC4, "grad4"),
            (slot::LOSS + slot::VEC4, "loss4"),
        ];
        let want: Vec<(u32, String)> = scalar
            .into_iter()
            .chain(vec4)
            .map(|(n, s)| (n, s.to_string()))
            .collect();
        assert_eq!(bound, want);
    }
}
