//! The recording API's buffers for cross-entropy, and the status buffer it
//! reports bad targets in.

use crate::core::Precision;

/// The target kinds' codes (`TARGET_*` in `shaders/cross_entropy/common.wgsl`).
pub(crate) const TARGET_I32: u32 = 0;
pub(crate) const TARGET_U8: u32 = 1;
pub(crate) const TARGET_PROBS: u32 = 2;

/// The targets buffer of a [`Context::record_cross_entropy`](crate::Context::record_cross_entropy) call, with its element type.
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

/// The buffers of one [`Context::record_cross_entropy`](crate::Context::record_cross_entropy) call, all the caller's.
///
/// Every buffer needs `STORAGE` usage; sizes are in elements of 4 bytes.
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
#[derive(Debug, Clone, Copy)]
pub struct CrossEntropyBuffers<'a> {
    /// f32 input (logits, log-probabilities or probabilities, per
    /// [`CrossEntropyOptions::input`](crate::CrossEntropyOptions::input)), `layout.len()` elements, in the input's layout.
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
    /// Receives the target range check: [`STATUS_SIZE`](crate::STATUS_SIZE) bytes. Read it with
    /// [`Status::from_bytes`](crate::Status::from_bytes) (or [`Context::read_status`](crate::Context::read_status)) after submitting.
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
