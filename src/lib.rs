//! # xent
//!
//! Softmax cross-entropy, its gradient and its relatives (softmax,
//! log-softmax), and the binary and regression losses ([`ElementwiseLoss`]),
//! as WGSL compute shaders on [wgpu], with PyTorch's semantics and an f64
//! CPU twin for every op.
//!
//! ```
//! # fn main() -> Result<(), xent::Error> {
//! let ctx = xent::Context::from_env()?.with_verify(xent::Tolerance::default());
//! let logits = [10.0f32, 2.0, 1.0, -2.0, -3.0, -1.0, -6.0, 0.0, -3.0, -5.0, -5.0, 4.0, 8.0, 2.0, 1.0];
//! let (opts, returns) = (xent::CrossEntropyOptions::default(), xent::Returns::default());
//! let out = ctx.cross_entropy(&logits, &[3, 5], &[1i64, 3, 2], None, &opts, &returns)?;
//! println!("loss {}", out.scalar().unwrap()); // 3.7925
//! # Ok(()) }
//! ```
//!
//! ## Two API levels, one call shape
//!
//! * **host**: `ctx.op(inputs…, dims, &options, &returns)`. Slices in
//!   (`f32`, `half::f16` or `half::bf16`: the [`Element`] type is how
//!   the tensors are stored on the device), [`Returns`] saying what comes
//!   back besides the loss, `Vec`s out; it uploads, records, submits and
//!   reads back, and in verify mode ([`Context::with_verify`]) holds every
//!   result to the CPU twin.
//! * **recording**: `ctx.record_op(&mut encoder, dims, &options, &buffers)`.
//!   Regions of your buffers, your encoder; xent records its passes and
//!   submits nothing. Every output is written exactly when its buffer is
//!   given; the buffers value says how the tensors are stored
//!   (`precision`); bad input is reported in the op's status buffer.
//!
//! The options value is the same at both levels.
//!
//! | op | options | host | recording | CPU twin |
//! |---|---|---|---|---|
//! | cross-entropy, NLL, NLLLoss2d, soft targets | [`CrossEntropyOptions`] | [`Context::cross_entropy`], [`Context::cross_entropy_soft`], [`Context::cross_entropy_with`] | [`Context::record_cross_entropy`] ([`CrossEntropyBuffers`]) | [`cpu::cross_entropy`], [`cpu::cross_entropy_with`] |
//! | softmax, log-softmax, their backward | [`SoftmaxOptions`] | [`Context::softmax`], [`Context::softmax_backward`] | [`Context::record_softmax`] ([`SoftmaxBuffers`]), [`Context::record_softmax_backward`] ([`SoftmaxBackwardBuffers`]) | [`cpu::softmax`], [`cpu::log_softmax`], [`cpu::softmax_backward`], [`cpu::log_softmax_backward`] |
//! | BCE, BCE with logits, MSE, L1, smooth L1, Huber | [`ElementwiseOptions`] | [`Context::elementwise_loss`] | [`Context::record_elementwise_loss`] ([`ElementwiseBuffers`]) | [`cpu::elementwise_loss`] |
//! | fused linear + cross-entropy | [`LinearCrossEntropyOptions`] | [`Context::linear_cross_entropy`] ([`Context::plan_linear_cross_entropy`]) | [`Context::record_linear_cross_entropy`] ([`LinearBuffers`]) | [`cpu::linear_cross_entropy`] |
//! | matrix products | [`MatmulOptions`] | [`Context::matmul`] | [`Context::record_matmul`] ([`ProductBuffers`]) | [`cpu::matmul`] |
//! | vocabulary-parallel cross-entropy | [`CrossEntropyOptions`], [`LinearCrossEntropyOptions`] | [`Context::cross_entropy_sharded`], [`Context::linear_cross_entropy_sharded`] (K shards on one device) | [`Context::record_vocab_partial`], [`Context::record_vocab_merge`], [`Context::record_vocab_finish`]; [`Context::record_linear_vocab_partial`], [`Context::record_linear_vocab_finish`] (each with the shard's [`ClassRange`] after the dims) | the unsharded twins |
//!
//! ## What the recording API's buffers need
//!
//! | | |
//! |---|---|
//! | form | a region, `wgpu::BufferSlice` (`buffer.slice(..)` for a whole buffer), of a buffer made on the context's device, not mapped |
//! | usage | `STORAGE`; `COPY_SRC` too for a status read with [`Context::read_status`] |
//! | offset | a multiple of the device's `min_storage_buffer_offset_alignment`, and of 16: [`Error::BadOffset`] otherwise |
//! | size | what the field says, in whole 4-byte words: 4 bytes an element in f32, i32 and u32; 2 in f16 and bf16 (two to a word); u8 class targets one a row (four to a word); a status [`STATUS_SIZE`] bytes; vocabulary records [`VOCAB_RECORD_BYTES`] a row. More is fine, and changes no bit of the results |
//! | precision | the buffers' `precision`: `F32`, `BF16` on every device, `F16` with `SHADER_F16`; weights, losses, sums and statuses are f32 or u32 whatever it is |
//! | aliasing | a region the call writes lies in a buffer of its own (wgpu tracks a dispatch's use of a buffer whole); regions read may share buffers |
//! | status | [`CrossEntropyStatus`] (cross-entropy, the fused op, the vocabulary finishes), [`ElementwiseStatus`] (the elementwise losses): decode your own copy with [`OpStatus::from_bytes`] |
//!
//! What a device needs is [`required_limits`] (and [`optional_features`]);
//! [`Context::new`] refuses less with [`Error::DeviceLimit`]. Layouts,
//! kernels and numerics are described in `ARCHITECTURE.md`.

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
    enumerate_adapters, headless_device, offers_cooperative_products, optional_features,
    required_limits, Context, DeviceClass, Element, Precision, Reduction, Returns, Traffic,
    Transfer,
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
    DEFAULT_SCRATCH_BUDGET, DEFAULT_SCRATCH_FRACTION,
};
pub use ops::matmul::{
    MatmulDims, MatmulOptions, MatrixView, ProductBuffers, ProductKernel, SplitK,
};
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
