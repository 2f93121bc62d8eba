//! Softmax and log-softmax along the class axis, forward and backward.

pub(crate) mod cpu;
pub(crate) mod host;
pub(crate) mod pipelines;
pub(crate) mod plan;
pub(crate) mod record;

pub use record::SoftmaxKind;
