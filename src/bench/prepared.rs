//! A benchmark case's data, uploaded once and recorded again and again.

use super::data::{forward_like, second_tensor, stored};
use super::{bench_data, BenchCase, BenchOp};
use crate::core::encode::{Dispatches, Timing};
use crate::core::reference::Reference;
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
            BenchOp::CrossEntropy => {
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
        Ok(self
            .prepare()?
            .traffic
            .expect("cross-entropy, the elementwise losses and softmax count their bytes"))
    }

    /// The same plan and dispatches as the recording API's, for encoding
    /// with timestamps.
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

    /// Reads back the gradient of `k` rows spread evenly over the case (its
    /// first and last among them) from the last recorded run and holds each
    /// to the CPU path on that row alone, scaled by the mean's 1/N (the
    /// bench's targets are all in range, unweighted), under the case
    /// precision's tolerance: the check of a case too large for the CPU to
    /// compute whole (past 2^32 elements). Returns the rows checked and
    /// their largest |GPU − CPU|.
    ///
    /// # Errors
    /// [`Error::Mismatch`] naming the first element out of tolerance;
    /// [`Error::Unsupported`] for an elementwise case or a map (inner > 1);
    /// [`Error::Gpu`] if the readback fails.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use xent::bench::{BenchCase, Prepared};
    /// let ctx = xent::Context::from_env()?;
    /// let case = Prepared::new(&ctx, &BenchCase::new(&[8, 100]))?;
    /// let (rows, diff) = case.check_rows(3)?; // rows 0, 3 and 7
    /// assert!(rows == 3 && diff < 1e-4);
    /// assert_eq!(case.check_rows(100)?.0, 8); // at most every row
    /// let mse = Prepared::new(&ctx, &BenchCase::elementwise(xent::ElementwiseLoss::Mse, &[8, 100]))?;
    /// assert!(matches!(mse.check_rows(3), Err(xent::Error::Unsupported { .. })));
    /// # Ok(()) }
    /// ```
    pub fn check_rows(&self, k: usize) -> Result<(usize, f64)> {
        let layout = Layout::from_dims(&self.dims)?;
        let (rows, classes) = (layout.rows(), layout.classes);
        if matches!(self.op, BenchOp::Elementwise(_)) || layout.inner != 1 {
            return Err(Error::Unsupported {
                what: "a row-sampled check",
                reason: format!(
                    "it takes cross-entropy and softmax cases of (N, C); {} {:?} is not one",
                    self.op.name(),
                    self.dims
                ),
            });
        }
        let k = k.min(rows);
        if k == 0 {
            return Ok((0, 0.0));
        }
        let picks: Vec<usize> = (0..k).map(|i| i * (rows - 1) / (k - 1).max(1)).collect();
        // The copy kernel, timed in turns with the call, overwrites the
        // gradient buffer: the call runs once more first.
        self.run(|p, encoder| p.record_fused(encoder, None))?;
        // Copies run in whole words: each row's bytes widened to them.
        let row_bytes = classes as u64 * self.precision.size();
        let spans: Vec<(u64, u64)> = picks
            .iter()
            .map(|&r| {
                let start = r as u64 * row_bytes;
                (start / 4 * 4, (start + row_bytes).next_multiple_of(4))
            })
            .collect();
        let total: u64 = spans.iter().map(|(lo, hi)| hi - lo).sum();
        let sample = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("bench sampled rows"),
            size: total,
            usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
        let mut at = 0;
        for &(lo, hi) in &spans {
            encoder.copy_buffer_to_buffer(&self.grad, lo, &sample, at, hi - lo);
            at += hi - lo;
        }
        let bytes = self.ctx.download(encoder, &[&sample])?.remove(0);
        let tol = self.precision.tolerance(crate::Tolerance::default());
        let (mut at, mut largest) = (0usize, 0.0f64);
        for (&r, &(lo, hi)) in picks.iter().zip(&spans) {
            let skip = (r as u64 * row_bytes - lo) as usize;
            let gpu = self.precision.widen(&bytes[at + skip..], classes);
            at += (hi - lo) as usize;
            let reference = self.row_reference(r, classes, rows)?;
            // A mismatch names its element in the whole output.
            tol.check(self.op.name(), &gpu, &reference)
                .map_err(|mut e| {
                    if let Error::Mismatch { index, .. } = &mut e {
                        *index += r * classes;
                    }
                    e
                })?;
            largest = largest.max(crate::max_abs_diff(&gpu, &reference.value));
        }
        Ok((k, largest))
    }

    /// The CPU path's output (the gradient, for cross-entropy) of row `r`
    /// alone, of `classes` classes: cross-entropy's scaled by the mean's
    /// 1/`rows` (the bench's targets are all in range, unweighted).
    fn row_reference(&self, r: usize, classes: usize, rows: usize) -> Result<Reference> {
        let x = &self.logits[r * classes..(r + 1) * classes];
        let row = [1, classes];
        let dy = || &self.elementwise_targets[r * classes..(r + 1) * classes];
        match self.op {
            BenchOp::Softmax(SoftmaxKind::Softmax) => cpu::softmax_reference(x, &row),
            BenchOp::Softmax(SoftmaxKind::LogSoftmax) => cpu::log_softmax_reference(x, &row),
            BenchOp::SoftmaxBackward(SoftmaxKind::Softmax) => {
                cpu::softmax_backward_reference(x, dy(), &row)
            }
            BenchOp::SoftmaxBackward(SoftmaxKind::LogSoftmax) => {
                cpu::log_softmax_backward_reference(x, dy(), &row)
            }
            BenchOp::CrossEntropy | BenchOp::Elementwise(_) => {
                let opts = CrossEntropyOptions {
                    reduction: crate::Reduction::Sum,
                    ..Default::default()
                };
                let t = crate::Targets::I64(&self.targets[r..r + 1]);
                let want = cpu::cross_entropy_with(x, &row, t, crate::Weights::none(), &opts)?;
                let mut reference = want
                    .grad_reference()
                    .ok_or_else(|| Error::Gpu("the CPU path returned no gradient".to_string()))?;
                let scale = 1.0 / rows as f64;
                reference.value.iter_mut().for_each(|v| *v *= scale);
                reference.magnitude.iter_mut().for_each(|v| *v *= scale);
                reference
                    .flush
                    .iter_mut()
                    .for_each(|v| *v = *v * scale + 1.0);
                Ok(reference)
            }
        }
    }

    /// The CPU path on the same data.
    pub(crate) fn run_cpu(&self) -> Result<()> {
        let (x, dims) = (&self.logits[..], &self.dims[..]);
        let second = &self.elementwise_targets[..];
        match self.op {
            BenchOp::CrossEntropy => {
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
