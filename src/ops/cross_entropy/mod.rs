//! Softmax cross-entropy and its relatives (NLL, probability inputs and
//! targets): the recording API's buffers, the plan, the recording.

pub(crate) mod buffers;
pub(crate) mod cpu;
pub(crate) mod host;
pub(crate) mod options;
pub(crate) mod params;
pub(crate) mod plan;
pub(crate) mod record;
pub(crate) mod targets;

pub use buffers::{CrossEntropyBuffers, Precision, Status, TargetBuffer, STATUS_SIZE};
