//! The element types a tensor may be stored in on the GPU.

use crate::error::Result;

/// Element type of the input and the gradient; every sum stays f32.
///
/// ```
/// assert_eq!(xent::Precision::default(), xent::Precision::F32);
/// assert_eq!(<half::f16 as xent::Element>::PRECISION, xent::Precision::F16);
/// ```
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

/// An element type the host API takes and stores as it is: `f32`,
/// [`half::f16`] or [`half::bf16`]. Sealed: xent's kernels read exactly
/// these three.
///
/// ```
/// use xent::{Element, Precision};
/// assert_eq!(<half::bf16 as Element>::PRECISION, Precision::BF16);
/// assert_eq!(half::bf16::from_f32(1.5).widen(), 1.5);
/// ```
pub trait Element: sealed::Sealed + bytemuck::Pod + Send + Sync + 'static {
    /// How the device stores it.
    const PRECISION: Precision;
    /// Its value as f32 (exactly: every f16 and bf16 is an f32).
    fn widen(self) -> f32;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
}

impl Element for f32 {
    const PRECISION: Precision = Precision::F32;
    fn widen(self) -> f32 {
        self
    }
}

impl Element for half::f16 {
    const PRECISION: Precision = Precision::F16;
    fn widen(self) -> f32 {
        self.to_f32()
    }
}

impl Element for half::bf16 {
    const PRECISION: Precision = Precision::BF16;
    fn widen(self) -> f32 {
        self.to_f32()
    }
}

/// `values` widened to f32, exactly.
pub(crate) fn widen_all<T: Element>(values: &[T]) -> Vec<f32> {
    values.iter().map(|&v| v.widen()).collect()
}

impl Precision {
    /// Every precision, f32 first.
    #[cfg(test)]
    pub(crate) const ALL: [Precision; 3] = [Precision::F32, Precision::F16, Precision::BF16];

    /// A small code naming the precision in a module's key.
    pub(crate) fn code(self) -> u32 {
        self as u32
    }

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
    /// Bytes short of `len` values (a failed readback, already reported by
    /// the error scope) widen to NaN, never to zeros or a panic.
    pub(crate) fn widen(self, bytes: &[u8], len: usize) -> Vec<f32> {
        let bytes = &bytes[..(len * self.size() as usize).min(bytes.len())];
        let mut values = match self {
            Precision::F32 => super::transfer::to_f32(bytes, len),
            Precision::F16 => bytemuck::pod_collect_to_vec::<u8, half::f16>(bytes)
                .iter()
                .map(|v| v.to_f32())
                .collect(),
            Precision::BF16 => bytemuck::pod_collect_to_vec::<u8, half::bf16>(bytes)
                .iter()
                .map(|v| v.to_f32())
                .collect(),
        };
        values.resize(len, f32::NAN);
        values
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

    /// The tolerance of an output stored in this precision, `f32` for f32.
    pub(crate) fn tolerance(self, f32: super::verify::Tolerance) -> super::verify::Tolerance {
        match self {
            Precision::F32 => f32,
            Precision::F16 => super::verify::Tolerance::F16,
            Precision::BF16 => super::verify::Tolerance::BF16,
        }
    }
}
