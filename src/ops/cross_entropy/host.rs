//! The host API of cross-entropy: slices in, `Vec`s out. Each call checks
//! its plan, uploads, records with
//! [`Context::record_cross_entropy`](crate::Context::record_cross_entropy),
//! submits, waits and reads back; in verify mode it then holds the result
//! against the [`cpu`](crate::cpu) twin.

use super::cpu::{self, CrossEntropyOutput};
use super::plan::PlanInputs;
use super::validate;
use super::{CrossEntropyBuffers, TargetBuffer};
use crate::core::host_run::{HostRun, Readback};
use crate::core::shape::Layout;
use crate::core::Context;
use crate::core::Reduction;
use crate::core::{Element, Precision, Returns};
use crate::error::{Error, Result};
use crate::ops::cross_entropy::options::CrossEntropyOptions;
use crate::ops::cross_entropy::targets::{ClassIndex, Targets, Weights};
use crate::ops::cross_entropy::CrossEntropyStatus;

/// **Host API** of cross-entropy: slices in, `Vec`s out.
impl Context {
    /// Softmax cross-entropy loss and gradient on the GPU, PyTorch's
    /// `F.cross_entropy(logits, targets, weight, ignore_index, reduction,
    /// label_smoothing)` with class-index targets (i64, i32 or u8).
    ///
    /// `logits` has shape `dims` = `(C)`, `(N, C)` or `(N, C, d1, …, dK)`
    /// (class axis 1); `targets` the same shape without the class axis;
    /// `weights` length C. The formulas of each option are on
    /// [`CrossEntropyOptions`]. The gradient is returned when
    /// `returns.grad` is set. See [`Context::cross_entropy_with`](crate::Context::cross_entropy_with) for
    /// sample weights and probability targets.
    ///
    /// # Errors
    /// [`Error::InvalidShape`](crate::Error::InvalidShape), [`Error::ShapeMismatch`](crate::Error::ShapeMismatch),
    /// [`Error::WeightsLength`](crate::Error::WeightsLength), [`Error::InvalidOption`](crate::Error::InvalidOption);
    /// [`Error::Unsupported`](crate::Error::Unsupported) past the loop bound (see
    /// [`Context::record_cross_entropy`](crate::Context::record_cross_entropy)); every limit is checked before
    /// anything is uploaded;
    /// [`Error::TargetOutOfRange`](crate::Error::TargetOutOfRange) from the GPU's range check, naming the
    /// first bad target; [`Error::Mismatch`](crate::Error::Mismatch) in verify mode; [`Error::Gpu`](crate::Error::Gpu);
    /// [`Error::DeviceLost`](crate::Error::DeviceLost). [`Error::InvalidShape`](crate::Error::InvalidShape) also for a tensor larger
    /// than the device's largest buffer (`max_buffer_size`).
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// let ctx = xent::Context::from_env()?.with_verify(xent::Tolerance::default());
    /// let logits = [10.0f32, 2.0, 1.0, -2.0, -3.0, -1.0, -6.0, 0.0, -3.0, -5.0, -5.0, 4.0, 8.0, 2.0, 1.0];
    /// let out = ctx.cross_entropy(&logits, &[3, 5], &[1i64, 3, 2], None, &Default::default(), &Default::default())?;
    /// assert!((out.scalar().unwrap() - 3.7925).abs() < 1e-4);
    /// let grad = out.grad.unwrap(); // (softmax - onehot) / 3
    /// # Ok(()) }
    /// ```
    pub fn cross_entropy<E: Element, T: ClassIndex>(
        &self,
        logits: &[E],
        dims: &[usize],
        targets: &[T],
        weights: Option<&[f32]>,
        opts: &CrossEntropyOptions,
        returns: &Returns,
    ) -> Result<CrossEntropyOutput<f32>> {
        let weights = Weights {
            class: weights,
            sample: None,
        };
        self.cross_entropy_with(logits, dims, T::as_targets(targets), weights, opts, returns)
    }

    /// Cross-entropy against probability targets of the input's shape (soft
    /// labels, distillation, mixup), as PyTorch's `F.cross_entropy` with float
    /// targets: `mean` divides by the number of rows.
    ///
    /// # Errors
    /// As [`Context::cross_entropy_with`](crate::Context::cross_entropy_with).
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// let ctx = xent::Context::from_env()?;
    /// let out = ctx.cross_entropy_soft(&[0.0f32, 0.0], &[1, 2], &[0.25, 0.75], None, &Default::default(), &Default::default())?;
    /// assert!((out.loss[0] - std::f32::consts::LN_2).abs() < 1e-6);
    /// # Ok(()) }
    /// ```
    pub fn cross_entropy_soft<E: Element>(
        &self,
        input: &[E],
        dims: &[usize],
        probs: &[f32],
        weights: Option<&[f32]>,
        opts: &CrossEntropyOptions,
        returns: &Returns,
    ) -> Result<CrossEntropyOutput<f32>> {
        let weights = Weights {
            class: weights,
            sample: None,
        };
        self.cross_entropy_with(input, dims, Targets::Probs(probs), weights, opts, returns)
    }

    /// The whole loss family on the GPU: any [`Targets`] (i64, i32, u8 class
    /// indices, or probabilities), class and sample [`Weights`], and every
    /// option of [`CrossEntropyOptions`] (input kinds, smoothing, z-loss,
    /// log-sum-exp output, argmax count). u8 masks are uploaded as they are,
    /// with no widening copy. The input is stored on the device as `E` is,
    /// and the gradient written in it: `f32`; `half::bf16` on every device
    /// (two to a word, rounded to nearest even); `half::f16` on devices with
    /// `SHADER_F16`. Every sum is f32, and the returned gradient holds the
    /// stored results widened exactly to f32.
    ///
    /// # Errors
    /// [`Error::InvalidShape`](crate::Error::InvalidShape), [`Error::ShapeMismatch`](crate::Error::ShapeMismatch),
    /// [`Error::WeightsLength`](crate::Error::WeightsLength), [`Error::InvalidOption`](crate::Error::InvalidOption),
    /// [`Error::InvalidProbability`](crate::Error::InvalidProbability) (checked on upload); [`Error::Unsupported`](crate::Error::Unsupported)
    /// past the loop bound, or for f16 without `SHADER_F16`;
    /// [`Error::TargetOutOfRange`](crate::Error::TargetOutOfRange) from the GPU's range check;
    /// [`Error::Mismatch`](crate::Error::Mismatch) in verify mode (an f16 or bf16 gradient held to
    /// [`Tolerance::F16`](crate::Tolerance::F16) or [`Tolerance::BF16`](crate::Tolerance::BF16));
    /// [`Error::Gpu`](crate::Error::Gpu); [`Error::DeviceLost`](crate::Error::DeviceLost).
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use half::{bf16, f16};
    /// use xent::{CrossEntropyOptions, Targets, Weights};
    /// let ctx = xent::Context::from_env()?.with_verify(xent::Tolerance::default());
    /// // A 1 x 3 x 2 x 2 map with a u8 mask; 255 is ignored.
    /// let logits = [0.1f32, 0.2, 0.3, 0.4, 1.0, 0.0, -1.0, 0.5, 0.0, 0.0, 2.0, -0.5];
    /// let mask = [1u8, 0, 255, 1]; // each pixel's target is its argmax; pixel 2 is ignored
    /// let opts = CrossEntropyOptions { ignore_index: 255, ..Default::default() };
    /// let returns = xent::Returns { correct: true, ..Default::default() };
    /// let out = ctx.cross_entropy_with(&logits, &[1, 3, 2, 2], Targets::U8(&mask), Weights::none(), &opts, &returns)?;
    /// assert_eq!(out.correct, Some(3));
    /// // bf16 logits and gradient on the device.
    /// let logits: Vec<bf16> = [2.0f32, 0.0, 0.0, 2.0].iter().map(|&v| bf16::from_f32(v)).collect();
    /// let out = ctx.cross_entropy_with(&logits, &[2, 2], Targets::I64(&[0, 1]), Weights::none(), &Default::default(), &Default::default())?;
    /// assert!((out.loss[0] - 0.126928).abs() < 1e-5);
    /// // (p − 1) / 2 = −0.0596, held in bf16's 8 significant bits.
    /// let g = out.grad.unwrap()[0];
    /// assert!((g + 0.0596).abs() < 3e-4 && bf16::from_f32(g).to_f32() == g);
    /// // f16, where the device has SHADER_F16.
    /// let logits: Vec<f16> = [2.0f32, 0.0, 0.0, 2.0].iter().map(|&v| f16::from_f32(v)).collect();
    /// match ctx.cross_entropy_with(&logits, &[2, 2], Targets::I64(&[0, 1]), Weights::none(), &Default::default(), &Default::default()) {
    ///     Ok(out) => assert!((out.loss[0] - 0.126928).abs() < 1e-5),
    ///     Err(xent::Error::Unsupported { .. }) => {} // no SHADER_F16 here
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn cross_entropy_with<E: Element>(
        &self,
        input: &[E],
        dims: &[usize],
        targets: Targets<'_>,
        weights: Weights<'_>,
        opts: &CrossEntropyOptions,
        returns: &Returns,
    ) -> Result<CrossEntropyOutput<f32>> {
        let input = HostInput {
            bytes: bytemuck::cast_slice(input),
            len: input.len(),
            precision: E::PRECISION,
        };
        self.run_cross_entropy(input, dims, (targets, weights), opts, returns)
    }

    fn run_cross_entropy(
        &self,
        input: HostInput<'_>,
        dims: &[usize],
        (targets, weights): (Targets<'_>, Weights<'_>),
        opts: &CrossEntropyOptions,
        returns: &Returns,
    ) -> Result<CrossEntropyOutput<f32>> {
        let layout = Layout::from_dims(dims)?;
        let device_targets =
            check_host_inputs(&layout, input.len, targets, weights, opts, returns)?;
        self.check_host_plan(&layout, &input, &device_targets, weights, opts, returns)?;
        let run = self.host_run();
        // The gradient is written in place over the uploaded input (padded
        // to whole vec4s, so that every row strategy can run): one
        // input-sized buffer on the device instead of two.
        let logits = run.upload_out("xent input", input.bytes)?;
        let targets_buf = run.upload("xent targets", device_targets.bytes())?;
        let class = run.upload_opt("xent class weights", weights.class)?;
        let sample = run.upload_opt("xent sample weights", weights.sample)?;
        let outputs = OutputBuffers::new(&run, layout.rows(), opts.reduction, returns);
        let mut encoder = run.encoder();
        let buffers = CrossEntropyBuffers {
            weights: class.as_ref().map(|b| b.slice(..)),
            sample_weights: sample.as_ref().map(|b| b.slice(..)),
            in_place: returns.grad,
            precision: input.precision,
            ..outputs.buffers(logits.slice(..), device_targets.buffer(&targets_buf))
        };
        self.record_cross_entropy(&mut encoder, dims, opts, &buffers)?;
        let mut wanted = outputs.wanted();
        wanted.extend(returns.grad.then_some(&logits));
        let mut read = run.finish(encoder, &wanted, "running cross-entropy")?;
        let mut out = read_outputs(&mut read, &layout, opts, returns)?;
        out.grad = returns
            .grad
            .then(|| read.widened(input.precision, layout.len()));
        self.inject_fault(out.grad.as_mut(), dims);
        // The CPU on the values as the device holds them.
        let input32 = || input.precision.widen(input.bytes, input.len);
        self.verify_cross_entropy(
            &out,
            input32,
            dims,
            (targets, weights),
            opts,
            input.precision,
        )?;
        Ok(out)
    }

    /// Every limit the recording would meet, before anything is uploaded:
    /// the buffer sizes, f16 support, and the same plan (the uploads are
    /// padded to whole vec4s).
    fn check_host_plan(
        &self,
        layout: &Layout,
        input: &HostInput<'_>,
        targets: &DeviceTargets<'_>,
        weights: Weights<'_>,
        opts: &CrossEntropyOptions,
        returns: &Returns,
    ) -> Result<()> {
        let per_row = if returns.lse
            || returns.argmax
            || returns.entropy
            || opts.reduction == Reduction::None
        {
            layout.rows() as u64 * 4
        } else {
            0
        };
        let sizes = [
            ("input", input.bytes.len() as u64),
            ("targets", targets.bytes().len() as u64),
            ("per-row output", per_row),
        ];
        self.check_buffer_sizes(&layout.dims, &sizes)?;
        input
            .precision
            .supported_on(&self.device, "f16 logits and gradients")?;
        let plan = PlanInputs {
            elem: input.precision.size(),
            chunked_targets: matches!(targets.targets, Targets::Probs(_)),
            write_grad: returns.grad,
            weights: weights.class.is_some(),
            correct: returns.correct,
            argmax: returns.argmax,
            entropy: returns.entropy,
            reduction: opts.reduction,
            strategy: opts.strategy,
            vocab: false,
        };
        self.plan_cross_entropy(layout, plan).map(|_| ())
    }

    /// Verify mode: holds `out` to the CPU twin on `input` (the values as
    /// the device holds them), a half-precision gradient to its type's
    /// tolerance. Shared by the split call.
    pub(crate) fn verify_cross_entropy(
        &self,
        out: &CrossEntropyOutput<f32>,
        input: impl FnOnce() -> Vec<f32>,
        dims: &[usize],
        (targets, weights): (Targets<'_>, Weights<'_>),
        opts: &CrossEntropyOptions,
        precision: Precision,
    ) -> Result<()> {
        let Some(tol) = self.verify else {
            return Ok(());
        };
        let reference = cpu::cross_entropy_with(&input(), dims, targets, weights, opts)?;
        tol.compare_cross_entropy(out, &reference, &precision.tolerance(tol))
    }
}

/// The checks of a host call's inputs before anything is uploaded (shapes,
/// lengths, weights, options, returns), and its targets as the GPU reads
/// them. Shared by the split call.
pub(crate) fn check_host_inputs<'a>(
    layout: &Layout,
    len: usize,
    targets: Targets<'a>,
    weights: Weights<'_>,
    opts: &CrossEntropyOptions,
    returns: &Returns,
) -> Result<DeviceTargets<'a>> {
    let widen = |w: &[f32]| w.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
    let (class64, sample64) = (weights.class.map(widen), weights.sample.map(widen));
    let (class64, sample64) = (class64.as_deref(), sample64.as_deref());
    validate::inputs(layout, len, &targets, class64, sample64, opts)?;
    opts.check_returns(returns)?;
    DeviceTargets::new(layout, targets, opts.ignore_index)
}

/// A host call's targets as the GPU reads them: i64 class indices narrowed
/// to i32; i32, u8 and probabilities as they are (u8 masks with no widening
/// copy).
pub(crate) struct DeviceTargets<'a> {
    pub(crate) targets: Targets<'a>,
    narrowed: Option<Vec<i32>>,
}

impl<'a> DeviceTargets<'a> {
    fn new(layout: &Layout, targets: Targets<'a>, ignore_index: i64) -> Result<Self> {
        let narrowed = match targets {
            Targets::I64(t) => Some(narrow_targets(layout, t, ignore_index)?),
            _ => None,
        };
        Ok(Self { targets, narrowed })
    }

    /// The bytes to upload.
    pub(crate) fn bytes(&self) -> &[u8] {
        match (&self.targets, &self.narrowed) {
            (_, Some(t)) => bytemuck::cast_slice(t),
            (Targets::I32(t), _) => bytemuck::cast_slice(t),
            (Targets::U8(t), _) => t,
            (Targets::Probs(t), _) => bytemuck::cast_slice(t),
            (Targets::I64(_), None) => unreachable!("i64 targets are narrowed on creation"),
        }
    }

    /// `buffer`, holding [`DeviceTargets::bytes`] (or, for probabilities,
    /// a slice of them), as the recording API takes it.
    pub(crate) fn buffer<'b>(&self, buffer: &'b wgpu::Buffer) -> TargetBuffer<'b> {
        match self.targets {
            Targets::I64(_) | Targets::I32(_) => TargetBuffer::ClassI32(buffer.slice(..)),
            Targets::U8(_) => TargetBuffer::ClassU8(buffer.slice(..)),
            Targets::Probs(_) => TargetBuffer::Probs(buffer.slice(..)),
        }
    }
}

/// The outputs of a host call other than the gradient (written in place
/// over the input): loss, status, and the per-row outputs asked for.
pub(crate) struct OutputBuffers {
    loss: wgpu::Buffer,
    status: wgpu::Buffer,
    lse: Option<wgpu::Buffer>,
    correct: Option<wgpu::Buffer>,
    argmax: Option<wgpu::Buffer>,
    entropy: Option<wgpu::Buffer>,
}

impl OutputBuffers {
    pub(crate) fn new(
        run: &HostRun<'_>,
        rows: usize,
        reduction: Reduction,
        returns: &Returns,
    ) -> Self {
        Self {
            loss: run.output("xent loss", reduction.loss_len(rows)),
            status: run.status(),
            lse: run.output_if(returns.lse, "xent lse", rows),
            correct: run.output_if(returns.correct, "xent correct", 1),
            argmax: run.output_if(returns.argmax, "xent argmax", rows),
            entropy: run.output_if(returns.entropy, "xent entropy", rows),
        }
    }

    /// The recording API's buffers with these outputs (no weights, no
    /// gradient written, f32).
    pub(crate) fn buffers<'b>(
        &'b self,
        logits: wgpu::BufferSlice<'b>,
        targets: TargetBuffer<'b>,
    ) -> CrossEntropyBuffers<'b> {
        CrossEntropyBuffers {
            lse: self.lse.as_ref().map(|b| b.slice(..)),
            correct: self.correct.as_ref().map(|b| b.slice(..)),
            argmax: self.argmax.as_ref().map(|b| b.slice(..)),
            entropy: self.entropy.as_ref().map(|b| b.slice(..)),
            ..CrossEntropyBuffers::new(
                logits,
                targets,
                self.loss.slice(..),
                None,
                self.status.slice(..),
            )
        }
    }

    /// The outputs to read back, in the order [`read_outputs`] takes them.
    pub(crate) fn wanted(&self) -> Vec<&wgpu::Buffer> {
        let mut wanted = vec![&self.status, &self.loss];
        wanted.extend(self.lse.as_ref());
        wanted.extend(self.correct.as_ref());
        wanted.extend(self.argmax.as_ref());
        wanted.extend(self.entropy.as_ref());
        wanted
    }
}

/// Reads [`OutputBuffers::wanted`]: the status (its error, if it reports
/// bad input), then the outputs; the gradient is left to the caller.
pub(crate) fn read_outputs(
    read: &mut Readback,
    layout: &Layout,
    opts: &CrossEntropyOptions,
    returns: &Returns,
) -> Result<CrossEntropyOutput<f32>> {
    let status: CrossEntropyStatus = read.status();
    status.check(layout, opts.ignore_index)?;
    Ok(CrossEntropyOutput {
        loss: read.f32s(opts.reduction.loss_len(layout.rows())),
        loss_dims: opts.reduction.loss_dims(&layout.target_dims()),
        grad: None,
        lse: returns.lse.then(|| read.f32s(layout.rows())),
        correct: returns.correct.then(|| read.count()),
        argmax: returns.argmax.then(|| read.i64s(layout.rows())),
        entropy: returns.entropy.then(|| read.f32s(layout.rows())),
        magnitude: None,
    })
}

/// The host API's input, in the element type it goes to the device in.
#[derive(Clone, Copy)]
struct HostInput<'a> {
    bytes: &'a [u8],
    len: usize,
    precision: Precision,
}

/// Targets as the GPU's i32. A value that does not fit is out of range for
/// any class count the kernels index, so the range check names it.
pub(crate) fn narrow_targets(
    layout: &Layout,
    targets: &[i64],
    ignore_index: i64,
) -> Result<Vec<i32>> {
    match targets.iter().map(|&t| i32::try_from(t)).collect() {
        Ok(v) => Ok(v),
        Err(_) => {
            validate::target_range(layout, targets, ignore_index)?;
            Err(Error::InvalidShape {
                shape: layout.dims.clone(),
                reason: "more than 2^31 classes: targets do not fit the GPU's i32".into(),
            })
        }
    }
}
