//! # xent
//!
//! Softmax cross-entropy, its gradient and its relatives (softmax,
//! log-softmax), and the binary and regression losses ([`ElementwiseLoss`]),
//! as WGSL compute shaders on [wgpu], with PyTorch's semantics and an f64
//! CPU twin for every op.
//!
//! Two API levels:
//! * **recording** — [`Context::record_cross_entropy`],
//!   [`Context::record_softmax`] and [`Context::record_elementwise_loss`]
//!   take regions of your buffers (`wgpu::BufferSlice`, at offsets the
//!   device can bind: [`Error::BadOffset`] otherwise) and your
//!   `&mut wgpu::CommandEncoder`, record passes and submit nothing;
//! * **host** — [`Context::cross_entropy`], [`Context::softmax`],
//!   [`Context::elementwise_loss`]: slices in,
//!   `Vec`s out, built on the recording level, with an optional verify mode
//!   against [`cpu`].
//!
//! ```
//! # fn main() -> Result<(), xent::Error> {
//! let ctx = xent::Context::from_env()?.with_verify(xent::Tolerance::default());
//! let logits = [10.0f32, 2.0, 1.0, -2.0, -3.0, -1.0, -6.0, 0.0, -3.0, -5.0, -5.0, 4.0, 8.0, 2.0, 1.0];
//! let out = ctx.cross_entropy(&logits, &[3, 5], &[1i64, 3, 2], None, &Default::default(), &Default::default())?;
//! println!("loss {}", out.scalar().unwrap()); // 3.7925
//! # Ok(()) }
//! ```
//!
//! Layouts, kernels and numerics are described in `ARCHITECTURE.md`.

pub mod bench;
mod core;
pub mod cpu;
mod error;
mod ops;
pub mod wgsl;

pub use crate::core::shape::Layout;
pub use crate::core::status::{OpStatus, STATUS_SIZE};
#[doc(hidden)]
pub use crate::core::verify::Fault;
pub use crate::core::verify::{max_abs_diff, Tolerance};
pub use crate::core::{
    enumerate_adapters, headless_device, optional_features, required_limits, Context, Element,
    Precision, Reduction, Returns,
};
pub use cpu::CrossEntropyOutput;
pub use error::{Error, Result};
pub use ops::cross_entropy::options::{CrossEntropyOptions, EmptyMean, InputKind, Strategy};
pub use ops::cross_entropy::targets::{ClassIndex, Targets, Weights};
pub use ops::cross_entropy::{CrossEntropyBuffers, CrossEntropyStatus, TargetBuffer};
pub use ops::elementwise::{
    ElementwiseBuffers, ElementwiseLoss, ElementwiseOptions, ElementwiseOutput, ElementwiseStatus,
    LossWeights, WeightShape,
};
pub use ops::linear::{
    LinearBuffers, LinearCrossEntropyOptions, LinearDims, LinearOutput, LinearPlan,
    DEFAULT_SCRATCH_BUDGET,
};
pub use ops::matmul::{MatmulDims, MatmulOptions, MatrixView, ProductBuffers, ProductKernel};
pub use ops::softmax::{SoftmaxBackwardBuffers, SoftmaxBuffers, SoftmaxKind, SoftmaxOptions};
pub use ops::vocab::{
    ClassRange, LinearFinishBuffers, LinearPartialBuffers, MergeDims, VocabFinishBuffers,
    VocabMergeBuffers, VocabPartialBuffers, VOCAB_RECORD_BYTES, VOCAB_RECORD_WORDS,
};

/// Compile-time check that a context can be shared across threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Context>();
};
