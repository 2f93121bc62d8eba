//! The host API of cross-entropy: slices in, `Vec`s out. Each call checks
//! its plan, uploads, records with
//! [`Context::record_cross_entropy`](crate::Context::record_cross_entropy),
//! submits, waits and reads back; in verify mode it then holds the result
//! against the [`cpu`](crate::cpu) twin.

use super::cpu::{self, CrossEntropyOutput};
use super::validate;
use super::{CrossEntropyBuffers, TargetBuffer};
use crate::core::shape::Layout;
use crate::core::status::{Status, STATUS_SIZE};
use crate::core::transfer::{to_f32, STORAGE_OUT};
use crate::core::Context;
use crate::core::Precision;
use crate::core::Reduction;
use crate::error::{Error, GpuScope, Result};
use crate::ops::cross_entropy::options::CrossEntropyOptions;
use crate::ops::cross_entropy::targets::{ClassIndex, Targets, Weights};

impl Context {
    /// Softmax cross-entropy loss and gradient on the GPU, PyTorch's
    /// `F.cross_entropy(logits, targets, weight, ignore_index, reduction,
    /// label_smoothing)` with class-index targets (i64, i32 or u8).
    ///
    /// `logits` has shape `dims` = `(C)`, `(N, C)` or `(N, C, d1, …, dK)`
    /// (class axis 1); `targets` the same shape without the class axis;
    /// `weights` length C. The formulas of each option are on
    /// [`CrossEntropyOptions`]. The gradient is returned when
    /// `opts.compute_grad` is set. See [`Context::cross_entropy_with`](crate::Context::cross_entropy_with) for
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
    /// let out = ctx.cross_entropy(&logits, &[3, 5], &[1i64, 3, 2], None, &Default::default())?;
    /// assert!((out.scalar().unwrap() - 3.7925).abs() < 1e-4);
    /// let grad = out.grad.unwrap(); // (softmax - onehot) / 3
    /// # Ok(()) }
    /// ```
    pub fn cross_entropy<T: ClassIndex>(
        &self,
        logits: &[f32],
        dims: &[usize],
        targets: &[T],
        weights: Option<&[f32]>,
        opts: &CrossEntropyOptions,
    ) -> Result<CrossEntropyOutput<f32>> {
        let weights = Weights {
            class: weights,
            sample: None,
        };
        self.cross_entropy_with(logits, dims, T::as_targets(targets), weights, opts)
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
    /// let out = ctx.cross_entropy_soft(&[0.0, 0.0], &[1, 2], &[0.25, 0.75], None, &Default::default())?;
    /// assert!((out.loss[0] - std::f32::consts::LN_2).abs() < 1e-6);
    /// # Ok(()) }
    /// ```
    pub fn cross_entropy_soft(
        &self,
        input: &[f32],
        dims: &[usize],
        probs: &[f32],
        weights: Option<&[f32]>,
        opts: &CrossEntropyOptions,
    ) -> Result<CrossEntropyOutput<f32>> {
        let weights = Weights {
            class: weights,
            sample: None,
        };
        self.cross_entropy_with(input, dims, Targets::Probs(probs), weights, opts)
    }

    /// The whole loss family on the GPU: any [`Targets`] (i64, i32, u8 class
    /// indices, or probabilities), class and sample [`Weights`], and every
    /// option of [`CrossEntropyOptions`] (input kinds, smoothing, z-loss,
    /// log-sum-exp output, argmax count). u8 masks are uploaded as they are,
    /// with no widening copy.
    ///
    /// # Errors
    /// [`Error::InvalidShape`](crate::Error::InvalidShape), [`Error::ShapeMismatch`](crate::Error::ShapeMismatch),
    /// [`Error::WeightsLength`](crate::Error::WeightsLength), [`Error::InvalidOption`](crate::Error::InvalidOption),
    /// [`Error::InvalidProbability`](crate::Error::InvalidProbability) (checked on upload); [`Error::Unsupported`](crate::Error::Unsupported)
    /// past the loop bound;
    /// [`Error::TargetOutOfRange`](crate::Error::TargetOutOfRange) from the GPU's range check;
    /// [`Error::Mismatch`](crate::Error::Mismatch) in verify mode; [`Error::Gpu`](crate::Error::Gpu); [`Error::DeviceLost`](crate::Error::DeviceLost).
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use xent::{CrossEntropyOptions, Targets, Weights};
    /// let ctx = xent::Context::from_env()?.with_verify(xent::Tolerance::default());
    /// // A 1 x 3 x 2 x 2 map with a u8 mask; 255 is ignored.
    /// let logits = [0.1f32, 0.2, 0.3, 0.4, 1.0, 0.0, -1.0, 0.5, 0.0, 0.0, 2.0, -0.5];
    /// let mask = [1u8, 0, 255, 1]; // each pixel's target is its argmax; pixel 2 is ignored
    /// let opts = CrossEntropyOptions { ignore_index: 255, count_correct: true, ..Default::default() };
    /// let out = ctx.cross_entropy_with(&logits, &[1, 3, 2, 2], Targets::U8(&mask), Weights::none(), &opts)?;
    /// assert_eq!(out.correct, Some(3));
    /// # Ok(()) }
    /// ```
    pub fn cross_entropy_with(
        &self,
        input: &[f32],
        dims: &[usize],
        targets: Targets<'_>,
        weights: Weights<'_>,
        opts: &CrossEntropyOptions,
    ) -> Result<CrossEntropyOutput<f32>> {
        self.run_cross_entropy(HostInput::F32(input), dims, targets, weights, opts)
    }

    /// [`Context::cross_entropy_with`](crate::Context::cross_entropy_with) for f16 logits: the input is read and
    /// the gradient written in f16 on the device (half the traffic), every
    /// sum is accumulated in f32. The returned gradient holds the f16 results
    /// widened exactly to f32; the loss is f32. Needs `SHADER_F16`.
    ///
    /// # Errors
    /// [`Error::Unsupported`](crate::Error::Unsupported) on a device without `SHADER_F16`; otherwise as
    /// [`Context::cross_entropy_with`](crate::Context::cross_entropy_with) (verify mode holds the gradient to
    /// [`Tolerance::F16`](crate::Tolerance::F16)).
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use half::f16;
    /// let ctx = xent::Context::from_env()?;
    /// let logits: Vec<f16> = [2.0f32, 0.0, 0.0, 2.0].iter().map(|&v| f16::from_f32(v)).collect();
    /// match ctx.cross_entropy_f16(&logits, &[2, 2], xent::Targets::I64(&[0, 1]), xent::Weights::none(), &Default::default()) {
    ///     Ok(out) => assert!((out.loss[0] - 0.126928).abs() < 1e-5),
    ///     Err(xent::Error::Unsupported { .. }) => {} // no SHADER_F16 here
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn cross_entropy_f16(
        &self,
        input: &[half::f16],
        dims: &[usize],
        targets: Targets<'_>,
        weights: Weights<'_>,
        opts: &CrossEntropyOptions,
    ) -> Result<CrossEntropyOutput<f32>> {
        self.run_cross_entropy(HostInput::F16(input), dims, targets, weights, opts)
    }

    /// [`Context::cross_entropy_with`](crate::Context::cross_entropy_with)
    /// for bf16 logits, on every device: the input is read and the gradient
    /// written in bf16 (two to a word on the device, rounded to nearest
    /// even), every sum is accumulated in f32. The returned gradient holds
    /// the bf16 results widened exactly to f32; the loss is f32.
    ///
    /// # Errors
    /// As [`Context::cross_entropy_with`](crate::Context::cross_entropy_with)
    /// (verify mode holds the gradient to [`Tolerance::BF16`](crate::Tolerance::BF16)).
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// use half::bf16;
    /// let ctx = xent::Context::from_env()?.with_verify(xent::Tolerance::default());
    /// let logits: Vec<bf16> = [2.0f32, 0.0, 0.0, 2.0].iter().map(|&v| bf16::from_f32(v)).collect();
    /// let out = ctx.cross_entropy_bf16(&logits, &[2, 2], xent::Targets::I64(&[0, 1]), xent::Weights::none(), &Default::default())?;
    /// assert!((out.loss[0] - 0.126928).abs() < 1e-5);
    /// // (p − 1) / 2 = −0.0596, held in bf16's 8 significant bits.
    /// let g = out.grad.unwrap()[0];
    /// assert!((g + 0.0596).abs() < 3e-4 && bf16::from_f32(g).to_f32() == g);
    /// # Ok(()) }
    /// ```
    pub fn cross_entropy_bf16(
        &self,
        input: &[half::bf16],
        dims: &[usize],
        targets: Targets<'_>,
        weights: Weights<'_>,
        opts: &CrossEntropyOptions,
    ) -> Result<CrossEntropyOutput<f32>> {
        self.run_cross_entropy(HostInput::BF16(input), dims, targets, weights, opts)
    }

    fn run_cross_entropy(
        &self,
        input: HostInput<'_>,
        dims: &[usize],
        targets: Targets<'_>,
        weights: Weights<'_>,
        opts: &CrossEntropyOptions,
    ) -> Result<CrossEntropyOutput<f32>> {
        let layout = Layout::from_dims(dims)?;
        let widen = |w: &[f32]| w.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
        let (class64, sample64) = (weights.class.map(widen), weights.sample.map(widen));
        validate::inputs(
            &layout,
            input.len(),
            &targets,
            class64.as_deref(),
            sample64.as_deref(),
            opts,
        )?;
        // i64 targets become the GPU's i32; u8 and f32 go up as they are.
        let narrowed = match targets {
            Targets::I64(t) => Some(narrow_targets(&layout, t, opts.ignore_index)?),
            _ => None,
        };
        let target_bytes: &[u8] = match (&targets, &narrowed) {
            (_, Some(t)) => bytemuck::cast_slice(t),
            (Targets::I32(t), _) => bytemuck::cast_slice(t),
            (Targets::U8(t), _) => t,
            (Targets::Probs(t), _) => bytemuck::cast_slice(t),
            (Targets::I64(_), None) => unreachable!("i64 targets are narrowed above"),
        };

        let loss_elems = if opts.reduction == Reduction::None {
            layout.rows()
        } else {
            1
        };
        let per_row = if opts.return_lse || opts.reduction == Reduction::None {
            layout.rows() as u64 * 4
        } else {
            0
        };
        self.check_buffer_sizes(
            dims,
            &[
                ("input", input.bytes().len() as u64),
                ("targets", target_bytes.len() as u64),
                ("per-row output", per_row),
            ],
        )?;
        // Every limit the recording would meet, before anything is uploaded:
        // the same plan (the uploads are padded to whole vec4s).
        input
            .precision()
            .supported_on(&self.device, "f16 logits and gradients")?;
        self.plan_cross_entropy(
            &layout,
            crate::ops::cross_entropy::plan::PlanInputs {
                elem: input.precision().size(),
                chunked_targets: matches!(targets, Targets::Probs(_)),
                write_grad: opts.compute_grad,
                weights: weights.class.is_some(),
                correct: opts.count_correct,
                reduction: opts.reduction,
                strategy: opts.strategy,
                vocab: false,
            },
        )?;

        let guard = self.host_lock.lock().unwrap_or_else(|e| e.into_inner());
        let scope = GpuScope::push(&self.device);
        let output = |label, elems| self.output(label, elems);
        // The gradient is written in place over the uploaded input (padded
        // to whole vec4s, so that every row strategy can run): one
        // input-sized buffer on the device instead of two.
        // The first upload finds a lost device (Error::DeviceLost).
        let logits_buf = self.upload_as("xent input", input.bytes(), STORAGE_OUT)?;
        let targets_buf = self.upload("xent targets", target_bytes)?;
        let weights_buf = weights
            .class
            .map(|w| self.upload("xent class weights", bytemuck::cast_slice(w)))
            .transpose()?;
        let sample_buf = weights
            .sample
            .map(|w| self.upload("xent sample weights", bytemuck::cast_slice(w)))
            .transpose()?;
        let loss_buf = output("xent loss", loss_elems);
        let lse_buf = opts.return_lse.then(|| output("xent lse", layout.rows()));
        let correct_buf = opts.count_correct.then(|| output("xent correct", 1));
        let status_buf = output("xent status", STATUS_SIZE as usize / 4);

        let mut encoder = self.device.create_command_encoder(&Default::default());
        let target_buffer = match targets {
            Targets::I64(_) | Targets::I32(_) => TargetBuffer::ClassI32(targets_buf.slice(..)),
            Targets::U8(_) => TargetBuffer::ClassU8(targets_buf.slice(..)),
            Targets::Probs(_) => TargetBuffer::Probs(targets_buf.slice(..)),
        };
        self.record_cross_entropy(
            &mut encoder,
            dims,
            opts,
            &CrossEntropyBuffers {
                weights: weights_buf.as_ref().map(|b| b.slice(..)),
                sample_weights: sample_buf.as_ref().map(|b| b.slice(..)),
                lse: lse_buf.as_ref().map(|b| b.slice(..)),
                correct: correct_buf.as_ref().map(|b| b.slice(..)),
                in_place: opts.compute_grad,
                precision: input.precision(),
                ..CrossEntropyBuffers::new(
                    logits_buf.slice(..),
                    target_buffer,
                    loss_buf.slice(..),
                    None,
                    status_buf.slice(..),
                )
            },
        )?;
        let mut wanted = vec![&status_buf, &loss_buf];
        if opts.compute_grad {
            wanted.push(&logits_buf);
        }
        wanted.extend(lse_buf.as_ref());
        wanted.extend(correct_buf.as_ref());
        let bytes = self.download(encoder, &wanted);
        scope.pop("running cross-entropy")?;
        drop(guard);
        let bytes = bytes?;
        let mut bytes = bytes.iter();
        let mut next = || bytes.next().map_or(&[][..], |b| &b[..]);
        let status = Status::from_bytes(next());
        status.check(&layout, opts.ignore_index)?;
        let loss = to_f32(next(), loss_elems);
        let mut grad = opts
            .compute_grad
            .then(|| input.precision().widen(next(), layout.len()));
        if let (Some(fault), Some(g)) = (self.fault, grad.as_mut()) {
            fault.apply(g, &layout);
        }
        let lse = lse_buf.map(|_| to_f32(next(), layout.rows()));
        let correct = correct_buf.map(|_| u64::from(Status::from_bytes(next()).bad_targets));
        let out = CrossEntropyOutput {
            loss,
            loss_dims: if opts.reduction == Reduction::None {
                layout.target_dims()
            } else {
                Vec::new()
            },
            grad,
            lse,
            correct,
            magnitude: None,
        };
        if let Some(tol) = self.verify {
            // The CPU on the values as the device holds them.
            let input32: std::borrow::Cow<'_, [f32]> = match input {
                HostInput::F32(x) => x.into(),
                _ => input.precision().widen(input.bytes(), input.len()).into(),
            };
            let reference = cpu::cross_entropy_with(&input32, dims, targets, weights, opts)?;
            // A half-precision gradient is held to its type's tolerance.
            let grad_tol = input.precision().tolerance(tol);
            tol.compare_cross_entropy(&out, &reference, &grad_tol)?;
        }
        Ok(out)
    }
}

/// The host API's input, in the element type it goes to the device in.
#[derive(Clone, Copy)]
enum HostInput<'a> {
    F32(&'a [f32]),
    F16(&'a [half::f16]),
    BF16(&'a [half::bf16]),
}

impl HostInput<'_> {
    fn len(&self) -> usize {
        match self {
            HostInput::F32(x) => x.len(),
            HostInput::F16(x) => x.len(),
            HostInput::BF16(x) => x.len(),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            HostInput::F32(x) => bytemuck::cast_slice(x),
            HostInput::F16(x) => bytemuck::cast_slice(x),
            HostInput::BF16(x) => bytemuck::cast_slice(x),
        }
    }

    fn precision(&self) -> Precision {
        match self {
            HostInput::F32(_) => Precision::F32,
            HostInput::F16(_) => Precision::F16,
            HostInput::BF16(_) => Precision::BF16,
        }
    }
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
