//! The binary and regression losses, elementwise over tensors of any shape:
//! `binary_cross_entropy_with_logits`, `binary_cross_entropy`, `mse_loss`,
//! `l1_loss`, `smooth_l1_loss`, `huber_loss` (formulas: [`ElementwiseLoss`]).
//!
//! `options.rs` the loss and its weights, `validate.rs` the checks both paths
//! share, `plan.rs` the chunks and kernel of a call, `record.rs` the
//! recording API, `host.rs` the host API, `cpu.rs` the f64 twin; the
//! kernels are `shaders/elementwise/loss.wgsl`.

pub(crate) mod buffers;
pub(crate) mod compare;
pub(crate) mod cpu;
pub(crate) mod host;
pub(crate) mod options;
pub(crate) mod pipelines;
pub(crate) mod plan;
pub(crate) mod record;
pub(crate) mod status;
pub(crate) mod traffic;
pub(crate) mod validate;

pub use buffers::ElementwiseBuffers;
pub use cpu::ElementwiseOutput;
pub use options::{ElementwiseLoss, ElementwiseOptions, LossWeights, WeightShape};
pub use status::ElementwiseStatus;
