//! What every op shares on the GPU: the context, adapter selection, the
//! pipelines and their cache, scratch buffers.

pub(crate) mod adapter;
pub(crate) mod binding;
pub(crate) mod context;
pub(crate) mod copy;
pub(crate) mod encode;
pub(crate) mod pipelines;
pub(crate) mod scratch;
pub(crate) mod sources;
pub(crate) mod transfer;

pub use adapter::{enumerate_adapters, headless_device};
pub use context::Context;
pub(crate) use pipelines::{CrossEntropyVariant, ElementwiseVariant, MatmulVariant};
pub(crate) use scratch::buffer_with;
