//! The recording API's buffers for cross-entropy, and the status buffer it
//! reports bad targets in.

use crate::error::Result;
use crate::shape::Layout;
use crate::validate;

/// The target kinds' codes (`TARGET_*` in `shaders/cross_entropy/common.wgsl`).
pub(crate) const TARGET_I32: u32 = 0;
pub(crate) const TARGET_U8: u32 = 1;
pub(crate) const TARGET_PROBS: u32 = 2;

/// Size in bytes of a status buffer: see [`Status`].
pub const STATUS_SIZE: u64 = 16;

/// The targets buffer of a [`Context::record_cross_entropy`](crate::Context::record_cross_entropy) call, with its element type.
#[derive(Debug, Clone, Copy)]
pub enum TargetBuffer<'a> {
    /// i32 class indices, one per row (`layout.rows()` elements).
    ClassI32(&'a wgpu::Buffer),
    /// u8 class indices, one byte per row, packed little-endian four to a
    /// 32-bit word (a `&[u8]` uploaded as it is, padded to 4 bytes).
    ClassU8(&'a wgpu::Buffer),
    /// f32 probabilities with the input's shape (`layout.len()` elements).
    Probs(&'a wgpu::Buffer),
}

/// The buffers of one [`Context::record_cross_entropy`](crate::Context::record_cross_entropy) call, all the caller's.
///
/// Every buffer needs `STORAGE` usage; sizes are in elements of 4 bytes.
///
/// **Every buffer must come from the context's device**
/// ([`Context::device`](crate::Context::device)). A buffer of another device on the same
/// `wgpu::Instance`, or a destroyed one, is an [`Error::Gpu`](crate::Error::Gpu) from the
/// recording call. A buffer of another `wgpu::Instance` cannot be detected:
/// wgpu's ids are per instance, so wgpu silently binds whichever buffer of
/// the context's device has the same id (wrong results, no error; never
/// this buffer), or panics on an id the context's instance never issued.
/// Each [`headless_device`](crate::headless_device) call and each
/// [`Context::from_env`](crate::Context::from_env) makes a new instance: create the buffers with
/// `ctx.device()`.
#[derive(Debug, Clone, Copy)]
pub struct CrossEntropyBuffers<'a> {
    /// f32 input (logits, log-probabilities or probabilities, per
    /// [`CrossEntropyOptions::input`](crate::CrossEntropyOptions::input)), `layout.len()` elements, in the input's layout.
    pub logits: &'a wgpu::Buffer,
    /// The targets.
    pub targets: TargetBuffer<'a>,
    /// f32 class weights, C elements; `None` for all ones.
    pub weights: Option<&'a wgpu::Buffer>,
    /// f32 sample weights, one per row; `None` for all ones.
    pub sample_weights: Option<&'a wgpu::Buffer>,
    /// f32 output: 1 element for `mean` and `sum`, `layout.rows()` for `none`.
    pub loss: &'a wgpu::Buffer,
    /// f32 output ∂loss/∂input, `layout.len()` elements; `None` to skip the gradient.
    pub grad: Option<&'a wgpu::Buffer>,
    /// Receives the target range check: [`STATUS_SIZE`] bytes. Read it with
    /// [`Status::from_bytes`](crate::Status::from_bytes) (or [`Context::read_status`](crate::Context::read_status)) after submitting.
    pub status: &'a wgpu::Buffer,
    /// f32 output: each row's log-sum-exp (logits only), `layout.rows()` elements.
    pub lse: Option<&'a wgpu::Buffer>,
    /// u32 output: the number of rows whose argmax equals the target, 1 element.
    pub correct: Option<&'a wgpu::Buffer>,
    /// Write the gradient over the input in `logits` (then `grad` must be
    /// `None`): no second input-sized buffer exists. Each element is read
    /// before it is overwritten, so the result equals the out-of-place one.
    pub in_place: bool,
    /// Element type of `logits` and `grad`: f32, or f16 where the device has
    /// `SHADER_F16` (accumulation is in f32 either way). f16 buffers hold at
    /// least `layout.len()` elements rounded up to a multiple of 4 bytes.
    pub precision: Precision,
}

/// Element type of the input and the gradient; every sum stays f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// 4-byte floats.
    #[default]
    F32,
    /// 2-byte IEEE half floats (`half::f16` on the host); needs `SHADER_F16`.
    F16,
    /// 2-byte bfloat16 (`half::bf16` on the host: f32's exponent, 8
    /// significant bits), on every device: stored two to a `u32`, rounded
    /// to nearest even on store, NaN and ±inf kept.
    BF16,
}

impl Precision {
    /// Bytes per element.
    ///
    /// ```
    /// assert_eq!(xent::Precision::BF16.size(), 2);
    /// ```
    pub fn size(self) -> u64 {
        match self {
            Precision::F32 => 4,
            Precision::F16 | Precision::BF16 => 2,
        }
    }

    /// Whether `device` can store `what` in this precision: f16 needs
    /// `SHADER_F16` ([`Error::Unsupported`](crate::Error::Unsupported) naming
    /// `what` otherwise); f32 and bf16 run everywhere.
    pub(crate) fn supported_on(self, device: &wgpu::Device, what: &'static str) -> Result<()> {
        if self == Precision::F16 && !device.features().contains(wgpu::Features::SHADER_F16) {
            return Err(crate::Error::Unsupported {
                what,
                reason: "the device lacks the SHADER_F16 feature".into(),
            });
        }
        Ok(())
    }

    /// The first `len` values of `bytes`, stored in this precision, as f32 (exactly).
    pub(crate) fn widen(self, bytes: &[u8], len: usize) -> Vec<f32> {
        let bytes = &bytes[..len * self.size() as usize];
        match self {
            Precision::F32 => crate::gpu::transfer::to_f32(bytes, len),
            Precision::F16 => bytemuck::pod_collect_to_vec::<u8, half::f16>(bytes)
                .iter()
                .map(|v| v.to_f32())
                .collect(),
            Precision::BF16 => bytemuck::pod_collect_to_vec::<u8, half::bf16>(bytes)
                .iter()
                .map(|v| v.to_f32())
                .collect(),
        }
    }

    /// `values` stored in this precision (rounded to nearest even), as bytes.
    pub(crate) fn narrow(self, values: &[f32]) -> Vec<u8> {
        match self {
            Precision::F32 => bytemuck::cast_slice(values).to_vec(),
            Precision::F16 => values
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
            Precision::BF16 => values
                .iter()
                .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
                .collect(),
        }
    }

    /// `values` as stored in this precision, widened back to f32 (exactly).
    pub(crate) fn round(self, values: &[f32]) -> Vec<f32> {
        match self {
            Precision::F32 => values.to_vec(),
            _ => self.widen(&self.narrow(values), values.len()),
        }
    }

    /// The tolerance of an output stored in this precision, `f32` for f32.
    pub(crate) fn tolerance(self, f32: crate::Tolerance) -> crate::Tolerance {
        match self {
            Precision::F32 => f32,
            Precision::F16 => crate::Tolerance::F16,
            Precision::BF16 => crate::Tolerance::BF16,
        }
    }
}

impl<'a> CrossEntropyBuffers<'a> {
    /// The required buffers, with no weights and no optional outputs but the gradient.
    ///
    /// All from the context's device, never from another `wgpu::Instance`
    /// (which xent cannot detect; see [`CrossEntropyBuffers`]).
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// let ctx = xent::Context::from_env()?;
    /// // Every buffer from the context's own device.
    /// let buffer = |size| ctx.device().create_buffer(&wgpu::BufferDescriptor {
    ///     label: None, size, mapped_at_creation: false,
    ///     usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC });
    /// let (logits, targets, loss, grad) = (buffer(60), buffer(12), buffer(4), buffer(60));
    /// let status = buffer(xent::STATUS_SIZE);
    /// let b = xent::CrossEntropyBuffers {
    ///     weights: None,
    ///     ..xent::CrossEntropyBuffers::new(&logits, xent::TargetBuffer::ClassI32(&targets), &loss, Some(&grad), &status)
    /// };
    /// # Ok(()) }
    /// ```
    pub fn new(
        logits: &'a wgpu::Buffer,
        targets: TargetBuffer<'a>,
        loss: &'a wgpu::Buffer,
        grad: Option<&'a wgpu::Buffer>,
        status: &'a wgpu::Buffer,
    ) -> Self {
        Self {
            logits,
            targets,
            weights: None,
            sample_weights: None,
            loss,
            grad,
            status,
            lse: None,
            correct: None,
            in_place: false,
            precision: Precision::F32,
        }
    }
}

/// What the GPU's target check found, as read from a status buffer (for an
/// elementwise `Bce` call, its input check: see [`Status::check_input`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Status {
    /// Number of targets out of range (neither a class nor `ignore_index`);
    /// for `Bce`, of inputs outside [0, 1].
    pub bad_targets: u32,
    /// Flat position of the first bad target (meaningful when `bad_targets > 0`).
    pub first_position: u32,
    /// The first bad target's value (for `Bce`, the f32 bits of the first
    /// bad element's bad value: its input's, or its target's).
    pub first_value: i32,
    /// For `Bce`: whether `first_value` is the element's target (its input
    /// being in range); `false` for cross-entropy.
    pub first_in_target: bool,
    /// For a vocabulary shard's finish
    /// ([`Context::record_vocab_finish`](crate::Context::record_vocab_finish)):
    /// whether some row's merged records do not cover each of the call's `C`
    /// classes once (a shard's partial missing from the gather, there twice,
    /// or in another's place), which makes that row's numbers wrong.
    /// `false` for the other calls. Only this field (through
    /// [`Status::check`]) reports it: `bad_targets` stays 0.
    pub records_uncovered: bool,
}

impl Status {
    /// Decodes the [`STATUS_SIZE`] bytes of a status buffer.
    ///
    /// ```
    /// let s = xent::Status::from_bytes(&[0u8; 16]);
    /// assert_eq!(s.bad_targets, 0);
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let word = |i: usize| {
            bytes
                .get(4 * i..4 * i + 4)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        Self {
            bad_targets: word(0),
            first_position: word(1),
            first_value: word(2) as i32,
            first_in_target: word(3) == 1,
            records_uncovered: word(3) == 2,
        }
    }

    /// `Ok` when every target was in range, else the typed error naming the
    /// first bad target's position (in the target's shape) and value; for a
    /// vocabulary shard's finish, also an error when the merged records
    /// did not cover the call's classes.
    ///
    /// # Errors
    /// [`Error::TargetOutOfRange`](crate::Error::TargetOutOfRange);
    /// [`Error::BadBuffer`](crate::Error::BadBuffer) (`merged`) for records
    /// that do not cover each of the `C` classes once.
    ///
    /// ```
    /// let layout = xent::Layout::from_dims(&[3, 5]).unwrap();
    /// let status = xent::Status { bad_targets: 1, first_position: 2, first_value: 9, ..Default::default() };
    /// assert!(matches!(status.check(&layout, -100), Err(xent::Error::TargetOutOfRange { value: 9, .. })));
    /// ```
    pub fn check(&self, layout: &Layout, ignore_index: i64) -> Result<()> {
        if self.records_uncovered {
            return Err(crate::Error::BadBuffer {
                what: "merged",
                reason: format!(
                    "some rows' merged records do not cover each of the call's {} classes once: gather \
                     every shard's partial once, in shard order, over ranges that tile [0, {})",
                    layout.classes, layout.classes
                ),
            });
        }
        if self.bad_targets == 0 {
            return Ok(());
        }
        Err(validate::out_of_range(
            layout,
            self.first_position as usize,
            i64::from(self.first_value),
            ignore_index,
            u64::from(self.bad_targets),
        ))
    }
}
