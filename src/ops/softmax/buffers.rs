//! The recording API's buffers of softmax: [`SoftmaxBuffers`] (forward)
//! and [`SoftmaxBackwardBuffers`].

use crate::core::Precision;

/// The regions the softmax forward reads and writes, for
/// [`Context::record_softmax`](crate::Context::record_softmax).
///
/// Each is a region of a `wgpu::Buffer` (`buffer.slice(..)` for all of it)
/// with `STORAGE` usage, starting at a multiple of the device's
/// `min_storage_buffer_offset_alignment` (and of 16), holding the shape's
/// `len` elements in `precision` in whole 4-byte words: `4·len` bytes for
/// f32, `2·len` rounded up to 4 for f16 and bf16. `output` lies in a buffer
/// of its own.
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// let ctx = xent::Context::from_env()?;
/// let usage = wgpu::BufferUsages::STORAGE;
/// // Input and output as two regions of one arena each: the output at 256.
/// let input = ctx.device().create_buffer(&wgpu::BufferDescriptor {
///     label: None, size: 16, usage, mapped_at_creation: false });
/// let arena = ctx.device().create_buffer(&wgpu::BufferDescriptor {
///     label: None, size: 512, usage, mapped_at_creation: false });
/// let buffers = xent::SoftmaxBuffers {
///     input: input.slice(..), output: arena.slice(256..272), precision: xent::Precision::F32 };
/// # let _ = buffers;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SoftmaxBuffers<'a> {
    /// The input `x`.
    pub input: wgpu::BufferSlice<'a>,
    /// Written: `softmax(x)` or `log_softmax(x)`.
    pub output: wgpu::BufferSlice<'a>,
    /// How `input` and `output` are stored (`F16` needs `SHADER_F16`).
    pub precision: Precision,
}

/// The regions the softmax backward reads and writes, for
/// [`Context::record_softmax_backward`](crate::Context::record_softmax_backward);
/// each as in [`SoftmaxBuffers`], `grad_input` in a buffer of its own.
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// let ctx = xent::Context::from_env()?;
/// let make = || ctx.device().create_buffer(&wgpu::BufferDescriptor {
///     label: None, size: 8, usage: wgpu::BufferUsages::STORAGE, mapped_at_creation: false });
/// let (y, dy, dx) = (make(), make(), make());
/// let buffers = xent::SoftmaxBackwardBuffers {
///     output: y.slice(..), grad_output: dy.slice(..), grad_input: dx.slice(..),
///     precision: xent::Precision::F32 };
/// # let _ = buffers;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SoftmaxBackwardBuffers<'a> {
    /// The forward's output `y`.
    pub output: wgpu::BufferSlice<'a>,
    /// The upstream gradient `dy`.
    pub grad_output: wgpu::BufferSlice<'a>,
    /// Written: `dx`.
    pub grad_input: wgpu::BufferSlice<'a>,
    /// How the three are stored.
    pub precision: Precision,
}
