//! The recording API's buffers for cross-entropy, and the status buffer it
//! reports bad targets in.

use crate::core::Precision;

/// The target kinds' codes (`TARGET_*` in `shaders/cross_entropy/common.wgsl`).
pub(crate) const TARGET_I32: u32 = 0;
pub(crate) const TARGET_U8: u32 = 1;
pub(crate) const TARGET_PROBS: u32 = 2;

/// The targets buffer of a [`Context::record_cross_entropy`](crate::Context::record_cross_entropy) call, with its element type.
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// let ctx = xent::Context::from_env()?;
/// let buffer = |size| ctx.device().create_buffer(&wgpu::BufferDescriptor {
///     label: None, size, usage: wgpu::BufferUsages::STORAGE, mapped_at_creation: false });
/// let (ids, mask) = (buffer(12), buffer(4)); // 3 rows: i32 ids, or u8 in one word
/// let targets = xent::TargetBuffer::ClassI32(ids.slice(..));
/// let masked = xent::TargetBuffer::ClassU8(mask.slice(..));
/// # let _ = (targets, masked);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub enum TargetBuffer<'a> {
    /// i32 class indices, one per row (`layout.rows()` elements).
    ClassI32(wgpu::BufferSlice<'a>),
    /// u8 class indices, one byte per row, packed little-endian four to a
    /// 32-bit word (a `&[u8]` uploaded as it is, padded to 4 bytes).
    ClassU8(wgpu::BufferSlice<'a>),
    /// f32 probabilities with the input's shape (`layout.len()` elements).
    Probs(wgpu::BufferSlice<'a>),
}

/// The buffers of one [`Context::record_cross_entropy`](crate::Context::record_cross_entropy) call, all the caller's.
///
/// Each is a region of a `wgpu::Buffer` (`buffer.slice(..)` for all of it)
/// with `STORAGE` usage, starting at a multiple of the device's
/// `min_storage_buffer_offset_alignment` (and of 16; [`Error::BadOffset`](crate::Error::BadOffset)
/// otherwise), and at least as large as its field says: `logits` and `grad`
/// hold `layout.len()` elements of `precision` (4 bytes for f32, 2 for f16
/// and bf16), in whole 4-byte words; every other tensor's elements are 4
/// bytes (f32, i32 or u32), u8 targets one byte each in whole words. A
/// written region lies in a buffer of its own: wgpu tracks a dispatch's use
/// of a buffer as a whole, whatever the ranges.
///
/// **Every buffer must come from the context's device**
/// ([`Context::device`](crate::Context::device)). A buffer of another device on the same
/// `wgpu::Instance`, or a destroyed one, is an [`Error::Gpu`](crate::Error::Gpu) from the
/// recording call. A buffer of another `wgpu::Instance` cannot be detected:
/// wgpu's ids are per instance, so wgpu silently binds whichever buffer of
/// the context's device has the same id (wrong results, no error; never
/// this buffer), or panics on an id the context's instance never issued.
/// Each [`headless_device`](crate::headless_device) call and each
/// [`Context::from_env`](crate::Context::from_env) makes a new instance: create the buffers with
/// `ctx.device()`.
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// let ctx = xent::Context::from_env()?;
/// let buffer = |size| ctx.device().create_buffer(&wgpu::BufferDescriptor {
///     label: None, size, usage: wgpu::BufferUsages::STORAGE, mapped_at_creation: false });
/// // (3, 5) bf16 logits, the gradient written over them, the lse too.
/// let (logits, targets, loss, lse, status) = (buffer(32), buffer(12), buffer(4), buffer(12), buffer(16));
/// let b = xent::CrossEntropyBuffers {
///     in_place: true, precision: xent::Precision::BF16, lse: Some(lse.slice(..)),
///     ..xent::CrossEntropyBuffers::new(logits.slice(..), xent::TargetBuffer::ClassI32(targets.slice(..)),
///         loss.slice(..), None, status.slice(..))
/// };
/// # let _ = b;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct CrossEntropyBuffers<'a> {
    /// The input (logits, log-probabilities or probabilities, per
    /// [`CrossEntropyOptions::input`](crate::CrossEntropyOptions::input)), `layout.len()` elements, in the input's layout.
    pub logits: wgpu::BufferSlice<'a>,
    /// The targets.
    pub targets: TargetBuffer<'a>,
    /// f32 class weights, C elements; `None` for all ones.
    pub weights: Option<wgpu::BufferSlice<'a>>,
    /// f32 sample weights, one per row; `None` for all ones.
    pub sample_weights: Option<wgpu::BufferSlice<'a>>,
    /// f32 output: 1 element for `mean` and `sum`, `layout.rows()` for `none`.
    pub loss: wgpu::BufferSlice<'a>,
    /// Output ∂loss/∂input in `precision`, `layout.len()` elements; `None` to skip the gradient.
    pub grad: Option<wgpu::BufferSlice<'a>>,
    /// Receives the target range check: [`STATUS_SIZE`](crate::STATUS_SIZE) bytes. Read it with
    /// [`CrossEntropyStatus`](crate::CrossEntropyStatus) (its `from_bytes`, or
    /// [`Context::read_status`](crate::Context::read_status)) after submitting.
    pub status: wgpu::BufferSlice<'a>,
    /// f32 output: each row's log-sum-exp (logits only), `layout.rows()` elements.
    pub lse: Option<wgpu::BufferSlice<'a>>,
    /// u32 output: the number of rows whose argmax equals the target, 1 element.
    pub correct: Option<wgpu::BufferSlice<'a>>,
    /// i32 output (logits only), `layout.rows()` elements: each row's
    /// predicted class, the first index of its largest logit as the loss
    /// sees it (after the temperature and the soft-cap), as `torch.argmax`
    /// (a NaN is the largest); every row, ignored ones included. The format
    /// of [`TargetBuffer::ClassI32`].
    pub argmax: Option<wgpu::BufferSlice<'a>>,
    /// f32 output (logits only), `layout.rows()` elements: the entropy
    /// `−Σ p·log p` of each row's softmax, of the logits as the loss sees
    /// them; every row, ignored ones included.
    pub entropy: Option<wgpu::BufferSlice<'a>>,
    /// Write the gradient over the input in `logits` (then `grad` must be
    /// `None`): no second input-sized buffer exists. Each element is read
    /// before it is overwritten, so the result equals the out-of-place one.
    pub in_place: bool,
    /// Element type of `logits` and `grad`: f32, bf16 (two to a word), or
    /// f16 where the device has `SHADER_F16` (accumulation is in f32 either
    /// way).
    pub precision: Precision,
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
    ///     ..xent::CrossEntropyBuffers::new(logits.slice(..), xent::TargetBuffer::ClassI32(targets.slice(..)),
    ///         loss.slice(..), Some(grad.slice(..)), status.slice(..))
    /// };
    /// # Ok(()) }
    /// ```
    pub fn new(
        logits: wgpu::BufferSlice<'a>,
        targets: TargetBuffer<'a>,
        loss: wgpu::BufferSlice<'a>,
        grad: Option<wgpu::BufferSlice<'a>>,
        status: wgpu::BufferSlice<'a>,
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
            argmax: None,
            entropy: None,
            in_place: false,
            precision: Precision::F32,
        }
    }
}
