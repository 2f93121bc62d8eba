//! Recording a cross-entropy call into the caller's encoder: its uniform,
//! its pipelines and bind groups, and its dispatches in order.

use super::buffers::CrossEntropyBuffers;
use super::check::Checked;
use super::dispatch::{CallState, RowsPass};
use super::options::{CrossEntropyOptions, EmptyMean, Strategy};
use super::params::CrossEntropyParams;
use super::pipelines::CrossEntropyVariant;
use super::plan::{CallPlan, PlanInputs};
use super::shard::{ShardPass, ShardStage};
use super::traffic::CallCount;
use crate::core::device::DeviceClass;
use crate::core::encode::{Dispatch, Dispatches, Timing};
use crate::core::shape::Layout;
use crate::core::traffic::Traffic;
use crate::core::{Context, Reduction};
use crate::error::{GpuScope, Result};

/// **Recording API** of cross-entropy: your buffers and encoder.
impl Context {
    /// Records the fused cross-entropy forward and backward into `encoder`.
    ///
    /// `dims` is the logits' shape: `(C)`, `(N, C)` or `(N, C, d1, …, dK)`,
    /// class axis 1. One compute pass is recorded: target statistics (the
    /// mean's denominator and the class-index range check, into
    /// `buffers.status`; two dispatches past 8 192 rows, per block of rows
    /// and then their merge), the per-row loss and gradient (one dispatch per
    /// chunk of a tensor larger than one binding; three for few long rows,
    /// split over several workgroups each; two for long rows of C % 4 ≠ 0
    /// with a gradient, the second writing the vec4s that neighbouring rows
    /// share), and the fixed-order reduction of the loss and of the argmax
    /// count (the loss in tiles of 64 rows, which the kernels of short rows
    /// sum themselves and a dispatch of their own sums for the others, then
    /// over the same blocks; none for `Reduction::None` without a count).
    /// Nothing is submitted; results are in the caller's buffers once the
    /// caller submits.
    ///
    /// The formulas of every option are on [`CrossEntropyOptions`]; the
    /// gradient, the log-sum-exp and the argmax count are written when their
    /// buffers are given (the host API's [`Returns`](crate::Returns) asks
    /// for them there). Probability targets are not
    /// range-checked on the GPU: the host API checks them on upload.
    ///
    /// The results depend on the shapes, options, precision and adapter
    /// only, never on how far the buffers reach past their tensors. Speed:
    /// long rows whose class count is not a multiple of 4 read through vec4
    /// views when the logits buffer (and `buffers.grad`, if given) reaches
    /// the vec4 holding the tensor's last element (its size rounded up to
    /// 16 bytes in f32, 8 in f16 and bf16), through scalar views with the
    /// same bits otherwise. Bytes past the tensor keep their values.
    ///
    /// Out-of-range targets do not fault the device: their rows get NaN loss
    /// and gradient, and the status buffer names the first of them.
    ///
    /// **The buffers and the encoder must come from this context's device**
    /// ([`Context::device`](crate::Context::device)). A buffer of another device on the same
    /// `wgpu::Instance`, or a destroyed one, is an [`Error::Gpu`](crate::Error::Gpu), and then
    /// nothing is recorded into `encoder`. Two mistakes cannot be detected:
    /// a buffer of another `wgpu::Instance` (wgpu's ids are per instance, so
    /// it is silently bound as whichever buffer of this device has its id,
    /// or wgpu panics on an id unknown here; see [`CrossEntropyBuffers`]),
    /// and an encoder of another device (wgpu exposes no encoder's device
    /// and checks a pass when the encoder is finished): the call returns
    /// `Ok`, and wgpu reports the mismatch at the caller's
    /// `encoder.finish()`, to the encoder's device (a panic in wgpu's default
    /// handler unless an error scope or `on_uncaptured_error` takes it), and
    /// the submit fails.
    ///
    /// # Errors
    /// [`Error::InvalidShape`](crate::Error::InvalidShape), [`Error::InvalidOption`](crate::Error::InvalidOption);
    /// [`Error::Unsupported`](crate::Error::Unsupported) for a shape no strategy serves within the
    /// loop bound (more than ~268 M rows, class weights over more than ~1 M
    /// classes); [`Error::BadOffset`](crate::Error::BadOffset) for a region at an offset the device
    /// cannot bind; [`Error::BadBuffer`](crate::Error::BadBuffer) for a buffer too small for `dims`, without
    /// `STORAGE` usage, one whose part the shape needs is larger than the
    /// device binds (per-row buffers; larger buffers are bound only as far as
    /// the shape needs), or an output that aliases another buffer;
    /// [`Error::InvalidShape`](crate::Error::InvalidShape) when one `(C, d1…dK)` slice, or the per-row
    /// scratch, exceeds the device's largest binding; [`Error::Gpu`](crate::Error::Gpu) for what
    /// wgpu rejects (a buffer of another device, a destroyed buffer, out of
    /// memory), with wgpu's message; [`Error::DeviceLost`](crate::Error::DeviceLost) once the device is
    /// lost.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use wgpu::util::DeviceExt;
    /// let ctx = xent::Context::from_env()?;
    /// let dev = ctx.device();
    /// let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    /// let init = |contents: &[u8]| dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
    ///     label: None, contents, usage: storage });
    /// let logits = init(bytemuck::cast_slice(&[1.0f32, 2.0, 3.0, 0.0, 0.0, 0.0]));
    /// let targets = init(bytemuck::cast_slice(&[2i32, 0]));
    /// let empty = |size| dev.create_buffer(&wgpu::BufferDescriptor {
    ///     label: None, size, usage: storage, mapped_at_creation: false });
    /// let (loss, grad, status) = (empty(4), empty(24), empty(xent::STATUS_SIZE));
    /// let mut encoder = dev.create_command_encoder(&Default::default());
    /// let buffers = xent::CrossEntropyBuffers::new(
    ///     logits.slice(..), xent::TargetBuffer::ClassI32(targets.slice(..)), loss.slice(..), Some(grad.slice(..)), status.slice(..));
    /// ctx.record_cross_entropy(&mut encoder, &[2, 3], &Default::default(), &buffers)?;
    /// ctx.queue().submit([encoder.finish()]);
    /// # Ok(()) }
    /// ```
    pub fn record_cross_entropy(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        dims: &[usize],
        opts: &CrossEntropyOptions,
        buffers: &CrossEntropyBuffers<'_>,
    ) -> Result<()> {
        let call = self.prepare_cross_entropy(dims, opts, buffers)?;
        self.encode(encoder, &call, Timing::Off)
    }

    /// Validates a call of [`Context::record_cross_entropy`](crate::Context::record_cross_entropy),
    /// plans it and prepares its dispatches (its uniforms, pipelines and bind
    /// groups), recording nothing: [`Context::encode`] records them, as
    /// `record_cross_entropy` does, or between timestamps for `bench`.
    pub(crate) fn prepare_cross_entropy(
        &self,
        dims: &[usize],
        opts: &CrossEntropyOptions,
        buffers: &CrossEntropyBuffers<'_>,
    ) -> Result<Dispatches> {
        let phases = self.prepare_cross_entropy_phases(dims, opts, buffers, None, None)?;
        Ok(phases.flatten())
    }

    /// [`Context::prepare_cross_entropy`] in its three phases, for callers
    /// that interleave their own dispatches with the rows passes. With
    /// `window`, the input is not `buffers.logits` whole but a window of
    /// `window.rows` rows (of the outer axis) that the caller refills before
    /// each chunk's passes: `buffers.logits` is that window (in place, f32),
    /// and chunk `k` covers rows `[k·rows, (k+1)·rows)`.
    ///
    /// With `shard`, `dims` is the whole call's shape and the buffers hold
    /// the shard's range of classes (its input, gradient, class weights and
    /// probability targets): the passes are the shard's partial or finish
    /// (`shaders/cross_entropy/vocab.wgsl`) instead of the rows passes.
    pub(crate) fn prepare_cross_entropy_phases(
        &self,
        dims: &[usize],
        opts: &CrossEntropyOptions,
        buffers: &CrossEntropyBuffers<'_>,
        window: Option<RowWindow>,
        shard: Option<&ShardPass<'_>>,
    ) -> Result<Phases> {
        // Catches wgpu's errors on the objects made below (a buffer of
        // another device, a destroyed one); popped before anything is
        // recorded, so a failed call leaves the caller's encoder untouched.
        let scope = GpuScope::push(&self.device);
        let checked = self.check_cross_entropy(dims, opts, buffers, window, shard)?;
        let plan = self.plan_call(&checked, opts, buffers, shard)?;
        let layout = &checked.layout;
        let chunks = match window {
            Some(w) => (0..layout.outer)
                .step_by(w.rows)
                .map(|n0| (n0, (n0 + w.rows).min(layout.outer)))
                .collect(),
            None => plan.chunks.clone(),
        };
        let params = call_params(&checked, opts, &plan, shard);
        let variant = call_variant(&checked, opts, buffers, window, shard);
        // First, as it finds a lost device (Error::DeviceLost).
        let uniform = self.uniform("xent cross-entropy params", bytemuck::bytes_of(&params))?;
        let bound = self.bound_buffers(&checked, opts, buffers, &plan, shard)?;
        let whole = window.is_none() && shard.is_none();
        // On a GPU only: see loss_tiles.wgsl.
        let gpu = self.profile.class == DeviceClass::Gpu;
        let reduced = whole && gpu && opts.reduction != Reduction::None;
        let rows =
            RowsPass::new(&checked, buffers, plan.strategy).with_tiles(&checked, reduced, &chunks);
        // Counted whole for a call of its own and a shard's; a window's
        // pieces are counted between the fused linear call's products.
        let count = CallCount::of(&checked, opts, buffers, &plan, &rows, shard);
        let traffic = window.is_none().then(|| count.whole(&checked.layout));
        let state = CallState {
            checked,
            opts,
            b: buffers,
            shard,
            window,
            params,
            variant,
            uniform,
            bound,
            rows,
            chunked: chunks.len() != 1,
        };
        let chunk_passes = chunks
            .iter()
            .map(|&chunk| self.chunk_dispatches(&state, chunk))
            .collect::<Result<Vec<_>>>()?;
        if state.checked.partial {
            scope.pop("preparing a vocabulary shard's partial")?;
            return Ok(Phases {
                before: Vec::new(),
                chunks: chunk_passes,
                after: Vec::new(),
                traffic,
                count,
                layout: state.checked.layout.clone(),
            });
        }
        let (before, after) = self.stats_and_reduction(&state, plan.groups)?;
        scope.pop("preparing the cross-entropy passes")?;
        Ok(Phases {
            before,
            chunks: chunk_passes,
            after,
            traffic,
            count,
            layout: state.checked.layout,
        })
    }

    /// The plan of a checked call: a shard's passes walk spans of its
    /// classes (the split kernels'); an empty shard walks none, planned as
    /// one class.
    fn plan_call(
        &self,
        c: &Checked<'_>,
        opts: &CrossEntropyOptions,
        b: &CrossEntropyBuffers<'_>,
        shard: Option<&ShardPass<'_>>,
    ) -> Result<CallPlan> {
        let planned = match shard {
            Some(_) if c.layout.classes == 0 => c.layout.with_classes(1),
            _ => c.layout.clone(),
        };
        let inputs = PlanInputs {
            elem: c.elem,
            chunked_targets: c.chunked_targets,
            write_grad: b.grad.is_some() || b.in_place,
            weights: b.weights.is_some(),
            correct: c.correct,
            argmax: c.argmax,
            entropy: c.entropy,
            reduction: opts.reduction,
            strategy: match shard {
                Some(_) => Strategy::Split,
                None => opts.strategy,
            },
            vocab: shard.is_some(),
        };
        self.plan_cross_entropy(&planned, inputs)
    }
}

/// The uniform of a call (each chunk's copy moves its rows and offsets).
fn call_params(
    c: &Checked<'_>,
    opts: &CrossEntropyOptions,
    plan: &CallPlan,
    shard: Option<&ShardPass<'_>>,
) -> CrossEntropyParams {
    let layout = &c.layout;
    let rows = layout.rows() as u32;
    let splits = plan.strategy.splits();
    CrossEntropyParams {
        outer: layout.outer as u32,
        classes: layout.classes as u32,
        inner: layout.inner as u32,
        rows,
        ignore_index: opts.ignore_index as i32,
        reduction: opts.reduction.code(),
        smoothing: opts.label_smoothing as f32,
        nan: f32::NAN,
        z_loss: opts.z_loss as f32,
        empty_mean_zero: u32::from(opts.empty_mean == EmptyMean::Zero),
        row_offset: 0,
        row_end: rows,
        splits: splits as u32,
        span: match splits {
            0 => 0,
            splits => layout.classes.div_ceil(splits) as u32,
        },
        elem_offset: 0,
        target_delta: 0,
        flags: plan.flags as u32,
        argmax_at: plan.argmax_at as u32,
        groups: plan.groups as u32,
        partials: plan.partials as u32,
        softcap: opts.softcap.unwrap_or(0.0) as f32,
        all_classes: c.full.classes as u32,
        class_offset: shard.map_or(0, |s| s.range.start) as u32,
        shards: 0,
        temperature: opts.temperature as f32,
        entropy_at: plan.entropy_at as u32,
        tiles_at: plan.tiles_at as u32,
    }
}

/// The pipeline variant (override constants) of a call.
fn call_variant(
    c: &Checked<'_>,
    opts: &CrossEntropyOptions,
    b: &CrossEntropyBuffers<'_>,
    window: Option<RowWindow>,
    shard: Option<&ShardPass<'_>>,
) -> CrossEntropyVariant {
    CrossEntropyVariant {
        target_kind: c.target_kind,
        input_kind: opts.input.code(),
        has_weights: b.weights.is_some(),
        has_sample_weights: b.sample_weights.is_some(),
        smoothing: opts.label_smoothing != 0.0,
        z_loss: opts.z_loss != 0.0,
        softcap: opts.softcap.is_some(),
        temperature: opts.temperature != 1.0,
        write_grad: b.grad.is_some() || b.in_place,
        in_place: b.in_place,
        row_window: window.is_some(),
        sharded: matches!(shard, Some(s) if matches!(s.stage, ShardStage::Finish { .. })),
        precision: b.precision,
        write_lse: b.lse.is_some(),
        count_correct: c.correct,
        write_argmax: c.argmax,
        // A shard's partial records the entropy's sum for any finish.
        write_entropy: c.entropy || c.partial,
    }
}

/// A window of rows that holds a call's input a chunk at a time (see
/// [`Context::prepare_cross_entropy_phases`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowWindow {
    /// Rows of the outer axis the window holds.
    pub rows: usize,
}

/// A cross-entropy call's dispatches in three phases: the target
/// statistics, each chunk's rows passes, the reduction.
pub(crate) struct Phases {
    pub before: Vec<Dispatch>,
    pub chunks: Vec<Vec<Dispatch>>,
    pub after: Vec<Dispatch>,
    /// The bytes the passes move (a call's without a window).
    pub traffic: Option<Traffic>,
    /// How the phases are counted, piece by piece (a window's chunks).
    pub count: CallCount,
    /// The call's layout (a shard's: its range of classes).
    pub layout: Layout,
}

impl Phases {
    /// Every dispatch in order, as one call.
    pub(crate) fn flatten(self) -> Dispatches {
        let mut list = self.before;
        list.extend(self.chunks.into_iter().flatten());
        list.extend(self.after);
        Dispatches::new("the cross-entropy pass", list, self.traffic)
    }
}
