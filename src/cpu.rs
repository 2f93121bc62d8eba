//! The CPU twins of every GPU op: max-subtracted, accumulated in f64.
//!
//! These are the reference every GPU result is held against. They take the
//! same inputs as the GPU path (f32, or f64 for finite-difference checks) and
//! return f64. They share the input checks with the GPU path, so bad input
//! gives the same typed [`Error`](crate::Error) on both.
//!
//! Each op's twin lives beside the op (`src/ops/<op>/cpu.rs`); this module
//! gathers them under `xent::cpu` and holds what they share: [`Reference`],
//! the magnitudes the tolerance scales with, and the per-row statistics.
//!
//! ```
//! # fn main() -> Result<(), xent::Error> {
//! // The twin of a GPU call, held to the same tolerance the verify mode uses.
//! let ctx = xent::Context::from_env()?;
//! let (x, dims, t) = ([2.0f32, 0.0, 0.0, 2.0], [2, 2], [0i64, 1]);
//! let gpu = ctx.cross_entropy(&x, &dims, &t, None, &Default::default(), &Default::default())?;
//! let cpu = xent::cpu::cross_entropy(&x, &dims, &t, None, &Default::default())?;
//! xent::Tolerance::default().compare_cross_entropy(&gpu, &cpu, &xent::Tolerance::default())?;
//! assert!((cpu.loss[0] - (1.0 + (-2.0f64).exp()).ln()).abs() < 1e-15);
//! # Ok(()) }
//! ```

pub use crate::ops::cross_entropy::cpu::{
    cross_entropy, cross_entropy_soft, cross_entropy_with, CrossEntropyMagnitude,
    CrossEntropyOutput,
};
pub use crate::ops::elementwise::cpu::{elementwise_loss, ElementwiseMagnitude, ElementwiseOutput};
pub use crate::ops::linear::cpu::{
    linear_cross_entropy, linear_cross_entropy_with, LinearMagnitude,
};
pub use crate::ops::matmul::cpu::matmul;
pub use crate::ops::softmax::cpu::{
    log_softmax, log_softmax_backward, log_softmax_backward_reference, log_softmax_reference,
    softmax, softmax_backward, softmax_backward_reference, softmax_jacobian, softmax_reference,
    MAX_JACOBIAN_CLASSES,
};

pub use crate::core::reference::Reference;
