//! The recording API's buffers for an elementwise loss.

use super::options::WeightShape;
use crate::core::Precision;

/// The caller's buffers for
/// [`Context::record_elementwise_loss`](crate::Context::record_elementwise_loss),
/// regions of `wgpu::Buffer`s (`buffer.slice(..)` for all of one) with
/// `STORAGE` usage, starting at a multiple of the device's
/// `min_storage_buffer_offset_alignment` (and of 16), each written one in a
/// buffer of its own: the input and the target (the input's
/// shape), the optional weights, the loss (one value for `mean` and `sum`,
/// the input's shape for `none`), the gradient (the input's shape) and the
/// status buffer `Bce`'s range check of its input and target is reported
/// in ([`STATUS_SIZE`](crate::STATUS_SIZE) bytes; every loss writes it,
/// the others with nothing found), to be read with
/// [`Context::read_status`](crate::Context::read_status) or decoded from
/// your own copy as an [`ElementwiseStatus`](crate::ElementwiseStatus).
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// let ctx = xent::Context::from_env()?;
/// let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
/// let buf = |size| ctx.device().create_buffer(&wgpu::BufferDescriptor {
///     label: None, size, usage, mapped_at_creation: false });
/// let (x, y, loss, status) = (buf(16), buf(16), buf(4), buf(xent::STATUS_SIZE));
/// let buffers = xent::ElementwiseBuffers::new(x.slice(..), y.slice(..), loss.slice(..), None, status.slice(..));
/// assert!(buffers.weight.is_none() && buffers.grad.is_none());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ElementwiseBuffers<'a> {
    /// Logits (`BceWithLogits`), probabilities (`Bce`) or predictions.
    pub input: wgpu::BufferSlice<'a>,
    /// The target, of the input's shape.
    pub target: wgpu::BufferSlice<'a>,
    /// The binary losses' weight, of the input's shape or its last axis.
    pub weight: Option<(wgpu::BufferSlice<'a>, WeightShape)>,
    /// `BceWithLogits`'s `pos_weight`, of the input's last axis.
    pub pos_weight: Option<wgpu::BufferSlice<'a>>,
    /// Written: the loss.
    pub loss: wgpu::BufferSlice<'a>,
    /// Written, when given: the gradient.
    pub grad: Option<wgpu::BufferSlice<'a>>,
    /// Written: `Bce`'s range check of its input and target (zeros for
    /// the other losses).
    pub status: wgpu::BufferSlice<'a>,
    /// The storage of the input, the target and the gradient (`F32`, the
    /// default; `F16` on devices with `SHADER_F16`; `BF16`, two to a word).
    /// Weights and losses are f32 in every case.
    pub precision: Precision,
}

impl<'a> ElementwiseBuffers<'a> {
    /// The buffers every call has, with no weights, in f32.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// let ctx = xent::Context::from_env()?;
    /// let buf = |size| ctx.device().create_buffer(&wgpu::BufferDescriptor {
    ///     label: None, size, usage: wgpu::BufferUsages::STORAGE, mapped_at_creation: false });
    /// let (x, y, loss, grad, status) = (buf(16), buf(16), buf(4), buf(16), buf(xent::STATUS_SIZE));
    /// let b = xent::ElementwiseBuffers::new(x.slice(..), y.slice(..), loss.slice(..), Some(grad.slice(..)), status.slice(..));
    /// assert_eq!(b.precision, xent::Precision::F32);
    /// assert!(b.weight.is_none() && b.pos_weight.is_none() && b.grad.is_some());
    /// # Ok(()) }
    /// ```
    pub fn new(
        input: wgpu::BufferSlice<'a>,
        target: wgpu::BufferSlice<'a>,
        loss: wgpu::BufferSlice<'a>,
        grad: Option<wgpu::BufferSlice<'a>>,
        status: wgpu::BufferSlice<'a>,
    ) -> Self {
        Self {
            input,
            target,
            weight: None,
            pos_weight: None,
            loss,
            grad,
            status,
            precision: Precision::F32,
        }
    }
}
