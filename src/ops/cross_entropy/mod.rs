//! Softmax cross-entropy and its relatives (NLL, probability inputs and
//! targets): the recording API's buffers, the plan, the recording.

pub(crate) mod buffers;
pub(crate) mod check;
mod choose;
pub(crate) mod compare;
pub(crate) mod cpu;
mod cpu_row_outputs;
pub(crate) mod cpu_rows;
pub(crate) mod dispatch;
pub(crate) mod host;
pub(crate) mod options;
pub(crate) mod params;
pub(crate) mod pipelines;
pub(crate) mod plan;
pub(crate) mod record;
mod reduction;
pub(crate) mod shard;
pub(crate) mod status;
pub(crate) mod strategy;
pub(crate) mod targets;
pub(crate) mod traffic;
pub(crate) mod traffic_shard;
pub(crate) mod validate;

pub use buffers::{CrossEntropyBuffers, TargetBuffer};
pub use status::CrossEntropyStatus;
