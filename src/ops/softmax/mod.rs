//! Softmax and log-softmax along the class axis, forward and backward.

pub(crate) mod buffers;
pub(crate) mod cpu;
pub(crate) mod host;
pub(crate) mod options;
pub(crate) mod pipelines;
pub(crate) mod plan;
pub(crate) mod record;
pub(crate) mod traffic;

pub use buffers::{SoftmaxBackwardBuffers, SoftmaxBuffers};
pub use options::{SoftmaxKind, SoftmaxOptions};
