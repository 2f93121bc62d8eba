//! The recording API's buffers for an elementwise loss.

use super::options::WeightShape;
use super::validate::{self, Elements};
use crate::core::status::Status;
use crate::core::Precision;
use crate::error::Result;

/// The caller's buffers for
/// [`Context::record_elementwise_loss`](crate::Context::record_elementwise_loss),
/// regions of `wgpu::Buffer`s (`buffer.slice(..)` for all of one) with
/// `STORAGE` usage, starting at a multiple of the device's
/// `min_storage_buffer_offset_alignment` (and of 16), each written one in a
/// buffer of its own: the input and the target (the input's
/// shape), the optional weights, the loss (one value for `mean` and `sum`,
/// the input's shape for `none`), the gradient (the input's shape) and, for
/// `Bce`, the status buffer the range check of its input and target is
/// reported in ([`STATUS_SIZE`](crate::STATUS_SIZE) bytes, with `COPY_SRC`
/// usage to be read with
/// [`Context::read_status`](crate::Context::read_status) and
/// [`Status::check_input`]).
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// let ctx = xent::Context::from_env()?;
/// let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
/// let buf = |size| ctx.device().create_buffer(&wgpu::BufferDescriptor {
///     label: None, size, usage, mapped_at_creation: false });
/// let (x, y, loss) = (buf(16), buf(16), buf(4));
/// let buffers = xent::ElementwiseBuffers::new(x.slice(..), y.slice(..), loss.slice(..), None);
/// assert!(buffers.weight.is_none() && buffers.status.is_none());
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
    /// Written by `Bce` (which needs it): its input's range check.
    pub status: Option<wgpu::BufferSlice<'a>>,
    /// The storage of the input, the target and the gradient (`F32`, the
    /// default; `F16` on devices with `SHADER_F16`; `BF16`, two to a word).
    /// Weights and losses are f32 in every case.
    pub precision: Precision,
}

impl<'a> ElementwiseBuffers<'a> {
    /// Buffers without weights or status buffer.
    pub fn new(
        input: wgpu::BufferSlice<'a>,
        target: wgpu::BufferSlice<'a>,
        loss: wgpu::BufferSlice<'a>,
        grad: Option<wgpu::BufferSlice<'a>>,
    ) -> Self {
        Self {
            input,
            target,
            weight: None,
            pos_weight: None,
            loss,
            grad,
            status: None,
            precision: Precision::F32,
        }
    }
}

impl Status {
    /// [`Error::InputOutOfRange`](crate::Error::InputOutOfRange) if the
    /// status of a `Bce` call reports elements whose input or target is
    /// outside [0, 1] (those elements' loss and gradient are NaN). The first
    /// one's bad value is read on the GPU where the tensors' first binding
    /// holds it (NaN where it does not).
    ///
    /// ```
    /// let s = xent::Status { bad_targets: 2, first_position: 3, first_value: 2.5f32.to_bits() as i32,
    ///     first_in_target: true, ..Default::default() };
    /// let err = s.check_input(&[2, 2]).unwrap_err();
    /// assert!(matches!(err, xent::Error::InputOutOfRange { what: "target", count: 2, .. }));
    /// ```
    pub fn check_input(&self, dims: &[usize]) -> Result<()> {
        if self.bad_targets == 0 {
            return Ok(());
        }
        let shape = Elements::new(dims)?;
        Err(validate::named_out_of_range(
            &shape,
            self.first_position as usize,
            if self.first_in_target {
                "target"
            } else {
                "input"
            },
            f32::from_bits(self.first_value as u32),
            u64::from(self.bad_targets),
        ))
    }
}
