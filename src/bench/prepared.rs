//! A benchmark case's data, uploaded once and recorded again and again.

use super::{bench_data, BenchCase};
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
use crate::ops::elementwise::{ElementwiseBuffers, ElementwiseLoss, ElementwiseOptions};

/// A case's data uploaded once, ready to be recorded again and again: the
/// loss (cross-entropy: mean, class-index targets, gradient to its own
/// buffer; an elementwise loss: mean, no weights) and the copy kernel over
/// the same bytes.
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
    /// The logits (or the elementwise loss's input), as uploaded (widened to
    /// f32 from the case's precision).
    pub logits: Vec<f32>,
    /// The class targets (cross-entropy), as uploaded.
    pub targets: Vec<i64>,
    /// The elementwise loss's targets, as uploaded.
    pub elementwise_targets: Vec<f32>,
    loss_kind: Option<ElementwiseLoss>,
    precision: Precision,
    strategy: Strategy,
    logits_buf: wgpu::Buffer,
    targets_buf: wgpu::Buffer,
    grad: wgpu::Buffer,
    loss: wgpu::Buffer,
    status: wgpu::Buffer,
    /// The copy's source and destination: the logits and the gradient for
    /// cross-entropy; for an elementwise loss, buffers of 1.5 N elements,
    /// so that the copy moves its 12·N bytes.
    copy: Option<(wgpu::Buffer, wgpu::Buffer)>,
}

impl<'a> Prepared<'a> {
    /// Generates and uploads the case's data ([`bench_data`], seed 0x5eed;
    /// an elementwise loss's targets are the same generator's values mapped
    /// into [0, 1]).
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
        let (targets_buf, elementwise_targets, copy) = match case.loss {
            None => {
                let targets32: Vec<i32> = targets.iter().map(|&t| t as i32).collect();
                (
                    init("bench targets", bytemuck::cast_slice(&targets32))?,
                    Vec::new(),
                    None,
                )
            }
            Some(_) => {
                let y: Vec<f32> = bench_data(&layout, 0x7a67)
                    .0
                    .iter()
                    .map(|v| (v + 10.0) / 20.0)
                    .collect();
                let (y, y_bytes) = stored(case.precision, &y);
                // Half of the loss's input + target + gradient each way.
                let bytes = (3 * n * case.precision.size() / 2).next_multiple_of(16);
                let copy = (
                    empty("bench copy source", bytes),
                    empty("bench copy target", bytes),
                );
                (init("bench targets", &y_bytes)?, y, Some(copy))
            }
        };
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
            loss_kind: case.loss,
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
            .expect("cross-entropy and the elementwise losses count their bytes"))
    }

    /// The same plan and dispatches as the recording API's, for encoding
    /// with timestamps.
    fn prepare(&self) -> Result<Dispatches> {
        Ok(match self.loss_kind {
            None => {
                let buffers = CrossEntropyBuffers {
                    precision: self.precision,
                    ..CrossEntropyBuffers::new(
                        self.logits_buf.slice(..),
                        TargetBuffer::ClassI32(self.targets_buf.slice(..)),
                        self.loss.slice(..),
                        Some(self.grad.slice(..)),
                        self.status.slice(..),
                    )
                };
                let opts = CrossEntropyOptions {
                    strategy: self.strategy,
                    ..Default::default()
                };
                self.ctx
                    .prepare_cross_entropy(&self.dims, &opts, &buffers)?
            }
            Some(loss) => {
                let buffers = ElementwiseBuffers::new(
                    self.logits_buf.slice(..),
                    self.targets_buf.slice(..),
                    self.loss.slice(..),
                    Some(self.grad.slice(..)),
                    self.status.slice(..),
                );
                let buffers = ElementwiseBuffers {
                    precision: self.precision,
                    ..buffers
                };
                self.ctx.prepare_elementwise(
                    &self.dims,
                    &ElementwiseOptions::new(loss),
                    &buffers,
                )?
            }
        })
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
        if self.loss_kind.is_some() || layout.inner != 1 {
            return Err(Error::Unsupported {
                what: "a row-sampled check",
                reason: format!(
                    "it takes cross-entropy cases of (N, C); {:?} is not one",
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
        let opts = CrossEntropyOptions {
            reduction: crate::Reduction::Sum,
            ..Default::default()
        };
        let scale = 1.0 / rows as f64;
        let (mut at, mut largest) = (0usize, 0.0f64);
        for (&r, &(lo, hi)) in picks.iter().zip(&spans) {
            let skip = (r as u64 * row_bytes - lo) as usize;
            let gpu = self.precision.widen(&bytes[at + skip..], classes);
            at += (hi - lo) as usize;
            let x = &self.logits[r * classes..(r + 1) * classes];
            let t = crate::Targets::I64(&self.targets[r..r + 1]);
            let want = cpu::cross_entropy_with(x, &[1, classes], t, crate::Weights::none(), &opts)?;
            let mut reference = want
                .grad_reference()
                .ok_or_else(|| Error::Gpu("the CPU path returned no gradient".to_string()))?;
            reference.value.iter_mut().for_each(|v| *v *= scale);
            reference.magnitude.iter_mut().for_each(|v| *v *= scale);
            reference
                .flush
                .iter_mut()
                .for_each(|v| *v = *v * scale + 1.0);
            // A mismatch names its element in the whole gradient.
            tol.check("grad", &gpu, &reference).map_err(|mut e| {
                if let Error::Mismatch { index, .. } = &mut e {
                    *index += r * classes;
                }
                e
            })?;
            largest = largest.max(crate::max_abs_diff(&gpu, &reference.value));
        }
        Ok((k, largest))
    }

    /// The CPU path on the same data.
    pub(crate) fn run_cpu(&self) -> Result<()> {
        match self.loss_kind {
            None => cpu::cross_entropy(
                &self.logits,
                &self.dims,
                &self.targets,
                None,
                &CrossEntropyOptions::default(),
            )
            .map(|_| ()),
            Some(loss) => cpu::elementwise_loss(
                &self.logits,
                &self.elementwise_targets,
                &self.dims,
                Default::default(),
                &ElementwiseOptions::new(loss),
            )
            .map(|_| ()),
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

/// `values` as the device stores them in `precision` (widened back to f32
/// exactly) and their bytes, in whole vec4s as the host API uploads them.
fn stored(precision: Precision, values: &[f32]) -> (Vec<f32>, Vec<u8>) {
    let (widened, mut bytes): (Vec<f32>, Vec<u8>) = match precision {
        Precision::F32 => (values.to_vec(), bytemuck::cast_slice(values).to_vec()),
        Precision::F16 => {
            let h: Vec<half::f16> = values.iter().map(|&v| half::f16::from_f32(v)).collect();
            (
                h.iter().map(|v| v.to_f32()).collect(),
                bytemuck::cast_slice(&h).to_vec(),
            )
        }
        Precision::BF16 => {
            let h: Vec<half::bf16> = values.iter().map(|&v| half::bf16::from_f32(v)).collect();
            (
                h.iter().map(|v| v.to_f32()).collect(),
                bytemuck::cast_slice(&h).to_vec(),
            )
        }
    };
    bytes.resize(bytes.len().next_multiple_of(16), 0);
    (widened, bytes)
}
