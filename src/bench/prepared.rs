//! A benchmark case's data, uploaded once and recorded again and again.

use super::data::{forward_like, second_tensor, stored};
use super::vocab::{SplitCall, VocabShards};
use super::{bench_data, BenchCase, BenchOp};
use crate::core::encode::{Dispatches, Timing};
use crate::core::shape::Layout;
use crate::core::status::STATUS_SIZE;
use crate::core::traffic::Traffic;
use crate::core::Context;
use crate::core::Precision;
use crate::cpu;
use crate::error::{Error, Result};
use crate::ops::cross_entropy::options::{CrossEntropyOptions, Strategy};
use crate::ops::cross_entropy::{CrossEntropyBuffers, TargetBuffer};
use crate::ops::elementwise::{ElementwiseBuffers, ElementwiseOptions};
use crate::ops::softmax::{SoftmaxBackwardBuffers, SoftmaxBuffers, SoftmaxKind, SoftmaxOptions};

// The row check: `check_rows` and what it reads and compares.
mod rows;

/// A case's data uploaded once, ready to be recorded again and again: its
/// op (cross-entropy: mean, class-index targets, gradient to its own
/// buffer; an elementwise loss: mean, no weights; softmax, or its backward
/// from y and dy) and the copy kernel over the same bytes.
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// let ctx = xent::Context::from_env()?;
/// let case = xent::bench::Prepared::new(&ctx, &xent::bench::BenchCase::new(&[4, 10]))?;
/// // The data uploaded: the benchmarks' generator's, seed 0x5eed.
/// let layout = xent::Layout::from_dims(&[4, 10])?;
/// assert_eq!((case.logits.clone(), case.targets.clone()), xent::bench::bench_data(&layout, 0x5eed));
/// assert!(case.elementwise_targets.is_empty()); // a cross-entropy case
/// # Ok(()) }
/// ```
pub struct Prepared<'a> {
    ctx: &'a Context,
    dims: Vec<usize>,
    /// The logits (the elementwise loss's or softmax's input, softmax
    /// backward's y), as uploaded (widened to f32 from the case's precision).
    pub logits: Vec<f32>,
    /// The class targets (cross-entropy), as uploaded.
    pub targets: Vec<i64>,
    /// The elementwise loss's targets (or softmax backward's upstream
    /// gradient), as uploaded.
    pub elementwise_targets: Vec<f32>,
    op: BenchOp,
    precision: Precision,
    strategy: Strategy,
    logits_buf: wgpu::Buffer,
    targets_buf: wgpu::Buffer,
    grad: wgpu::Buffer,
    loss: wgpu::Buffer,
    status: wgpu::Buffer,
    /// The copy's source and destination: the logits and the gradient for
    /// an op of two tensors; for one of three (an elementwise loss, softmax
    /// backward), buffers of 1.5 N elements, so that the copy moves its
    /// 12·N bytes.
    copy: Option<(wgpu::Buffer, wgpu::Buffer)>,
    /// A vocabulary split's shards (their logits and gradients).
    vocab: Option<VocabShards>,
}

impl<'a> Prepared<'a> {
    /// Generates and uploads the case's data ([`bench_data`], seed 0x5eed,
    /// mapped to a forward output's range for softmax backward; an
    /// elementwise loss's targets are the same generator's values (seed
    /// 0x7a67) mapped into [0, 1], softmax backward's dy into [-1, 1)).
    ///
    /// # Errors
    /// [`Error::InvalidShape`] for a bad case; [`Error::Gpu`] or
    /// [`Error::DeviceLost`] when the device refuses its buffers.
    ///
    /// ```
    /// let ctx = xent::Context::from_env()?;
    /// let case = xent::bench::Prepared::new(&ctx, &xent::bench::BenchCase::new(&[64, 1000]))?;
    /// case.run(|p, encoder| p.record_fused(encoder, None))?; // one timed unit
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn new(ctx: &'a Context, case: &BenchCase) -> Result<Self> {
        let layout = Layout::from_dims(&case.dims)?;
        // Refused before generating data a device could not hold (the
        // gradient's buffer is the logits' size).
        let bytes = layout.len() as u64 * case.precision.size();
        ctx.check_buffer_sizes(&case.dims, &[("logits", bytes)])?;
        let (logits, targets) = bench_data(&layout, 0x5eed);
        let logits = match case.op {
            BenchOp::SoftmaxBackward(kind) => forward_like(kind, &logits, layout.classes),
            _ => logits,
        };
        // The logits as stored (rounded to the case's precision), and their bytes.
        let (logits, logit_bytes) = stored(case.precision, &logits);
        let dev = &ctx.device;
        // Through a mapping at creation: a lost device is an error, not a panic.
        let init = |label: &str, contents: &[u8]| {
            crate::core::buffer_with(dev, label, contents, wgpu::BufferUsages::STORAGE)
        };
        let empty = |label: &str, size: u64| {
            dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        };
        let n = layout.len() as u64;
        let (targets_buf, elementwise_targets) = match case.op {
            BenchOp::CrossEntropy | BenchOp::VocabSplit(_) => {
                let targets32: Vec<i32> = targets.iter().map(|&t| t as i32).collect();
                let buffer = init("bench targets", bytemuck::cast_slice(&targets32))?;
                (buffer, Vec::new())
            }
            BenchOp::Softmax(_) => (empty("bench targets (unused)", 16), Vec::new()),
            BenchOp::Elementwise(_) | BenchOp::SoftmaxBackward(_) => {
                let (y, y_bytes) = stored(case.precision, &second_tensor(case.op, &layout));
                (init("bench targets", &y_bytes)?, y)
            }
        };
        // Half of the op's three tensors each way.
        let copy = (case.op.tensors() == 3).then(|| {
            let bytes = (3 * n * case.precision.size() / 2).next_multiple_of(16);
            (
                empty("bench copy source", bytes),
                empty("bench copy target", bytes),
            )
        });
        Ok(Self {
            ctx,
            vocab: VocabShards::of_case(ctx, case, &layout, &logits)?,
            logits_buf: init("bench logits", &logit_bytes)?,
            targets_buf,
            // COPY_SRC: `check_rows` reads rows of it back.
            grad: dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some("bench grad"),
                size: logit_bytes.len() as u64,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            loss: empty("bench loss", 4),
            status: empty("bench status", STATUS_SIZE),
            copy,
            dims: case.dims.clone(),
            logits,
            targets,
            elementwise_targets,
            op: case.op,
            precision: case.precision,
            strategy: case.strategy,
        })
    }

    /// Records the loss's forward + backward.
    ///
    /// # Errors
    /// As [`Context::record_cross_entropy`] or [`Context::record_elementwise_loss`].
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use xent::bench::{BenchCase, Prepared};
    /// let ctx = xent::Context::from_env()?;
    /// let mut encoder = ctx.device().create_command_encoder(&Default::default());
    /// Prepared::new(&ctx, &BenchCase::new(&[64, 1000]))?.record_fused(&mut encoder, None)?;
    /// // A forced strategy that cannot serve the shape is refused as it records.
    /// let pixels4 = Prepared::new(&ctx, &BenchCase::new(&[64, 1000]).with_strategy(xent::Strategy::Pixels4))?;
    /// assert!(matches!(pixels4.record_fused(&mut encoder, None), Err(xent::Error::Unsupported { .. })));
    /// ctx.queue().submit([encoder.finish()]);
    /// # Ok(()) }
    /// ```
    pub fn record_fused(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        timestamps: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) -> Result<()> {
        let timing = timestamps.map_or(Timing::Off, Timing::Whole);
        self.record_fused_timed(encoder, timing).map(|_| ())
    }

    pub(crate) fn record_fused_timed(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        timing: Timing<'_>,
    ) -> Result<Vec<&'static str>> {
        if let Some(v) = &self.vocab {
            let set = match timing {
                Timing::Off => None,
                Timing::Whole(writes) => Some(writes.query_set),
                Timing::PerDispatch { .. } => {
                    return Err(Error::Unsupported {
                        what: "a per-dispatch profile of a vocab-split case",
                        reason: "its calls are passes of their own with copies between; \
                                 it is timed whole"
                            .into(),
                    })
                }
            };
            return v.record(self.ctx, &self.split_call(), encoder, set);
        }
        let call = self.prepare()?;
        self.ctx.encode(encoder, &call, timing)?;
        Ok(call.entries())
    }

    /// The bytes the loss's call moves, counted from its plan, and its
    /// op's minimum (see [`Traffic`]).
    ///
    /// # Errors
    /// As [`Prepared::record_fused`].
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use xent::bench::{BenchCase, Prepared};
    /// let ctx = xent::Context::from_env()?;
    /// let traffic = Prepared::new(&ctx, &BenchCase::new(&[64, 1000]))?.traffic()?;
    /// // The logits and the i32 targets read, the gradient, the loss and the status written.
    /// assert_eq!(traffic.minimum, 2 * 4 * 64 * 1000 + 4 * 64 + 4 + 16);
    /// assert!(traffic.planned() >= traffic.minimum);
    /// # Ok(()) }
    /// ```
    pub fn traffic(&self) -> Result<Traffic> {
        if let Some(v) = &self.vocab {
            return v.traffic(self.ctx, &self.split_call());
        }
        Ok(self
            .prepare()?
            .traffic
            .expect("cross-entropy, the elementwise losses and softmax count their bytes"))
    }

    /// What a split case's calls share.
    fn split_call(&self) -> SplitCall<'_> {
        SplitCall {
            dims: &self.dims,
            precision: self.precision,
            targets: self.targets_buf.slice(..),
            loss: self.loss.slice(..),
            status: self.status.slice(..),
        }
    }

    /// The same plan and dispatches as the recording API's, for encoding
    /// with timestamps (one call: not a split's).
    fn prepare(&self) -> Result<Dispatches> {
        let (ctx, dims, precision) = (self.ctx, &self.dims[..], self.precision);
        let (input, second, output) = (
            self.logits_buf.slice(..),
            self.targets_buf.slice(..),
            self.grad.slice(..),
        );
        match self.op {
            BenchOp::CrossEntropy => {
                let buffers = CrossEntropyBuffers {
                    precision,
                    ..CrossEntropyBuffers::new(
                        input,
                        TargetBuffer::ClassI32(second),
                        self.loss.slice(..),
                        Some(output),
                        self.status.slice(..),
                    )
                };
                let opts = CrossEntropyOptions {
                    strategy: self.strategy,
                    ..Default::default()
                };
                ctx.prepare_cross_entropy(dims, &opts, &buffers)
            }
            BenchOp::Elementwise(loss) => {
                let status = self.status.slice(..);
                let buffers = ElementwiseBuffers {
                    precision,
                    ..ElementwiseBuffers::new(
                        input,
                        second,
                        self.loss.slice(..),
                        Some(output),
                        status,
                    )
                };
                ctx.prepare_elementwise(dims, &ElementwiseOptions::new(loss), &buffers)
            }
            BenchOp::Softmax(kind) => {
                let buffers = SoftmaxBuffers {
                    input,
                    output,
                    precision,
                };
                ctx.prepare_softmax(dims, &SoftmaxOptions { kind }, &buffers)
            }
            BenchOp::SoftmaxBackward(kind) => {
                let buffers = SoftmaxBackwardBuffers {
                    output: input,
                    grad_output: second,
                    grad_input: output,
                    precision,
                };
                ctx.prepare_softmax_backward(dims, &SoftmaxOptions { kind }, &buffers)
            }
            BenchOp::VocabSplit(_) => Err(Error::Unsupported {
                what: "a vocab-split case as one call",
                reason: "its shards' calls are recorded by `VocabShards`".into(),
            }),
        }
    }

    /// Records the copy kernel over the same bytes.
    ///
    /// # Errors
    /// [`Error::Gpu`] if the grid does not fit the device.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use xent::bench::{BenchCase, Prepared};
    /// let ctx = xent::Context::from_env()?;
    /// let case = Prepared::new(&ctx, &BenchCase::new(&[64, 1000]))?;
    /// // The copy writes the logits over the call's gradient…
    /// case.run(|p, encoder| { p.record_fused(encoder, None)?; p.record_copy(encoder, None) })?;
    /// // …which the row check runs the call again for.
    /// assert_eq!(case.check_rows(2)?.0, 2);
    /// # Ok(()) }
    /// ```
    pub fn record_copy(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        timestamps: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) -> Result<()> {
        let (src, dst) = match &self.copy {
            Some((src, dst)) => (src, dst),
            None => (&self.logits_buf, &self.grad),
        };
        self.ctx.record_copy(encoder, src, dst, timestamps)
    }

    /// The CPU path on the same data.
    pub(crate) fn run_cpu(&self) -> Result<()> {
        let (x, dims) = (&self.logits[..], &self.dims[..]);
        let second = &self.elementwise_targets[..];
        match self.op {
            BenchOp::CrossEntropy | BenchOp::VocabSplit(_) => {
                let opts = CrossEntropyOptions::default();
                cpu::cross_entropy(x, dims, &self.targets, None, &opts).map(|_| ())
            }
            BenchOp::Elementwise(loss) => {
                let opts = ElementwiseOptions::new(loss);
                cpu::elementwise_loss(x, second, dims, Default::default(), &opts).map(|_| ())
            }
            BenchOp::Softmax(SoftmaxKind::Softmax) => cpu::softmax(x, dims).map(|_| ()),
            BenchOp::Softmax(SoftmaxKind::LogSoftmax) => cpu::log_softmax(x, dims).map(|_| ()),
            BenchOp::SoftmaxBackward(SoftmaxKind::Softmax) => {
                cpu::softmax_backward(x, second, dims).map(|_| ())
            }
            BenchOp::SoftmaxBackward(SoftmaxKind::LogSoftmax) => {
                cpu::log_softmax_backward(x, second, dims).map(|_| ())
            }
        }
    }

    /// Records with `record`, submits and waits: one timed unit for criterion.
    ///
    /// # Errors
    /// As the recording; [`Error::Gpu`] if waiting fails.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use xent::{bench::{BenchCase, Prepared}, Error};
    /// let ctx = xent::Context::from_env()?;
    /// let case = Prepared::new(&ctx, &BenchCase::new(&[64, 1000]))?;
    /// case.run(|p, encoder| p.record_fused(encoder, None))?; // back once the GPU is done
    /// // A recording's error comes back, and nothing is submitted.
    /// let refused = case.run(|_, _| Err(Error::Unsupported { what: "a test", reason: String::new() }));
    /// assert!(matches!(refused, Err(Error::Unsupported { what: "a test", .. })));
    /// # Ok(()) }
    /// ```
    pub fn run(
        &self,
        record: impl FnOnce(&Self, &mut wgpu::CommandEncoder) -> Result<()>,
    ) -> Result<()> {
        let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
        record(self, &mut encoder)?;
        self.ctx.queue.submit([encoder.finish()]);
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))
    }
}
