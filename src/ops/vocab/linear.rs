//! The fused linear cross-entropy split by vocabulary: each shard holds the
//! rows `[c0, c1)` of `W` and `b` (and of the class weights), computes its
//! logits a window at a time as the unsharded op does, and never stores
//! them whole: the partial computes them once for the records, the finish
//! again for the gradients (a product more than the unsharded op, which
//! keeps the scratch the same).

use super::LinearFinishBuffers;
use super::{ClassRange, ShardPass, ShardStage, VOCAB_RECORD_BYTES};
use crate::core::encode::Timing;
use crate::core::Context;
use crate::core::Precision;
use crate::error::Result;
use crate::ops::cross_entropy::TargetBuffer;
use crate::ops::linear::{LinearBuffers, LinearCrossEntropyOptions, LinearDims};

/// The buffers of a shard's fused partial
/// ([`Context::record_linear_vocab_partial`]), the caller's and from the
/// context's device, each with `STORAGE` usage.
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// let ctx = xent::Context::from_env()?;
/// let buffer = |size| ctx.device().create_buffer(&wgpu::BufferDescriptor {
///     label: None, size, usage: wgpu::BufferUsages::STORAGE, mapped_at_creation: false });
/// // n = 2, h = 3, a shard of 2 of W's rows.
/// let (h, w, t, records) = (buffer(24), buffer(24), buffer(8), buffer(2 * xent::VOCAB_RECORD_BYTES));
/// let b = xent::LinearPartialBuffers { hidden: h.slice(..), weight: w.slice(..), bias: None,
///     targets: xent::TargetBuffer::ClassI32(t.slice(..)), weights: None,
///     partial: records.slice(..), precision: xent::Precision::F32 };
/// # let _ = b;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct LinearPartialBuffers<'a> {
    /// `h`, `(n, h)`, in `precision`.
    pub hidden: wgpu::BufferSlice<'a>,
    /// The shard's rows of `W`: `(c1 − c0, h)`.
    pub weight: wgpu::BufferSlice<'a>,
    /// The shard's `b[c0..c1]`; `None` for no bias.
    pub bias: Option<wgpu::BufferSlice<'a>>,
    /// Class indices of the whole call, `n` of them.
    pub targets: TargetBuffer<'a>,
    /// The shard's class weights `w[c0..c1]`; `None` for all ones.
    pub weights: Option<wgpu::BufferSlice<'a>>,
    /// Written: the shard's records, `n ×` [`VOCAB_RECORD_BYTES`].
    pub partial: wgpu::BufferSlice<'a>,
    /// Storage of `hidden`, `weight` and `bias`, as [`LinearBuffers::precision`].
    pub precision: Precision,
}

/// **Recording API** of the vocabulary-parallel fused linear cross-entropy: a shard's partial and finish.
impl Context {
    /// Records the partial of a fused linear cross-entropy's vocabulary
    /// shard: `dims` is the whole call's (`v` = C), `range` the shard's
    /// classes, whose rows of `W` and `b` the buffers hold. Per window of
    /// rows the shard's logits `h·W_kᵀ + b_k`, then their records into
    /// `buffers.partial`, as [`Context::record_vocab_partial`] writes them.
    /// Gather the shards' records, merge them
    /// ([`Context::record_vocab_merge`]) and finish each shard
    /// ([`Context::record_linear_vocab_finish`]).
    ///
    /// # Errors
    /// As [`Context::record_linear_cross_entropy`], and
    /// [`Error::InvalidOption`](crate::Error::InvalidOption) for a range past `v`.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use wgpu::util::DeviceExt;
    /// let ctx = xent::Context::from_env()?;
    /// let dev = ctx.device();
    /// let usage = wgpu::BufferUsages::STORAGE;
    /// let init = |b: &[u8]| dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
    ///     label: None, contents: b, usage });
    /// let dims = xent::LinearDims { n: 2, h: 3, v: 4 };
    /// let range = xent::ClassRange::new(1, 3); // rows 1 and 2 of W
    /// let hidden = init(bytemuck::cast_slice(&[0.5f32; 6]));
    /// let weight = init(bytemuck::cast_slice(&[0.25f32; 6]));
    /// let targets = init(bytemuck::cast_slice(&[1i32, 3]));
    /// let partial = init(&[0; 2 * xent::VOCAB_RECORD_BYTES as usize]);
    /// let buffers = xent::LinearPartialBuffers {
    ///     hidden: hidden.slice(..), weight: weight.slice(..), bias: None,
    ///     targets: xent::TargetBuffer::ClassI32(targets.slice(..)), weights: None,
    ///     partial: partial.slice(..), precision: xent::Precision::F32,
    /// };
    /// let mut encoder = dev.create_command_encoder(&Default::default());
    /// ctx.record_linear_vocab_partial(&mut encoder, &dims, range, &Default::default(), &buffers)?;
    /// ctx.queue().submit([encoder.finish()]);
    /// # Ok(()) }
    /// ```
    pub fn record_linear_vocab_partial(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        dims: &LinearDims,
        range: ClassRange,
        opts: &LinearCrossEntropyOptions,
        buffers: &LinearPartialBuffers<'_>,
    ) -> Result<()> {
        let dims = *dims;
        range.check(dims.v)?;
        self.check_buffer(
            "partial",
            buffers.partial,
            dims.n as u64 * VOCAB_RECORD_BYTES / 4,
        )?;
        if range.is_empty() || dims.n == 0 {
            let call = self.prepare_vocab_empty(dims.n, buffers.partial)?;
            return self.encode(encoder, &call, Timing::Off);
        }
        // Never bound: the partial writes no loss and no status.
        let d = {
            let s = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
            s.dummies.clone()
        };
        let b = LinearBuffers {
            bias: buffers.bias,
            weights: buffers.weights,
            precision: buffers.precision,
            ..LinearBuffers::new(
                buffers.hidden,
                buffers.weight,
                buffers.targets,
                d.loss.slice(..),
                d.correct.slice(..),
            )
        };
        let call = self.prepare_linear_cross_entropy(
            dims,
            opts,
            &b,
            Some(&ShardPass {
                range,
                stage: ShardStage::Partial {
                    out: buffers.partial,
                },
            }),
        )?;
        self.encode(encoder, &call, Timing::Off)
    }

    /// Records the finish of a fused linear cross-entropy's vocabulary
    /// shard from the merged records: `dims` is the whole call's, `buffers`
    /// hold the shard's rows of `W`, `b`, the class weights and of their
    /// gradients (`∂L/∂W_k`, `∂L/∂b_k`); `buffers.grad_hidden` receives the
    /// shard's part of `∂L/∂h` (`g_k·W_k`; zeros for an empty range), which
    /// summed over the shards in shard order is the unsharded op's. The
    /// loss, log-sum-exp and argmax count are the whole call's, the same on
    /// every shard. The status flags merged records that do not cover the
    /// vocabulary, as [`Context::record_vocab_finish`]'s does.
    ///
    /// # Errors
    /// As [`Context::record_linear_cross_entropy`], and
    /// [`Error::InvalidOption`](crate::Error::InvalidOption) for a range past `v`.
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
    /// let range = xent::ClassRange::new(0, 4); // one shard: the merge has its records alone
    /// let hidden = init(bytemuck::cast_slice(&[0.5f32; 6]));
    /// let weight = init(bytemuck::cast_slice(&[0.25f32; 12]));
    /// let targets = init(bytemuck::cast_slice(&[1i32, 3]));
    /// let records = || init(&[0; 2 * xent::VOCAB_RECORD_BYTES as usize]);
    /// let (partial, merged) = (records(), records());
    /// let (loss, status, gh) = (init(&[0; 4]), init(&[0; 16]), init(&[0; 24]));
    /// let opts = xent::LinearCrossEntropyOptions::default();
    /// let mut encoder = dev.create_command_encoder(&Default::default());
    /// let targets = xent::TargetBuffer::ClassI32(targets.slice(..));
    /// let part = xent::LinearPartialBuffers {
    ///     hidden: hidden.slice(..), weight: weight.slice(..), bias: None, targets,
    ///     weights: None, partial: partial.slice(..), precision: xent::Precision::F32,
    /// };
    /// ctx.record_linear_vocab_partial(&mut encoder, &dims, range, &opts, &part)?;
    /// let records = xent::VocabMergeBuffers { gathered: partial.slice(..), merged: merged.slice(..) };
    /// ctx.record_vocab_merge(&mut encoder, &xent::MergeDims { rows: 2, shards: 1 }, &opts.loss, &records)?;
    /// let shard = xent::LinearBuffers {
    ///     grad_hidden: Some(gh.slice(..)),
    ///     ..xent::LinearBuffers::new(hidden.slice(..), weight.slice(..), targets, loss.slice(..), status.slice(..))
    /// };
    /// let buffers = xent::LinearFinishBuffers { shard, merged: merged.slice(..) };
    /// ctx.record_linear_vocab_finish(&mut encoder, &dims, range, &opts, &buffers)?;
    /// ctx.queue().submit([encoder.finish()]);
    /// # Ok(()) }
    /// ```
    pub fn record_linear_vocab_finish(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        dims: &LinearDims,
        range: ClassRange,
        opts: &LinearCrossEntropyOptions,
        buffers: &LinearFinishBuffers<'_>,
    ) -> Result<()> {
        let call = self.prepare_linear_cross_entropy(
            *dims,
            opts,
            &buffers.shard,
            Some(&ShardPass {
                range,
                stage: ShardStage::Finish {
                    merged: buffers.merged,
                },
            }),
        )?;
        self.encode(encoder, &call, Timing::Off)
    }
}
