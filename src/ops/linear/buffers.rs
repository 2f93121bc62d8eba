//! The caller's buffers of a fused linear cross-entropy, and their checks.

use super::LinearDims;
use crate::core::binding::no_aliasing;
use crate::core::Context;
use crate::core::Precision;
use crate::error::{Error, Result};
use crate::ops::cross_entropy::TargetBuffer;

/// The buffers of one [`Context::record_linear_cross_entropy`] call, all the
/// caller's and from the context's device: regions of `wgpu::Buffer`s
/// (`buffer.slice(..)` for all of one) with `STORAGE` usage, starting at a
/// multiple of the device's `min_storage_buffer_offset_alignment` (and of
/// 16), each written one in a buffer of its own.
///
/// `hidden`, `weight` and `bias` are stored in `precision` (bf16 and f16 two
/// to a 4-byte word, rounded up to whole words); everything else is f32,
/// i32 or u32, class targets as [`TargetBuffer::ClassI32`] or
/// [`TargetBuffer::ClassU8`].
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// let ctx = xent::Context::from_env()?;
/// let buffer = |size| ctx.device().create_buffer(&wgpu::BufferDescriptor {
///     label: None, size, usage: wgpu::BufferUsages::STORAGE, mapped_at_creation: false });
/// // n = 2, h = 3, v = 4, bf16 h and W: 12 and 24 bytes.
/// let (h, w, t, loss, status, gw) = (buffer(12), buffer(24), buffer(8), buffer(4), buffer(16), buffer(48));
/// let b = xent::LinearBuffers {
///     grad_weight: Some(gw.slice(..)), precision: xent::Precision::BF16,
///     ..xent::LinearBuffers::new(h.slice(..), w.slice(..), xent::TargetBuffer::ClassI32(t.slice(..)),
///         loss.slice(..), status.slice(..))
/// };
/// # let _ = b;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct LinearBuffers<'a> {
    /// `h`, `(n, h)` row-major.
    pub hidden: wgpu::BufferSlice<'a>,
    /// `W`, `(v, h)` row-major.
    pub weight: wgpu::BufferSlice<'a>,
    /// `b`, `v` elements; `None` for no bias.
    pub bias: Option<wgpu::BufferSlice<'a>>,
    /// Class indices, `n` of them, or f32 probabilities `(n, v)` (not yet
    /// with the vocabulary split: [`Error::Unsupported`]).
    pub targets: TargetBuffer<'a>,
    /// f32 class weights, `v`; `None` for all ones.
    pub weights: Option<wgpu::BufferSlice<'a>>,
    /// f32 loss: 1 element for `mean` and `sum`, `n` for `none`.
    pub loss: wgpu::BufferSlice<'a>,
    /// f32 `∂L/∂h`, `(n, h)`; `None` to skip it.
    pub grad_hidden: Option<wgpu::BufferSlice<'a>>,
    /// f32 `∂L/∂W`, `(v, h)`; `None` to skip it.
    pub grad_weight: Option<wgpu::BufferSlice<'a>>,
    /// f32 `∂L/∂b`, `v`; `None` to skip it.
    pub grad_bias: Option<wgpu::BufferSlice<'a>>,
    /// The target range check ([`STATUS_SIZE`](crate::STATUS_SIZE) bytes).
    pub status: wgpu::BufferSlice<'a>,
    /// f32 per-row log-sum-exp of the (capped) logits, `n`; optional.
    pub lse: Option<wgpu::BufferSlice<'a>>,
    /// u32 count of rows whose argmax is the target; optional.
    pub correct: Option<wgpu::BufferSlice<'a>>,
    /// i32 predicted class of each row (`torch.argmax` of the logits as the
    /// loss sees them), `n`; optional.
    pub argmax: Option<wgpu::BufferSlice<'a>>,
    /// f32 entropy of each row's softmax, `n`; optional.
    pub entropy: Option<wgpu::BufferSlice<'a>>,
    /// Storage of `hidden`, `weight` and `bias`: f32, bf16, or f16 on
    /// devices with `SHADER_F16`. The window of logits, the gradients and
    /// every sum are f32.
    pub precision: Precision,
}

impl<'a> LinearBuffers<'a> {
    /// The required buffers, with no bias, no class weights, no gradients and no optional outputs.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// let ctx = xent::Context::from_env()?;
    /// let buffer = |size| ctx.device().create_buffer(&wgpu::BufferDescriptor {
    ///     label: None, size, mapped_at_creation: false, usage: wgpu::BufferUsages::STORAGE });
    /// let (h, w, t, loss, status) = (buffer(24), buffer(48), buffer(8), buffer(4), buffer(16));
    /// let b = xent::LinearBuffers::new(h.slice(..), w.slice(..),
    ///     xent::TargetBuffer::ClassI32(t.slice(..)), loss.slice(..), status.slice(..));
    /// assert!(b.grad_weight.is_none());
    /// # Ok(()) }
    /// ```
    pub fn new(
        hidden: wgpu::BufferSlice<'a>,
        weight: wgpu::BufferSlice<'a>,
        targets: TargetBuffer<'a>,
        loss: wgpu::BufferSlice<'a>,
        status: wgpu::BufferSlice<'a>,
    ) -> Self {
        Self {
            hidden,
            weight,
            bias: None,
            targets,
            weights: None,
            loss,
            grad_hidden: None,
            grad_weight: None,
            grad_bias: None,
            status,
            lse: None,
            correct: None,
            argmax: None,
            entropy: None,
            precision: Precision::F32,
        }
    }
}

impl Context {
    /// The storage precision on the device, class-index targets for a
    /// vocabulary `shard`, the buffers' sizes and usage, and that no output
    /// aliases another.
    pub(super) fn check_linear_buffers(
        &self,
        dims: LinearDims,
        b: &LinearBuffers<'_>,
        shard: bool,
    ) -> Result<()> {
        b.precision
            .supported_on(&self.device, "f16 hidden states and weights")?;
        if shard && matches!(b.targets, TargetBuffer::Probs(_)) {
            return Err(Error::Unsupported {
                what: "probability targets",
                reason: "the vocabulary-split fused linear cross-entropy takes class indices"
                    .into(),
            });
        }
        let LinearDims { n, h, v } = dims;
        let p = b.precision;
        let targets = match b.targets {
            TargetBuffer::ClassI32(t) | TargetBuffer::ClassU8(t) | TargetBuffer::Probs(t) => t,
        };
        let stored = |elems: usize| (elems as u64 * p.size()).next_multiple_of(4);
        self.check_bytes("hidden", b.hidden, stored(n * h))?;
        self.check_bytes("weight", b.weight, stored(v * h))?;
        if let Some(bias) = b.bias {
            self.check_bytes("bias", bias, stored(v))?;
        }
        for (what, buffer, elems) in [
            ("grad_hidden", b.grad_hidden, n * h),
            ("grad_weight", b.grad_weight, v * h),
            ("grad_bias", b.grad_bias, v),
        ] {
            if let Some(buffer) = buffer {
                self.check_bytes(what, buffer, elems as u64 * 4)?;
            }
        }
        let mut all: Vec<(&'static str, wgpu::BufferSlice<'_>)> = vec![
            ("hidden", b.hidden),
            ("weight", b.weight),
            ("targets", targets),
            ("loss", b.loss),
            ("status", b.status),
        ];
        for (what, buffer) in [
            ("bias", b.bias),
            ("weights", b.weights),
            ("grad_hidden", b.grad_hidden),
            ("grad_weight", b.grad_weight),
            ("grad_bias", b.grad_bias),
            ("lse", b.lse),
            ("correct", b.correct),
            ("argmax", b.argmax),
            ("entropy", b.entropy),
        ] {
            all.extend(buffer.map(|buffer| (what, buffer)));
        }
        no_aliasing(&all)?;
        if b.grad_bias.is_some() && b.bias.is_none() {
            return Err(Error::BadBuffer {
                what: "grad_bias",
                reason: "a bias gradient without a bias".into(),
            });
        }
        Ok(())
    }
}
