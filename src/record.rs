//! The GPU-resident API: record xent's passes into the caller's encoder.
//!
//! Nothing here submits or reads back: the caller's buffers go in, the
//! caller's encoder gets the passes, and the results stay on the GPU.

use bytemuck::{Pod, Zeroable};

use crate::gpu::{buffer_with, Context, CrossEntropyVariant};
use crate::error::{Error, GpuScope, Result};
use crate::options::{CrossEntropyOptions, EmptyMean, InputKind, Reduction};
use crate::shape::Layout;
use crate::validate;

/// Rows with at least this many classes get a workgroup each; shorter rows
/// (and every channel-first map) get an invocation each.
pub(crate) const WIDE_MIN_CLASSES: usize = 128;
/// Long rows (at least this many classes) that are too few to keep the device
/// busy are split over several workgroups each: fewer than
/// `SPLIT_ROWS_BELOW_GPU` rows on a GPU, fewer than `SPLIT_ROWS_BELOW_CPU` on
/// a software adapter (whose few threads a handful of rows already occupy,
/// and where the extra passes cost more than they give).
pub(crate) const SPLIT_MIN_CLASSES: usize = 16_384;
pub(crate) const SPLIT_ROWS_BELOW_GPU: usize = 64;
pub(crate) const SPLIT_ROWS_BELOW_CPU: usize = 4;
/// Classes per workgroup of a split row chosen for occupancy (before the
/// clamp to `OCCUPANCY_SPLITS`).
const SPLIT_SPAN: usize = 8192;
const OCCUPANCY_SPLITS: usize = 32;

/// The most loop iterations any one invocation of a kernel may run, all its
/// loops together. Mesa's software adapters (llvmpipe, lavapipe) end every
/// loop of a shader invocation after 65 535 iterations in all
/// (`LP_MAX_TGSI_LOOP_ITERATIONS`), silently; a quarter of that leaves room
/// for the loops a model here does not count exactly (the fixed trees of the
/// reductions). Every strategy's count is bounded by this on every device:
/// past it, rows are split over more invocations (`RowStrategy::Split`,
/// `SoftmaxStrategy::Split`), and what cannot be split is
/// [`Error::Unsupported`] before anything runs.
pub(crate) const LOOP_TRIPS_MAX: usize = 16_384;

/// Classes per block of the per-pixel kernels' loss sums (`SUM_BLOCK` in the shader).
const SUM_BLOCK: usize = 32;

/// Workgroup size of the per-invocation kernels (`*_narrow` in the shaders).
const NARROW_WG: usize = 64;

/// At most this many workgroups of the row reductions `target_partials` and
/// `loss_partials`; their merges (`STATS_WG` invocations) fold them in order.
const STATS_GROUPS_MAX: u64 = 256;
/// Rows per workgroup of those reductions, before the clamp to `STATS_GROUPS_MAX`.
const STATS_BLOCK_ROWS: u64 = 8192;
/// Invocations of the row reductions (`STATS_WG` in the shader).
const STATS_WG: u64 = 64;

/// Rows of at most this many quads (`Narrow4`) run `rows_narrow4_fixed`,
/// specialised for their class count, the row held in registers.
const FIXED_QUADS_MAX: usize = 16;
/// Maps of at most this many classes (`Pixels4`) run `rows_pixels4_fixed`.
const FIXED_CLASSES_MAX: usize = 32;
// Both kernels hold the row in `array<vec4<f32>, MAX_FIXED>` (32) in the shader.
const _: () = assert!(FIXED_QUADS_MAX <= 32 && FIXED_CLASSES_MAX <= 32);

/// Where `record_cross_entropy_timed` writes timestamps (for `bench`).
pub(crate) enum Timing<'q> {
    /// Nowhere.
    Off,
    /// At the start and end of the call's one compute pass.
    Whole(wgpu::ComputePassTimestampWrites<'q>),
    /// Each dispatch in a compute pass of its own, timed by queries `2i` and
    /// `2i + 1` of `set`; an error past `capacity` dispatches.
    PerDispatch {
        set: &'q wgpu::QuerySet,
        capacity: usize,
    },
}

/// One dispatch: its entry point, pipeline, bind group and grid.
type Pass = (
    &'static str,
    wgpu::ComputePipeline,
    wgpu::BindGroup,
    (u32, u32),
);

/// How the rows of one call are spread over invocations (see ARCHITECTURE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowStrategy {
    /// A workgroup per row, scalar access.
    Wide,
    /// An invocation per row, scalar access (any layout).
    Narrow,
    /// A workgroup per row, vec4 access (inner = 1, C % 4 = 0).
    Wide4,
    /// A workgroup per row, vec4 access to rows that start and end
    /// mid-vec4 (inner = 1, any C), then `mixed_seams` for the vec4s that
    /// two rows share.
    WideMixed,
    /// An invocation per row, vec4 access (inner = 1, C % 4 = 0).
    Narrow4,
    /// Four neighbouring pixels per invocation, vec4 access (inner % 4 = 0).
    Pixels4,
    /// Few long rows: `splits` workgroups per row over spans of classes,
    /// their (max, sum-exp) partials merged (inner = 1).
    Split {
        /// Workgroups per row.
        splits: usize,
    },
}

impl RowStrategy {
    /// The strategy for `layout` on a device whose wide kernels run `wide_wg`
    /// invocations per workgroup.
    /// `split_below`: rows fewer than this (of at least `SPLIT_MIN_CLASSES`
    /// classes) leave the device idle, so they are split.
    /// `mixed`: whether `rows_wide_mixed` may run (its buffers hold whole
    /// vec4s).
    /// A strategy whose invocations would loop more than [`LOOP_TRIPS_MAX`]
    /// times gives way to `Split` (any layout: its spans walk classes
    /// `inner` apart), with enough spans to stay under the bound.
    pub(crate) fn choose(
        layout: &Layout,
        split_below: usize,
        mixed: bool,
        wide_wg: usize,
    ) -> Result<Self> {
        let quads = layout.classes.is_multiple_of(4);
        let classes = layout.classes;
        let chosen =
            if layout.inner == 1 && layout.rows() < split_below && classes >= SPLIT_MIN_CLASSES {
                RowStrategy::Split {
                    splits: (classes / SPLIT_SPAN).clamp(2, OCCUPANCY_SPLITS),
                }
            } else {
                match (layout.inner, classes >= WIDE_MIN_CLASSES) {
                    (1, true) if quads => RowStrategy::Wide4,
                    (1, true) if mixed => RowStrategy::WideMixed,
                    (1, true) => RowStrategy::Wide,
                    (1, false) if quads => RowStrategy::Narrow4,
                    (inner, _) if inner.is_multiple_of(4) => RowStrategy::Pixels4,
                    _ => RowStrategy::Narrow,
                }
            };
        if chosen.loop_trips(classes, wide_wg) <= LOOP_TRIPS_MAX {
            return Ok(chosen);
        }
        // Spans of at most wide_wg * LOOP_TRIPS_MAX classes walk at most half
        // the bound (two classes per iteration), leaving the rest for the
        // merges over the row's spans.
        let needed = classes.div_ceil(wide_wg * LOOP_TRIPS_MAX);
        let occupancy = match chosen {
            RowStrategy::Split { splits } => splits,
            _ => 2,
        };
        let split = RowStrategy::Split {
            splits: needed.max(occupancy),
        };
        let trips = split.loop_trips(classes, wide_wg);
        if trips > LOOP_TRIPS_MAX {
            return Err(Error::Unsupported {
                what: "a row this long",
                reason: format!(
                    "{classes} classes need {trips} loop iterations per invocation even split \
                     over {} workgroups, more than the {LOOP_TRIPS_MAX} xent bounds every \
                     invocation to",
                    needed.max(occupancy)
                ),
            });
        }
        Ok(split)
    }

    /// The most loop iterations one invocation of this strategy's rows
    /// passes runs for rows of `classes` classes (an upper bound, counted
    /// from the kernels' loops; the fixed-class kernels loop over at most 32
    /// quads or classes five times).
    pub(crate) fn loop_trips(self, classes: usize, wide_wg: usize) -> usize {
        let tree = 2 * wide_wg.max(2).ilog2() as usize;
        // The two-stream walks take two elements (or vec4s) per iteration.
        let walk = |elements: usize| elements.div_ceil(2).div_ceil(wide_wg);
        match self {
            RowStrategy::Wide => 2 * walk(classes) + tree,
            // Plus the up to 3 + 3 elements in shared vec4s, outside any loop.
            RowStrategy::Wide4 | RowStrategy::WideMixed => 2 * walk(classes / 4) + tree,
            // Pass 1 four classes at a time and the rest one by one; pass 2
            // one by one, in blocks of SUM_BLOCK.
            RowStrategy::Narrow => classes / 4 + 3 + classes + classes.div_ceil(SUM_BLOCK),
            RowStrategy::Narrow4 if classes / 4 <= FIXED_QUADS_MAX => 5 * FIXED_QUADS_MAX,
            RowStrategy::Narrow4 => 2 * (classes / 4),
            RowStrategy::Pixels4 if classes <= FIXED_CLASSES_MAX => 5 * FIXED_CLASSES_MAX,
            RowStrategy::Pixels4 => 2 * classes + classes.div_ceil(SUM_BLOCK),
            RowStrategy::Split { splits } => {
                let span = classes.div_ceil(splits);
                // split_rows merges the row's partials, then walks its span;
                // split_finish merges them again and adds two sums over them.
                (splits + walk(span) + tree).max(3 * splits)
            }
        }
    }

    fn is_vec4(self) -> bool {
        matches!(
            self,
            RowStrategy::Wide4 | RowStrategy::Narrow4 | RowStrategy::Pixels4
        )
    }

    /// Workgroups to dispatch for `layout`'s rows.
    fn workgroups(self, layout: &Layout) -> usize {
        match self {
            RowStrategy::Wide | RowStrategy::Wide4 | RowStrategy::WideMixed => layout.rows(),
            RowStrategy::Narrow | RowStrategy::Narrow4 => layout.rows().div_ceil(NARROW_WG),
            RowStrategy::Pixels4 => (layout.rows() / 4).div_ceil(NARROW_WG),
            RowStrategy::Split { splits } => layout.rows() * splits,
        }
    }
}

/// What [`Context::plan_cross_entropy`] needs to know of a call's buffers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlanInputs {
    /// Bytes per input element (4, or 2 for f16).
    pub elem: u64,
    /// Probability targets: bound a chunk at a time like the input.
    pub chunked_targets: bool,
    /// Whether the buffers hold whole vec4s (`rows_wide_mixed` may run).
    pub mixed: bool,
    pub write_grad: bool,
    pub weights: bool,
    pub correct: bool,
    pub reduction: Reduction,
}

/// A cross-entropy call's strategy, chunks and scratch layout.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CallPlan {
    pub strategy: RowStrategy,
    /// Ranges `[n0, n1)` of the outer axis, one binding each.
    pub chunks: Vec<(usize, usize)>,
    /// Workgroups per row of split rows (0 otherwise).
    pub splits: u64,
    /// Words of per-row argmax flags in `aux`.
    pub flags: u64,
    /// Where the row reductions' block partials start in `aux` (words).
    pub partials: u64,
    /// Workgroups (blocks of rows) of the row reductions.
    pub groups: u64,
    pub aux_bytes: u64,
    pub row_loss_bytes: u64,
}

/// Size in bytes of a status buffer: see [`Status`].
pub const STATUS_SIZE: u64 = 16;

/// The targets buffer of a [`Context::record_cross_entropy`] call, with its element type.
#[derive(Debug, Clone, Copy)]
pub enum TargetBuffer<'a> {
    /// i32 class indices, one per row (`layout.rows()` elements).
    ClassI32(&'a wgpu::Buffer),
    /// u8 class indices, one byte per row, packed little-endian four to a
    /// 32-bit word (a `&[u8]` uploaded as it is, padded to 4 bytes).
    ClassU8(&'a wgpu::Buffer),
    /// f32 probabilities with the input's shape (`layout.len()` elements).
    Probs(&'a wgpu::Buffer),
}

/// The buffers of one [`Context::record_cross_entropy`] call, all the caller's.
///
/// Every buffer needs `STORAGE` usage; sizes are in elements of 4 bytes.
///
/// **Every buffer must come from the context's device**
/// ([`Context::device`]). A buffer of another device on the same
/// `wgpu::Instance`, or a destroyed one, is an [`Error::Gpu`] from the
/// recording call. A buffer of another `wgpu::Instance` cannot be detected:
/// wgpu's ids are per instance, so wgpu silently binds whichever buffer of
/// the context's device has the same id (wrong results, no error; never
/// this buffer), or panics on an id the context's instance never issued.
/// Each [`headless_device`](crate::headless_device) call and each
/// [`Context::from_env`] makes a new instance: create the buffers with
/// `ctx.device()`.
#[derive(Debug, Clone, Copy)]
pub struct CrossEntropyBuffers<'a> {
    /// f32 input (logits, log-probabilities or probabilities, per
    /// [`CrossEntropyOptions::input`]), `layout.len()` elements, in the input's layout.
    pub logits: &'a wgpu::Buffer,
    /// The targets.
    pub targets: TargetBuffer<'a>,
    /// f32 class weights, C elements; `None` for all ones.
    pub weights: Option<&'a wgpu::Buffer>,
    /// f32 sample weights, one per row; `None` for all ones.
    pub sample_weights: Option<&'a wgpu::Buffer>,
    /// f32 output: 1 element for `mean` and `sum`, `layout.rows()` for `none`.
    pub loss: &'a wgpu::Buffer,
    /// f32 output ∂loss/∂input, `layout.len()` elements; `None` to skip the gradient.
    pub grad: Option<&'a wgpu::Buffer>,
    /// Receives the target range check: [`STATUS_SIZE`] bytes. Read it with
    /// [`Status::from_bytes`] (or [`Context::read_status`]) after submitting.
    pub status: &'a wgpu::Buffer,
    /// f32 output: each row's log-sum-exp (logits only), `layout.rows()` elements.
    pub lse: Option<&'a wgpu::Buffer>,
    /// u32 output: the number of rows whose argmax equals the target, 1 element.
    pub correct: Option<&'a wgpu::Buffer>,
    /// Write the gradient over the input in `logits` (then `grad` must be
    /// `None`): no second input-sized buffer exists. Each element is read
    /// before it is overwritten, so the result equals the out-of-place one.
    pub in_place: bool,
    /// Element type of `logits` and `grad`: f32, or f16 where the device has
    /// `SHADER_F16` (accumulation is in f32 either way). f16 buffers hold at
    /// least `layout.len()` elements rounded up to a multiple of 4 bytes.
    pub precision: Precision,
}

/// Element type of the input and the gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// 4-byte floats.
    #[default]
    F32,
    /// 2-byte IEEE half floats (`half::f16` on the host); needs `SHADER_F16`.
    F16,
}

impl Precision {
    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 2,
        }
    }
}

impl<'a> CrossEntropyBuffers<'a> {
    /// The required buffers, with no weights and no optional outputs but the gradient.
    ///
    /// All from the context's device, never from another `wgpu::Instance`
    /// (which xent cannot detect; see [`CrossEntropyBuffers`]).
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// let ctx = xent::Context::from_env()?;
    /// // Every buffer from the context's own device.
    /// let buffer = |size| ctx.device().create_buffer(&wgpu::BufferDescriptor {
    ///     label: None, size, mapped_at_creation: false,
    ///     usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC });
    /// let (logits, targets, loss, grad) = (buffer(60), buffer(12), buffer(4), buffer(60));
    /// let status = buffer(xent::STATUS_SIZE);
    /// let b = xent::CrossEntropyBuffers {
    ///     weights: None,
    ///     ..xent::CrossEntropyBuffers::new(&logits, xent::TargetBuffer::ClassI32(&targets), &loss, Some(&grad), &status)
    /// };
    /// # Ok(()) }
    /// ```
    pub fn new(
        logits: &'a wgpu::Buffer,
        targets: TargetBuffer<'a>,
        loss: &'a wgpu::Buffer,
        grad: Option<&'a wgpu::Buffer>,
        status: &'a wgpu::Buffer,
    ) -> Self {
        Self {
            logits,
            targets,
            weights: None,
            sample_weights: None,
            loss,
            grad,
            status,
            lse: None,
            correct: None,
            in_place: false,
            precision: Precision::F32,
        }
    }
}

/// What the GPU's target check found, as read from a status buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Status {
    /// Number of targets out of range (neither a class nor `ignore_index`).
    pub bad_targets: u32,
    /// Flat position of the first bad target (meaningful when `bad_targets > 0`).
    pub first_position: u32,
    /// The first bad target's value.
    pub first_value: i32,
}

impl Status {
    /// Decodes the [`STATUS_SIZE`] bytes of a status buffer.
    ///
    /// ```
    /// let s = xent::Status::from_bytes(&[0u8; 16]);
    /// assert_eq!(s.bad_targets, 0);
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let word = |i: usize| {
            bytes
                .get(4 * i..4 * i + 4)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        Self {
            bad_targets: word(0),
            first_position: word(1),
            first_value: word(2) as i32,
        }
    }

    /// `Ok` when every target was in range, else the typed error naming the
    /// first bad target's position (in the target's shape) and value.
    ///
    /// # Errors
    /// [`Error::TargetOutOfRange`].
    ///
    /// ```
    /// let layout = xent::Layout::from_dims(&[3, 5]).unwrap();
    /// let status = xent::Status { bad_targets: 1, first_position: 2, first_value: 9 };
    /// assert!(matches!(status.check(&layout, -100), Err(xent::Error::TargetOutOfRange { value: 9, .. })));
    /// ```
    pub fn check(&self, layout: &Layout, ignore_index: i64) -> Result<()> {
        if self.bad_targets == 0 {
            return Ok(());
        }
        Err(validate::out_of_range(
            layout,
            self.first_position as usize,
            i64::from(self.first_value),
            ignore_index,
            u64::from(self.bad_targets),
        ))
    }
}

/// Mirrors `Params` in `shaders/cross_entropy.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct CrossEntropyParams {
    outer: u32,
    classes: u32,
    inner: u32,
    rows: u32,
    ignore_index: i32,
    reduction: u32,
    smoothing: f32,
    nan: f32,
    z_loss: f32,
    empty_mean_zero: u32,
    row_offset: u32,
    row_end: u32,
    splits: u32,
    span: u32,
    elem_offset: u32,
    target_delta: u32,
    flags: u32,
    neg_inf: f32,
    groups: u32,
    partials: u32,
}

/// Mirrors `Params` in `shaders/softmax.wgsl`.
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

/// Workgroup size of the softmax kernels (`WIDE_WG`, `NARROW_WG` in the shader).
const SOFTMAX_WG: usize = 64;

/// How the rows of a softmax (or its backward) are spread over invocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SoftmaxStrategy {
    /// An invocation per row.
    Narrow,
    /// A workgroup per row.
    Wide,
    /// `splits` workgroups per row, each over a span of classes: a partial
    /// pass, then a pass that merges the row's partials and writes its span.
    Split {
        /// Workgroups per row.
        splits: usize,
    },
}

impl SoftmaxStrategy {
    /// Long rows (`inner = 1`) get a workgroup each, short rows and maps an
    /// invocation each, unless its loops would pass [`LOOP_TRIPS_MAX`]: then a
    /// workgroup per row (any layout), then split rows.
    pub(crate) fn choose(layout: &Layout) -> Result<Self> {
        let classes = layout.classes;
        let first = if layout.inner == 1 && classes >= WIDE_MIN_CLASSES {
            SoftmaxStrategy::Wide
        } else {
            SoftmaxStrategy::Narrow
        };
        // Spans of at most SOFTMAX_WG * LOOP_TRIPS_MAX / 2 classes walk half the bound.
        let splits = classes.div_ceil(SOFTMAX_WG * LOOP_TRIPS_MAX / 2).max(2);
        [
            first,
            SoftmaxStrategy::Wide,
            SoftmaxStrategy::Split { splits },
        ]
        .into_iter()
        .find(|s| s.loop_trips(classes) <= LOOP_TRIPS_MAX)
        .ok_or_else(|| Error::Unsupported {
            what: "a softmax row this long",
            reason: format!(
                "{classes} classes need more than the {LOOP_TRIPS_MAX} loop iterations per \
                     invocation xent bounds every kernel to"
            ),
        })
    }

    /// The most loop iterations one invocation runs (both passes, and the trees).
    pub(crate) fn loop_trips(self, classes: usize) -> usize {
        let tree = 2 * SOFTMAX_WG.ilog2() as usize;
        match self {
            SoftmaxStrategy::Narrow => 2 * classes,
            SoftmaxStrategy::Wide => 2 * classes.div_ceil(SOFTMAX_WG) + tree,
            SoftmaxStrategy::Split { splits } => {
                splits + classes.div_ceil(splits).div_ceil(SOFTMAX_WG) + tree
            }
        }
    }
}

/// Which normalisation [`Context::record_softmax`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoftmaxKind {
    /// `exp(x − max) / Σ exp(x − max)`.
    Softmax,
    /// `x − max − log Σ exp(x − max)`.
    LogSoftmax,
}

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
    /// count (over the same blocks; none for `Reduction::None` without a
    /// count). Nothing is submitted; results are in the caller's buffers
    /// once the caller submits.
    ///
    /// The formulas of every option are on [`CrossEntropyOptions`]; the
    /// gradient is written when `buffers.grad` is given (`compute_grad` and
    /// `count_correct` are host-API switches). Probability targets are not
    /// range-checked on the GPU: the host API checks them on upload.
    ///
    /// Speed: long rows whose class count is not a multiple of 4 run a vec4
    /// kernel when the logits buffer (and `buffers.grad`, if given) is
    /// allocated in whole vec4s (its size rounded up to 16 bytes in f32, 8
    /// in f16), and a slower scalar kernel otherwise. Bytes past the tensor
    /// are read and keep their values.
    ///
    /// Out-of-range targets do not fault the device: their rows get NaN loss
    /// and gradient, and the status buffer names the first of them.
    ///
    /// **The buffers and the encoder must come from this context's device**
    /// ([`Context::device`]). A buffer of another device on the same
    /// `wgpu::Instance`, or a destroyed one, is an [`Error::Gpu`], and then
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
    /// [`Error::InvalidShape`], [`Error::InvalidOption`];
    /// [`Error::Unsupported`] for a shape no strategy serves within the
    /// loop bound (more than ~268 M rows, class weights over more than ~1 M
    /// classes); [`Error::BadBuffer`] for a buffer too small for `dims`, without
    /// `STORAGE` usage, one whose part the shape needs is larger than the
    /// device binds (per-row buffers; larger buffers are bound only as far as
    /// the shape needs), or an output that aliases another buffer;
    /// [`Error::InvalidShape`] when one `(C, d1…dK)` slice, or the per-row
    /// scratch, exceeds the device's largest binding; [`Error::Gpu`] for what
    /// wgpu rejects (a buffer of another device, a destroyed buffer, out of
    /// memory), with wgpu's message; [`Error::DeviceLost`] once the device is
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
    ///     &logits, xent::TargetBuffer::ClassI32(&targets), &loss, Some(&grad), &status);
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
        self.record_cross_entropy_timed(encoder, dims, opts, buffers, Timing::Off)
            .map(|_| ())
    }

    /// Everything about a cross-entropy call that follows from its shape and
    /// options alone (the strategy, the chunks, the scratch), with every
    /// limit checked: the host API calls it before uploading anything, the
    /// recording API before preparing a pass.
    ///
    /// # Errors
    /// [`Error::InvalidShape`] for a class slice, per-row buffer or scratch
    /// past the device's largest binding; [`Error::Unsupported`] past the
    /// loop bound.
    pub(crate) fn plan_cross_entropy(&self, layout: &Layout, p: PlanInputs) -> Result<CallPlan> {
        let rows = layout.rows() as u64;
        let dims = &layout.dims;
        let max_binding = self.device.limits().max_storage_buffer_binding_size;
        let chunks = if rows == 0 {
            Vec::new()
        } else {
            self.chunks(layout, if p.chunked_targets { 4 } else { p.elem })?
        };
        // An empty batch runs no rows pass: any strategy will do.
        let strategy = if rows == 0 {
            RowStrategy::Narrow
        } else {
            RowStrategy::choose(
                layout,
                self.split_rows_below,
                p.mixed,
                self.kernels.wide_wg as usize,
            )?
        };
        let splits = match strategy {
            RowStrategy::Split { splits } => splits as u64,
            _ => 0,
        };
        // Scratch: 4 words of statistics, a flag per row when counting
        // correct predictions, 9 words per (row, span) for split rows or per
        // row for the mixed kernel's plans (with a gradient), 4 words per
        // workgroup of the row reductions; the per-row losses of `mean` and
        // `sum`. Each is bound whole, so each must fit one binding.
        let plans = u64::from(strategy == RowStrategy::WideMixed && p.write_grad);
        let flags = if p.correct { rows } else { 0 };
        let partials = 4 + flags + rows * (splits + plans) * 9;
        let groups = rows.div_ceil(STATS_BLOCK_ROWS).clamp(1, STATS_GROUPS_MAX);
        // The row reductions walk a block of rows, and `target_stats` the class
        // weights, STATS_WG at a time.
        // The block walk, then the weights' (in `target_stats`), and the
        // trees and folds around them (at most 32 more).
        let block_trips = rows.div_ceil(groups).div_ceil(STATS_WG) as usize;
        let weight_trips = if p.weights {
            (layout.classes as u64).div_ceil(STATS_WG) as usize
        } else {
            0
        };
        if block_trips + weight_trips + 32 > LOOP_TRIPS_MAX {
            return Err(Error::Unsupported {
                what: "this many rows or weighted classes",
                reason: format!(
                    "{rows} rows and {} class weights need {} loop iterations per invocation \
                     of the row reductions, more than the {LOOP_TRIPS_MAX} xent bounds every \
                     invocation to (past about 268 M rows, or 1 M weighted classes)",
                    if p.weights { layout.classes } else { 0 },
                    block_trips + weight_trips + 32
                ),
            });
        }
        let aux_bytes = 4 * (partials + 4 * groups);
        let row_loss_bytes = if p.reduction == Reduction::None {
            0
        } else {
            rows * 4
        };
        for (what, need) in [
            (
                "per-row scratch (argmax flags, split-row partials)",
                aux_bytes,
            ),
            // The caller's buffer for `none`, the context's otherwise; per-row
            // targets, lse and sample weights are as large or smaller.
            ("per-row losses", rows * 4),
        ] {
            if need > max_binding {
                return Err(Error::InvalidShape {
                    shape: dims.clone(),
                    reason: format!(
                        "{rows} rows need {need} bytes of {what}, more than the device's largest \
                         storage binding of {max_binding} bytes"
                    ),
                });
            }
        }
        Ok(CallPlan {
            strategy,
            chunks,
            splits,
            flags,
            partials,
            groups,
            aux_bytes,
            row_loss_bytes,
        })
    }

    /// [`Context::record_cross_entropy`] with timestamps as `timing` asks
    /// (for `bench`). Returns the entry points dispatched, in order.
    pub(crate) fn record_cross_entropy_timed(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        dims: &[usize],
        opts: &CrossEntropyOptions,
        buffers: &CrossEntropyBuffers<'_>,
        timing: Timing<'_>,
    ) -> Result<Vec<&'static str>> {
        // Catches wgpu's errors on the objects made below (a buffer of
        // another device, a destroyed one); popped before anything is
        // recorded, so a failed call leaves the caller's encoder untouched.
        let scope = GpuScope::push(&self.device);
        let layout = Layout::from_dims(dims)?;
        opts.validate()?;
        let b = buffers;
        let elems = layout.len() as u64;
        let rows = layout.rows() as u64;
        let loss_elems = if opts.reduction == Reduction::None {
            rows
        } else {
            1
        };
        if matches!(b.targets, TargetBuffer::Probs(_)) {
            validate::probability_targets_ignore(opts)?;
        }
        let (targets, target_kind, target_words) = match b.targets {
            TargetBuffer::ClassI32(t) => (t, 0u32, rows),
            TargetBuffer::ClassU8(t) => (t, 1, rows.div_ceil(4)),
            TargetBuffer::Probs(t) => (t, 2, elems),
        };
        if b.in_place && b.grad.is_some() {
            return Err(Error::BadBuffer {
                what: "grad",
                reason: "in_place writes the gradient into `logits`; pass grad: None".into(),
            });
        }
        if opts.return_lse && b.lse.is_none() {
            return Err(Error::BadBuffer {
                what: "lse",
                reason: "return_lse is set but no lse buffer was given".into(),
            });
        }
        // Tensors of the input's size are bound a chunk of rows at a time, so
        // they may exceed one binding; per-row buffers are bound whole.
        let chunked_targets = target_kind == 2;
        let elem = b.precision.size();
        // Storage bindings are whole words: f16 tensors are padded to 4 bytes.
        let padded = (elems * elem).next_multiple_of(4);
        self.check_bytes("logits", b.logits, padded)?;
        self.check_size("targets", targets, target_words)?;
        if !chunked_targets {
            self.check_buffer("targets", targets, target_words)?;
        }
        if let Some(g) = b.grad {
            self.check_bytes("grad", g, padded)?;
        }
        let optional = [
            ("weights", b.weights, layout.classes as u64),
            ("sample_weights", b.sample_weights, rows),
            ("lse", b.lse, rows),
            ("correct", b.correct, 1),
        ];
        for (what, buffer, need) in optional {
            if let Some(buffer) = buffer {
                self.check_buffer(what, buffer, need)?;
            }
        }
        // An empty batch (no rows) records only the statistics and the
        // reduced loss: NaN for `mean` (0 / 0, as PyTorch), 0 for `sum`.
        let empty = rows == 0;
        self.check_buffer("loss", b.loss, loss_elems)?;
        self.check_buffer("status", b.status, STATUS_SIZE / 4)?;
        let mut all: Vec<(&'static str, &wgpu::Buffer)> = vec![
            ("logits", b.logits),
            ("targets", targets),
            ("loss", b.loss),
            ("status", b.status),
        ];
        all.extend(b.grad.map(|g| ("grad", g)));
        all.extend(
            optional
                .iter()
                .filter_map(|&(what, buffer, _)| buffer.map(|b| (what, b))),
        );
        no_aliasing(&all)?;
        if b.lse.is_some() && opts.input != InputKind::Logits {
            return Err(Error::InvalidOption {
                name: "input",
                value: format!("{:?}", opts.input),
                expected: "logits when an lse buffer is given (log-sum-exp is of logits)",
            });
        }

        // The mixed kernel reads the input and writes the gradient in whole
        // vec4s, up to the vec4 that holds the last element: the caller's
        // buffers must reach it (else the scalar kernel runs).
        let whole_vec4s = (elems * elem).next_multiple_of(4 * elem);
        let write_grad = b.grad.is_some() || b.in_place;
        let plan = self.plan_cross_entropy(
            &layout,
            PlanInputs {
                elem,
                chunked_targets,
                mixed: b.logits.size() >= whole_vec4s
                    && b.grad.is_none_or(|g| g.size() >= whole_vec4s),
                write_grad,
                weights: b.weights.is_some(),
                correct: b.correct.is_some(),
                reduction: opts.reduction,
            },
        )?;
        let CallPlan {
            strategy,
            chunks,
            splits,
            flags,
            partials,
            groups,
            aux_bytes,
            row_loss_bytes,
        } = plan;
        let params = CrossEntropyParams {
            outer: layout.outer as u32,
            classes: layout.classes as u32,
            inner: layout.inner as u32,
            rows: rows as u32,
            ignore_index: opts.ignore_index as i32,
            reduction: opts.reduction.code(),
            smoothing: opts.label_smoothing as f32,
            nan: f32::NAN,
            z_loss: opts.z_loss as f32,
            empty_mean_zero: u32::from(opts.empty_mean == EmptyMean::Zero),
            row_offset: 0,
            row_end: rows as u32,
            splits: splits as u32,
            span: if splits > 0 {
                layout.classes.div_ceil(splits as usize) as u32
            } else {
                0
            },
            elem_offset: 0,
            target_delta: 0,
            flags: flags as u32,
            neg_inf: f32::NEG_INFINITY,
            groups: groups as u32,
            partials: partials as u32,
        };
        let variant = CrossEntropyVariant {
            target_kind,
            input_kind: opts.input.code(),
            has_weights: b.weights.is_some(),
            has_sample_weights: b.sample_weights.is_some(),
            smoothing: opts.label_smoothing != 0.0,
            z_loss: opts.z_loss != 0.0,
            write_grad,
            in_place: b.in_place,
            f16: b.precision == Precision::F16,
            write_lse: b.lse.is_some(),
            count_correct: b.correct.is_some(),
        };
        // First, as it finds a lost device (Error::DeviceLost).
        let uniform = self.uniform("xent cross-entropy params", bytemuck::bytes_of(&params))?;
        // Each entry point's pipeline is built when first used.
        let k = |entry: &'static str| self.kernels.cross_entropy(&self.device, variant, entry, 0);

        let (aux, row_loss, d) = {
            let mut s = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
            let aux = s.aux(&self.device, aux_bytes)?;
            let row_loss = match opts.reduction {
                Reduction::None if !empty => b.loss.clone(),
                _ => s.row_loss(&self.device, row_loss_bytes)?,
            };
            (aux, row_loss, s.dummies.clone())
        };
        let weights = b.weights.unwrap_or(&d.read);
        // Without rows, per-row buffers may be empty, and an empty binding is
        // invalid: placeholders the kernels never read take their slots.
        let sample_weights = match b.sample_weights {
            Some(s) if !empty => s,
            _ => &d.read,
        };
        let targets = if empty { &d.read } else { targets };
        // In place, the caller's logits take the gradient slot and the input
        // slot gets a placeholder the kernels never read.
        let (input, grad) = if b.in_place {
            (&d.read, b.logits)
        } else {
            (b.logits, b.grad.unwrap_or(&d.grad))
        };
        let lse = b.lse.unwrap_or(&d.lse);
        let correct = b.correct.unwrap_or(&d.correct);
        let loss_out = if opts.reduction == Reduction::None {
            &d.loss
        } else {
            b.loss
        };

        // Short rows of few classes: the pipeline specialised for C.
        let fixed = match strategy {
            RowStrategy::Narrow4 if layout.classes / 4 <= FIXED_QUADS_MAX => {
                Some(("rows_narrow4_fixed", layout.classes / 4))
            }
            RowStrategy::Pixels4 if layout.classes <= FIXED_CLASSES_MAX => {
                Some(("rows_pixels4_fixed", layout.classes))
            }
            _ => None,
        };
        let fixed_n = fixed.map_or(0, |(_, n)| n as u32);
        // The rows pass's entry point (`Split` records its three passes below).
        let rows_entry = match (&fixed, strategy) {
            (Some((entry, _)), _) => *entry,
            (None, RowStrategy::Wide) => "rows_wide",
            (None, RowStrategy::WideMixed) => "rows_wide_mixed",
            (None, RowStrategy::Narrow) => "rows_narrow",
            (None, RowStrategy::Wide4) => "rows_wide4",
            (None, RowStrategy::Narrow4) => "rows_narrow4",
            (None, RowStrategy::Pixels4) => "rows_pixels4",
            (None, RowStrategy::Split { .. }) => "split_partial",
        };
        // The vec4 kernels (and the mixed one) read and write through
        // bindings 12 and 13.
        let (input_slot, grad_slot) = match strategy {
            s if s.is_vec4() || s == RowStrategy::WideMixed => (12, 13),
            _ => (1, 7),
        };
        let slab = (layout.classes * layout.inner) as u64;
        let mut rows_passes: Vec<Pass> = Vec::with_capacity(chunks.len());
        for &(n0, n1) in &chunks {
            let (row0, row1) = (n0 * layout.inner, n1 * layout.inner);
            let (e0, e1) = (n0 as u64 * slab, n1 as u64 * slab);
            let (offset, size, shift) = self.chunk_range(e0, e1, elem);
            let (target_offset, target_size, target_shift) = self.chunk_range(e0, e1, 4);
            let (range, target_range) = ((offset, size), (target_offset, target_size));
            let chunk_uniform = if chunks.len() == 1 {
                uniform.clone()
            } else {
                let p = CrossEntropyParams {
                    row_offset: row0 as u32,
                    row_end: row1 as u32,
                    elem_offset: shift as u32,
                    target_delta: (target_shift as u32).wrapping_sub(shift as u32),
                    ..params
                };
                self.uniform("xent cross-entropy chunk params", bytemuck::bytes_of(&p))?
            };
            // Buffers bound whole: clamped to one binding and to whole words
            // (the kernels never index past what the shape needs, checked above).
            let whole = |b: &wgpu::Buffer| self.whole_range(b, 4);
            let targets_range = if chunked_targets {
                target_range
            } else {
                whole(targets)
            };
            // The mixed kernel's views cover whole vec4s (the buffers' sizes
            // are checked above).
            let mixed = strategy == RowStrategy::WideMixed;
            let range = if mixed {
                (range.0, range.1.next_multiple_of(4 * elem))
            } else {
                range
            };
            let grad_range = if b.grad.is_some() || b.in_place {
                range
            } else {
                whole(grad)
            };
            let input_range = if b.in_place { whole(input) } else { range };
            let all = [
                (0, &chunk_uniform, whole(&chunk_uniform)),
                (input_slot, input, input_range),
                (2, targets, targets_range),
                (3, weights, whole(weights)),
                (4, &aux, whole(&aux)),
                (6, &row_loss, whole(&row_loss)),
                (grad_slot, grad, grad_range),
                (9, sample_weights, whole(sample_weights)),
                (10, lse, whole(lse)),
            ];
            // Each entry point's automatic layout holds just the bindings it uses.
            let pick = |slots: &[u32]| -> Vec<(u32, &wgpu::Buffer, (u64, u64))> {
                all.iter()
                    .copied()
                    .filter(|e| slots.contains(&e.0))
                    .collect()
            };
            let chunk = Layout {
                outer: n1 - n0,
                ..layout.clone()
            };
            let rows_in_chunk = chunk.rows();
            // One dispatch of `entry` binding `slots`.
            let mut push =
                |entry: &'static str, pipeline: wgpu::ComputePipeline, slots: Vec<_>, grid| {
                    let group = self.bind_ranges(&pipeline, &slots);
                    rows_passes.push((entry, pipeline, group, grid));
                };
            if let RowStrategy::Split { splits } = strategy {
                let spans = self.grid(rows_in_chunk * splits)?;
                push(
                    "split_partial",
                    k("split_partial")?,
                    pick(&[0, 1, 2, 3, 4, 7]),
                    spans,
                );
                push(
                    "split_rows",
                    k("split_rows")?,
                    pick(&[0, 1, 2, 3, 4, 7, 9]),
                    spans,
                );
                let finish = self.grid(rows_in_chunk.div_ceil(NARROW_WG))?;
                push(
                    "split_finish",
                    k("split_finish")?,
                    pick(&[0, 2, 3, 4, 6, 9, 10]),
                    finish,
                );
            } else {
                let pipeline =
                    self.kernels
                        .cross_entropy(&self.device, variant, rows_entry, fixed_n)?;
                push(
                    rows_entry,
                    pipeline,
                    all.to_vec(),
                    self.grid(strategy.workgroups(&chunk))?,
                );
                if mixed && write_grad {
                    // The vec4s shared by neighbouring rows (see the shader).
                    let seams = self.grid(rows_in_chunk.div_ceil(NARROW_WG))?;
                    push(
                        "mixed_seams",
                        k("mixed_seams")?,
                        pick(&[0, 2, 3, 4, 12, 13]),
                        seams,
                    );
                }
            }
        }
        // Every dispatch of the pass, in order. Past one block of rows the
        // statistics and the loss take a dispatch per block, then a merge.
        let blocks = groups > 1;
        let reduce = opts.reduction != Reduction::None || b.correct.is_some();
        // The block passes bind all but the last entry of their merge's.
        let stats_slots = [
            (0, &uniform),
            (2, targets),
            (3, weights),
            (4, &aux),
            (9, sample_weights),
            (5, b.status),
        ];
        let loss_slots = [
            (0, &uniform),
            (4, &aux),
            (6, &row_loss),
            (8, loss_out),
            (11, correct),
        ];
        let mut passes: Vec<Pass> = Vec::with_capacity(rows_passes.len() + 4);
        if blocks {
            // With `targets` again as vec4s over its whole 16-byte units
            // (at least 8 192 rows' worth here).
            let mut entries: Vec<_> = stats_slots[..5]
                .iter()
                .map(|&(slot, buffer)| (slot, buffer, self.whole_range(buffer, 4)))
                .collect();
            entries.push((14, targets, self.whole_range(targets, 16)));
            let pipeline = k("target_partials")?;
            let group = self.bind_ranges(&pipeline, &entries);
            passes.push(("target_partials", pipeline, group, (groups as u32, 1)));
        }
        let pipeline = k("target_stats")?;
        let group = self.bind(&pipeline, &stats_slots);
        passes.push(("target_stats", pipeline, group, (1, 1)));
        passes.extend(rows_passes);
        if reduce && blocks {
            let pipeline = k("loss_partials")?;
            let group = self.bind(&pipeline, &loss_slots[..3]);
            passes.push(("loss_partials", pipeline, group, (groups as u32, 1)));
        }
        if reduce {
            let pipeline = k("reduce_loss")?;
            let group = self.bind(&pipeline, &loss_slots);
            passes.push(("reduce_loss", pipeline, group, (1, 1)));
        }
        scope.pop("preparing the cross-entropy passes")?;
        let dispatch = |pass: &mut wgpu::ComputePass<'_>, (_, pipeline, group, grid): &Pass| {
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(grid.0, grid.1, 1);
        };
        let scope = GpuScope::push(&self.device);
        match timing {
            Timing::PerDispatch { set, capacity } => {
                if passes.len() > capacity {
                    return Err(Error::Unsupported {
                        what: "a per-dispatch profile of this call",
                        reason: format!(
                            "it times at most {capacity} dispatches; this call records {}",
                            passes.len()
                        ),
                    });
                }
                for (i, entry) in passes.iter().enumerate() {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(entry.0),
                        timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                            query_set: set,
                            beginning_of_pass_write_index: Some(2 * i as u32),
                            end_of_pass_write_index: Some(2 * i as u32 + 1),
                        }),
                    });
                    dispatch(&mut pass, entry);
                }
            }
            timing => {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("xent cross-entropy"),
                    timestamp_writes: match timing {
                        Timing::Whole(writes) => Some(writes),
                        _ => None,
                    },
                });
                for entry in &passes {
                    dispatch(&mut pass, entry);
                }
            }
        }
        scope.pop("recording the cross-entropy pass")?;
        Ok(passes.iter().map(|p| p.0).collect())
    }

    /// Records softmax or log-softmax of `input` along the class axis into `output`.
    ///
    /// `dims` as in [`Context::record_cross_entropy`]; both buffers hold
    /// `layout.len()` f32 values and need `STORAGE` usage. The buffers and
    /// the encoder must come from this context's device, never from another
    /// `wgpu::Instance`, as for [`Context::record_cross_entropy`].
    ///
    /// # Errors
    /// [`Error::InvalidShape`] (also for a tensor, or the partials of its
    /// split rows, past the device's largest binding: softmax is not
    /// chunked), [`Error::BadBuffer`], [`Error::Gpu`] and
    /// [`Error::DeviceLost`] as for cross-entropy.
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
        let k = &self.kernels;
        self.record_normalise(
            encoder,
            dims,
            kind,
            [
                &k.softmax_narrow,
                &k.softmax_wide,
                &k.softmax_partial,
                &k.softmax_split,
            ],
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
    /// [`Error::InvalidShape`], [`Error::BadBuffer`], [`Error::Gpu`] and
    /// [`Error::DeviceLost`] as for the forward.
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
        let k = &self.kernels;
        self.record_normalise(
            encoder,
            dims,
            kind,
            [
                &k.backward_narrow,
                &k.backward_wide,
                &k.backward_partial,
                &k.backward_split,
            ],
            &[
                ("output", output),
                ("grad_output", grad_output),
                ("grad_input", grad_input),
            ],
        )
    }

    /// The strategy of a softmax (or its backward) over `layout`, with its
    /// limits checked: the tensor and the split rows' partials must each fit
    /// one binding (softmax is not chunked). The host API calls it before
    /// uploading.
    pub(crate) fn plan_softmax(&self, layout: &Layout) -> Result<SoftmaxStrategy> {
        if layout.is_empty() {
            return Ok(SoftmaxStrategy::Narrow);
        }
        let strategy = SoftmaxStrategy::choose(layout)?;
        let max_binding = self.device.limits().max_storage_buffer_binding_size;
        let partials = match strategy {
            SoftmaxStrategy::Split { splits } => 8 * (layout.rows() * splits) as u64,
            _ => 0,
        };
        for (what, bytes) in [
            ("the tensor", layout.len() as u64 * 4),
            ("its split rows' partials", partials),
        ] {
            if bytes > max_binding {
                return Err(Error::InvalidShape {
                    shape: layout.dims.clone(),
                    reason: format!(
                        "{what}: {bytes} bytes, more than the device's largest storage \
                         binding of {max_binding} bytes (softmax is not chunked)"
                    ),
                });
            }
        }
        Ok(strategy)
    }

    /// Shared by the softmax forward and backward: `buffers` are bound at 1
    /// (input), 2 (output) and, for the backward, 3 (upstream gradient);
    /// `pipelines` are the narrow, wide, split-partial and split kernels.
    fn record_normalise(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        dims: &[usize],
        kind: SoftmaxKind,
        [narrow, wide, partial, split]: [&wgpu::ComputePipeline; 4],
        buffers: &[(&'static str, &wgpu::Buffer)],
    ) -> Result<()> {
        // As in `record_cross_entropy_timed`: popped before recording.
        let scope = GpuScope::push(&self.device);
        let layout = Layout::from_dims(dims)?;
        for &(what, buffer) in buffers {
            self.check_buffer(what, buffer, layout.len() as u64)?;
        }
        no_aliasing(buffers)?;
        if layout.is_empty() {
            // An empty batch: nothing to write.
            return Ok(());
        }
        let strategy = self.plan_softmax(&layout)?;
        let splits = match strategy {
            SoftmaxStrategy::Split { splits } => splits,
            _ => 1,
        };
        let params = SoftmaxParams {
            outer: layout.outer as u32,
            classes: layout.classes as u32,
            inner: layout.inner as u32,
            rows: layout.rows() as u32,
            mode: match kind {
                SoftmaxKind::Softmax => 0,
                SoftmaxKind::LogSoftmax => 1,
            },
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
                let (pipeline, groups) = match strategy {
                    SoftmaxStrategy::Wide => (wide, layout.rows()),
                    _ => (narrow, layout.rows().div_ceil(SOFTMAX_WG)),
                };
                dispatches.push((pipeline, self.bind(pipeline, &entries), self.grid(groups)?));
            }
            SoftmaxStrategy::Split { splits } => {
                let bytes = 8 * (layout.rows() * splits) as u64;
                let parts = {
                    let mut s = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
                    s.aux(&self.device, bytes)?
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
                for (pipeline, entries) in [(partial, partial_entries), (split, split_entries)] {
                    dispatches.push((pipeline, self.bind(pipeline, &entries), grid));
                }
            }
        }
        scope.pop("preparing the softmax pass")?;
        let scope = GpuScope::push(&self.device);
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("xent softmax"),
                timestamp_writes: None,
            });
            for (pipeline, group, grid) in &dispatches {
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, group, &[]);
                pass.dispatch_workgroups(grid.0, grid.1, 1);
            }
        }
        scope.pop("recording the softmax pass")
    }

    /// Records a vec4 copy of `src` into `dst` (whole vec4s of `dst`): the
    /// bandwidth reference of `bench`. Buffers larger than one binding are
    /// copied a binding-sized piece at a time, in one pass.
    pub(crate) fn record_copy(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        src: &wgpu::Buffer,
        dst: &wgpu::Buffer,
        timestamp_writes: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) -> Result<()> {
        let align = self.offset_alignment();
        let piece = self.device.limits().max_storage_buffer_binding_size / align * align;
        let total = dst.size().min(src.size()) & !15;
        let mut pieces = Vec::new();
        let mut offset = 0;
        while offset < total {
            let size = (total - offset).min(piece);
            let group = self.bind_ranges(
                &self.kernels.copy,
                &[(0, src, (offset, size)), (1, dst, (offset, size))],
            );
            // Enough invocations to fill any device, few enough to amortise launches.
            pieces.push((group, (size / 16).div_ceil(64).min(4096) as u32));
            offset += size;
        }
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("xent copy"),
            timestamp_writes,
        });
        pass.set_pipeline(&self.kernels.copy);
        for (group, groups) in &pieces {
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(*groups, 1, 1);
        }
        Ok(())
    }

    /// A uniform buffer holding `bytes`; [`Error::DeviceLost`] on a lost device.
    fn uniform(&self, label: &str, bytes: &[u8]) -> Result<wgpu::Buffer> {
        buffer_with(&self.device, label, bytes, wgpu::BufferUsages::UNIFORM)
    }

    /// A bind group of byte ranges `(slot, buffer, (offset, size))`.
    fn bind_ranges(
        &self,
        pipeline: &wgpu::ComputePipeline,
        entries: &[(u32, &wgpu::Buffer, (u64, u64))],
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry<'_>> = entries
            .iter()
            .map(|&(binding, buffer, (offset, size))| wgpu::BindGroupEntry {
                binding,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer,
                    offset,
                    size: wgpu::BufferSize::new(size),
                }),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("xent bind group"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        })
    }

    /// Ranges of the outer axis `[n0, n1)` whose slice of an input-sized
    /// tensor fits one storage binding even when its binding starts up to one
    /// offset alignment early (`chunk_range`). One chunk when the whole tensor
    /// fits. `elem` is the largest element size bound per chunk: the input's,
    /// or 4 with probability targets (f32 whatever the input's precision).
    /// Each chunk leaves room for one offset alignment and one vec4 (the
    /// binding starts up to an alignment early and may end on a whole vec4).
    fn chunks(&self, layout: &Layout, elem: u64) -> Result<Vec<(usize, usize)>> {
        let max = self.device.limits().max_storage_buffer_binding_size;
        let slab = (layout.classes * layout.inner) as u64 * elem;
        if (slab * layout.outer as u64).next_multiple_of(16) <= max {
            return Ok(vec![(0, layout.outer)]);
        }
        let room = self.offset_alignment() + 16;
        let per = max.saturating_sub(room) / slab;
        if per == 0 {
            return Err(Error::InvalidShape {
                shape: layout.dims.clone(),
                reason: format!(
                    "one slice along the class axis ({slab} bytes, plus {room} for alignment) does \
                     not fit the device's largest storage binding of {max} bytes; larger tensors \
                     are split along the first axis only"
                ),
            });
        }
        let per = per as usize;
        Ok((0..layout.outer)
            .step_by(per)
            .map(|n0| (n0, (n0 + per).min(layout.outer)))
            .collect())
    }

    /// The device's storage-buffer offset alignment (at least 16 bytes, a vec4).
    fn offset_alignment(&self) -> u64 {
        u64::from(self.device.limits().min_storage_buffer_offset_alignment).max(16)
    }

    /// The binding of elements `[e0, e1)` of `elem` bytes each: `(offset,
    /// size, element shift)` where the offset is `e0`'s byte position rounded
    /// down to the offset alignment, the size covers `e1` rounded up to a
    /// word, and element `e0` is `shift` elements into the binding.
    fn chunk_range(&self, e0: u64, e1: u64, elem: u64) -> (u64, u64, u64) {
        let align = self.offset_alignment();
        let offset = e0 * elem / align * align;
        let size = (e1 * elem).next_multiple_of(4) - offset;
        (offset, size, (e0 * elem - offset) / elem)
    }

    /// `buffer` bound from its start: clamped to the largest binding and
    /// to whole units of `unit` bytes (4: words, 16: vec4s). A caller's
    /// buffer may be larger than the device binds; the kernels never index
    /// past what the shape needs (checked).
    fn whole_range(&self, buffer: &wgpu::Buffer, unit: u64) -> (u64, u64) {
        let max_binding = self.device.limits().max_storage_buffer_binding_size;
        (0, buffer.size().min(max_binding) & !(unit - 1))
    }

    /// Each buffer bound whole, in words ([`Context::whole_range`]).
    fn bind(
        &self,
        pipeline: &wgpu::ComputePipeline,
        entries: &[(u32, &wgpu::Buffer)],
    ) -> wgpu::BindGroup {
        let entries: Vec<_> = entries
            .iter()
            .map(|&(binding, buffer)| (binding, buffer, self.whole_range(buffer, 4)))
            .collect();
        self.bind_ranges(pipeline, &entries)
    }

    /// Spreads `groups` workgroups over x and y so neither exceeds the
    /// device's per-dimension limit; kernels rebuild the index as x + y·nx.
    fn grid(&self, groups: usize) -> Result<(u32, u32)> {
        let max = self.device.limits().max_compute_workgroups_per_dimension as usize;
        let x = groups.min(max);
        let y = groups.div_ceil(x);
        if y > max {
            return Err(Error::BadBuffer {
                what: "logits",
                reason: format!("{groups} workgroups exceed the device's {max} x {max} grid"),
            });
        }
        Ok((x as u32, y as u32))
    }

    /// A caller's buffer: STORAGE usage, at least `elems` 4-byte elements, and
    /// within the device's largest storage binding.
    fn check_buffer(&self, what: &'static str, buffer: &wgpu::Buffer, elems: u64) -> Result<()> {
        self.check_size(what, buffer, elems)?;
        let need = elems * 4;
        let max = self.device.limits().max_storage_buffer_binding_size;
        if need > max {
            return Err(Error::BadBuffer {
                what,
                reason: format!(
                    "the shape needs {need} bytes, more than the device's largest storage binding of {max} bytes"
                ),
            });
        }
        Ok(())
    }

    /// A caller's buffer: STORAGE usage and at least `elems` 4-byte elements.
    fn check_size(&self, what: &'static str, buffer: &wgpu::Buffer, elems: u64) -> Result<()> {
        self.check_bytes(what, buffer, elems * 4)
    }

    /// A caller's buffer: STORAGE usage and at least `need` bytes.
    fn check_bytes(&self, what: &'static str, buffer: &wgpu::Buffer, need: u64) -> Result<()> {
        if !buffer.usage().contains(wgpu::BufferUsages::STORAGE) {
            return Err(Error::BadBuffer {
                what,
                reason: format!("usage {:?} lacks STORAGE", buffer.usage()),
            });
        }
        if buffer.size() < need {
            return Err(Error::BadBuffer {
                what,
                reason: format!("{} bytes, but the shape needs {need}", buffer.size()),
            });
        }
        Ok(())
    }
}

fn no_aliasing(buffers: &[(&'static str, &wgpu::Buffer)]) -> Result<()> {
    for (i, (a_name, a)) in buffers.iter().enumerate() {
        for (b_name, b) in &buffers[i + 1..] {
            if a == b {
                return Err(Error::BadBuffer {
                    what: a_name,
                    reason: format!("the same buffer is also passed as `{b_name}`"),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size and the (name, offset) of each member of WGSL struct `name`.
    fn wgsl_struct(source: &str, name: &str) -> (usize, Vec<(String, usize)>) {
        use wgpu::naga;
        let module = naga::front::wgsl::parse_str(source).unwrap();
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        let (_, ty) = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no struct {name}"));
        let naga::TypeInner::Struct { members, span } = &ty.inner else {
            panic!("{name} is not a struct")
        };
        let members = members
            .iter()
            .map(|m| (m.name.clone().unwrap_or_default(), m.offset as usize))
            .collect();
        (*span as usize, members)
    }

    /// (name, offset) of each field of a Rust struct, in order.
    macro_rules! fields {
        ($t:ty: $($f:ident),* $(,)?) => {
            vec![$((stringify!($f).to_string(), std::mem::offset_of!($t, $f))),*]
        };
    }

    #[test]
    fn the_rust_mirrors_of_the_uniforms_match_the_wgsl() {
        let ce = crate::gpu::pipelines::cross_entropy_source(false, false);
        let (size, members) = wgsl_struct(&ce, "Params");
        assert_eq!(size, std::mem::size_of::<CrossEntropyParams>());
        assert_eq!(
            members,
            fields!(CrossEntropyParams: outer, classes, inner, rows, ignore_index, reduction,
                smoothing, nan, z_loss, empty_mean_zero, row_offset, row_end, splits, span,
                elem_offset, target_delta, flags, neg_inf, groups, partials)
        );
        let (size, members) = wgsl_struct(crate::gpu::pipelines::SOFTMAX_WGSL, "Params");
        assert_eq!(size, std::mem::size_of::<SoftmaxParams>());
        assert_eq!(
            members,
            fields!(SoftmaxParams: outer, classes, inner, rows, mode, splits, span, _pad)
        );
    }

    fn layout(dims: &[usize]) -> Layout {
        Layout::from_dims(dims).unwrap()
    }

    #[test]
    fn every_chosen_strategy_stays_under_the_loop_bound() {
        for wg in [8, 16, 32, 64] {
            for classes in (0..26).flat_map(|k| [1usize << k, (1 << k) + 1, 3 << k]) {
                for inner in [1, 2, 4, 8] {
                    let l = layout(&[2, classes, inner]);
                    for split_below in [SPLIT_ROWS_BELOW_CPU, SPLIT_ROWS_BELOW_GPU] {
                        for mixed in [false, true] {
                            let s = RowStrategy::choose(&l, split_below, mixed, wg).unwrap();
                            let trips = s.loop_trips(classes, wg);
                            assert!(
                                trips <= LOOP_TRIPS_MAX,
                                "{s:?} for C = {classes}, inner = {inner}, wg = {wg}: {trips}"
                            );
                        }
                    }
                    let s = SoftmaxStrategy::choose(&l).unwrap();
                    assert!(
                        s.loop_trips(classes) <= LOOP_TRIPS_MAX,
                        "{s:?} for C = {classes}"
                    );
                }
            }
        }
    }

    #[test]
    fn strategies_past_the_loop_bound_are_split() {
        let choose = |dims: &[usize], wg| RowStrategy::choose(&layout(dims), 4, true, wg).unwrap();
        // The shapes Mesa cut short, on its 8-invocation workgroups.
        assert_eq!(choose(&[1, 8065, 4], 8), RowStrategy::Pixels4);
        assert_eq!(choose(&[1, 8066, 4], 8), RowStrategy::Split { splits: 2 });
        assert_eq!(choose(&[1, 32768, 4], 8), RowStrategy::Split { splits: 2 });
        assert_eq!(choose(&[1, 12785, 3], 8), RowStrategy::Narrow);
        assert_eq!(choose(&[1, 12786, 3], 8), RowStrategy::Split { splits: 2 });
        assert_eq!(choose(&[4, 524_096], 8), RowStrategy::Wide4);
        assert_eq!(choose(&[4, 524_100], 8), RowStrategy::Split { splits: 4 });
        assert_eq!(
            choose(&[4, 33_000_000], 8),
            RowStrategy::Split { splits: 252 }
        );
        // Few rows split for occupancy: at least what the bound needs.
        assert_eq!(
            choose(&[1, 5_000_000], 8),
            RowStrategy::Split { splits: 32 }
        );
        assert_eq!(
            choose(&[1, 9_000_000], 8),
            RowStrategy::Split { splits: 69 }
        );
        assert_eq!(choose(&[2, 128_256], 8), RowStrategy::Split { splits: 15 });
        // Short rows stay where they were.
        assert_eq!(choose(&[65_536, 32], 8), RowStrategy::Narrow4);
        assert_eq!(choose(&[16, 128_256], 8), RowStrategy::Wide4);
        let softmax = |dims: &[usize]| SoftmaxStrategy::choose(&layout(dims)).unwrap();
        assert_eq!(softmax(&[1, 8192, 2]), SoftmaxStrategy::Narrow);
        assert_eq!(softmax(&[1, 8193, 2]), SoftmaxStrategy::Wide);
        assert_eq!(softmax(&[2, 523_904]), SoftmaxStrategy::Wide);
        assert_eq!(
            softmax(&[4, 2_097_152]),
            SoftmaxStrategy::Split { splits: 4 }
        );
    }
}
