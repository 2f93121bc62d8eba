//! The buffers and sizes of the merge and of a shard's finish: the merge's
//! [`MergeDims`] and [`VocabMergeBuffers`], and the finishes'
//! [`VocabFinishBuffers`] and [`LinearFinishBuffers`] (a shard's buffers as
//! the unsharded call takes them, with the merged records).

use crate::ops::cross_entropy::CrossEntropyBuffers;
use crate::ops::linear::LinearBuffers;

/// The shape of a merge ([`Context::record_vocab_merge`](crate::Context::record_vocab_merge)):
/// `rows` records from each of `shards` shards.
///
/// ```
/// let dims = xent::MergeDims { rows: 8, shards: 2 };
/// assert_eq!(dims.gathered_bytes(), 2 * 8 * xent::VOCAB_RECORD_BYTES);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeDims {
    /// Rows of the call (targets), one record each per shard.
    pub rows: usize,
    /// Shards gathered, 1 to 16 384.
    pub shards: usize,
}

impl MergeDims {
    /// Bytes the gathered records take: `shards · rows ·`
    /// [`VOCAB_RECORD_BYTES`](crate::VOCAB_RECORD_BYTES).
    ///
    /// ```
    /// // 4 rows from each of 3 shards: 12 records of 13 words.
    /// let dims = xent::MergeDims { rows: 4, shards: 3 };
    /// assert_eq!(dims.gathered_bytes(), 12 * 52);
    /// ```
    pub fn gathered_bytes(&self) -> u64 {
        (self.shards * self.rows) as u64 * crate::VOCAB_RECORD_BYTES
    }
}

/// The regions of a merge, each as in [`CrossEntropyBuffers`].
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// let ctx = xent::Context::from_env()?;
/// let buffer = |size| ctx.device().create_buffer(&wgpu::BufferDescriptor {
///     label: None, size, usage: wgpu::BufferUsages::STORAGE, mapped_at_creation: false });
/// let (gathered, merged) = (buffer(2 * 8 * xent::VOCAB_RECORD_BYTES), buffer(8 * xent::VOCAB_RECORD_BYTES));
/// let buffers = xent::VocabMergeBuffers { gathered: gathered.slice(..), merged: merged.slice(..) };
/// # let _ = buffers;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct VocabMergeBuffers<'a> {
    /// The shards' records, shard after shard ([`MergeDims::gathered_bytes`]).
    pub gathered: wgpu::BufferSlice<'a>,
    /// Written: each row's merged record (`rows` records), in a buffer of
    /// its own.
    pub merged: wgpu::BufferSlice<'a>,
}

/// The regions of a shard's finish
/// ([`Context::record_vocab_finish`](crate::Context::record_vocab_finish)):
/// the shard's buffers as the unsharded call takes them, and the merged
/// records.
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// let ctx = xent::Context::from_env()?;
/// let buffer = |size| ctx.device().create_buffer(&wgpu::BufferDescriptor {
///     label: None, size, usage: wgpu::BufferUsages::STORAGE, mapped_at_creation: false });
/// let (logits, targets, loss, grad, status) = (buffer(24), buffer(8), buffer(4), buffer(24), buffer(16));
/// let merged = buffer(2 * xent::VOCAB_RECORD_BYTES);
/// let shard = xent::CrossEntropyBuffers::new(logits.slice(..), xent::TargetBuffer::ClassI32(targets.slice(..)),
///     loss.slice(..), Some(grad.slice(..)), status.slice(..));
/// let b = xent::VocabFinishBuffers { shard, merged: merged.slice(..) };
/// # let _ = b;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct VocabFinishBuffers<'a> {
    /// The shard's logits, gradient, class weights and probability
    /// targets; the whole call's class targets, sample weights and outputs.
    pub shard: CrossEntropyBuffers<'a>,
    /// The merged records (`rows` of them).
    pub merged: wgpu::BufferSlice<'a>,
}

/// The regions of a fused shard's finish
/// ([`Context::record_linear_vocab_finish`](crate::Context::record_linear_vocab_finish)):
/// the shard's buffers as the unsharded fused call takes them, and the
/// merged records.
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// let ctx = xent::Context::from_env()?;
/// let buffer = |size| ctx.device().create_buffer(&wgpu::BufferDescriptor {
///     label: None, size, usage: wgpu::BufferUsages::STORAGE, mapped_at_creation: false });
/// let (h, w, t, loss, status) = (buffer(24), buffer(24), buffer(8), buffer(4), buffer(16));
/// let merged = buffer(2 * xent::VOCAB_RECORD_BYTES);
/// let shard = xent::LinearBuffers::new(h.slice(..), w.slice(..), xent::TargetBuffer::ClassI32(t.slice(..)),
///     loss.slice(..), status.slice(..));
/// let b = xent::LinearFinishBuffers { shard, merged: merged.slice(..) };
/// # let _ = b;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct LinearFinishBuffers<'a> {
    /// The shard's rows of `W`, `b` and the class weights and of their
    /// gradients; the whole call's `h`, targets, `∂L/∂h` part and outputs.
    pub shard: LinearBuffers<'a>,
    /// The merged records (`rows` of them).
    pub merged: wgpu::BufferSlice<'a>,
}
