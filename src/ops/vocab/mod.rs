//! Vocabulary-parallel cross-entropy: a call's classes split into
//! contiguous ranges (shards, one per device), each shard's input holding
//! only its classes. Three steps, with an all-gather between the first two:
//!
//! 1. **partial** ([`Context::record_vocab_partial`](crate::Context::record_vocab_partial)):
//!    each shard writes one record per row of its range's statistics;
//! 2. **merge** ([`Context::record_vocab_merge`](crate::Context::record_vocab_merge)):
//!    the shards' records, gathered in shard order, merged in shard order;
//! 3. **finish** ([`Context::record_vocab_finish`](crate::Context::record_vocab_finish)):
//!    each shard writes its range's gradient and the whole call's loss
//!    from the merged records.
//!
//! The record's byte layout is [`VOCAB_RECORD_WORDS`]'s documentation; the
//! kernels are `shaders/cross_entropy/vocab.wgsl`.

mod buffers;
pub(crate) mod host;
mod linear;
mod linear_host;
mod record;

pub use buffers::{LinearFinishBuffers, MergeDims, VocabFinishBuffers, VocabMergeBuffers};
pub use linear::LinearPartialBuffers;
pub use record::VocabPartialBuffers;

pub use crate::ops::cross_entropy::shard::{ClassRange, VOCAB_RECORD_BYTES, VOCAB_RECORD_WORDS};
pub(crate) use crate::ops::cross_entropy::shard::{ShardPass, ShardStage};
