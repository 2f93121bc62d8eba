//! The host API of cross-entropy: slices in, `Vec`s out. Each call checks
//! its plan, uploads, records with
//! [`Context::record_cross_entropy`](crate::Context::record_cross_entropy),
//! submits, waits and reads back; in verify mode it then holds the result
//! against the [`cpu`](crate::cpu) twin.

use super::cpu::{self, CrossEntropyOutput};
use super::validate;
use super::{CrossEntropyBuffers, TargetBuffer};
use crate::core::shape::Layout;
use crate::core::status::{words, OpStatus, STATUS_SIZE};
use crate::core::transfer::{to_f32, STORAGE_OUT};
use crate::core::Context;
use crate::core::Reduction;
use crate::core::{Element, Precision, Returns};
use crate::error::{Error, GpuScope, Result};
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
        opts.check_returns(returns)?;
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
        let per_row = if returns.lse || opts.reduction == Reduction::None {
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
                write_grad: returns.grad,
                weights: weights.class.is_some(),
                correct: returns.correct,
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
        let lse_buf = returns.lse.then(|| output("xent lse", layout.rows()));
        let correct_buf = returns.correct.then(|| output("xent correct", 1));
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
                in_place: returns.grad,
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
        if returns.grad {
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
        let status = CrossEntropyStatus::from_bytes(next());
        status.check(&layout, opts.ignore_index)?;
        let loss = to_f32(next(), loss_elems);
        let mut grad = returns
            .grad
            .then(|| input.precision().widen(next(), layout.len()));
        if let (Some(fault), Some(g)) = (self.fault, grad.as_mut()) {
            fault.apply(g, &layout);
        }
        let lse = lse_buf.map(|_| to_f32(next(), layout.rows()));
        let correct = correct_buf.map(|_| u64::from(words(next())[0]));
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
            let input32 = input.precision().widen(input.bytes(), input.len());
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
struct HostInput<'a> {
    bytes: &'a [u8],
    len: usize,
    precision: Precision,
}

impl HostInput<'_> {
    fn len(&self) -> usize {
        self.len
    }

    fn bytes(&self) -> &[u8] {
        self.bytes
    }

    fn precision(&self) -> Precision {
        self.precision
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
