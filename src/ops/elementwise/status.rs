//! What the elementwise losses' status buffer reports: [`ElementwiseStatus`].

use super::validate::{self, Elements};
use crate::core::status::{words, OpStatus};
use crate::error::Result;

/// What an elementwise loss call found wrong, decoded from its status
/// buffer: `Bce`'s inputs or targets outside [0, 1] (the other losses take
/// any value and report none).
///
/// ```
/// use xent::{ElementwiseStatus, OpStatus};
/// let s = ElementwiseStatus { bad_elements: 2, first_position: 3, value: 2.5, in_target: true };
/// let err = s.check(&[2, 2]).unwrap_err();
/// assert!(matches!(err, xent::Error::InputOutOfRange { what: "target", count: 2, .. }));
/// assert!(ElementwiseStatus::from_bytes(&[0; 16]).check(&[2, 2]).is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ElementwiseStatus {
    /// Number of elements whose input or target is outside [0, 1].
    pub bad_elements: u32,
    /// Flat position of the first such element (meaningful when
    /// `bad_elements > 0`).
    pub first_position: u32,
    /// Its bad value: its input's, or (`in_target`) its target's. Read on
    /// the GPU where the tensors' first binding holds it, NaN where not.
    pub value: f32,
    /// Whether `value` is the element's target (its input in range).
    pub in_target: bool,
}

impl OpStatus for ElementwiseStatus {
    fn from_bytes(bytes: &[u8]) -> Self {
        let [bad, first, value, flags] = words(bytes);
        Self {
            bad_elements: bad,
            first_position: first,
            value: f32::from_bits(value),
            in_target: flags == 1,
        }
    }
}

impl ElementwiseStatus {
    /// [`Error::InputOutOfRange`](crate::Error::InputOutOfRange) naming the
    /// first bad element's position in `dims`, its value and whether it was
    /// the input or the target, if there was one (those elements' loss and
    /// gradient are NaN).
    ///
    /// # Errors
    /// [`Error::InputOutOfRange`](crate::Error::InputOutOfRange);
    /// [`Error::InvalidShape`](crate::Error::InvalidShape) for bad `dims`.
    ///
    /// ```
    /// use xent::{ElementwiseStatus, Error};
    /// // Flat position 5 of a (2, 3) input is [1, 2].
    /// let s = ElementwiseStatus { bad_elements: 1, first_position: 5, value: -0.5, in_target: false };
    /// let err = s.check(&[2, 3]).unwrap_err();
    /// assert!(matches!(err, Error::InputOutOfRange { what: "input", ref position, value: -0.5, count: 1 } if *position == [1, 2]));
    /// assert!(ElementwiseStatus::default().check(&[2, 3]).is_ok());
    /// ```
    pub fn check(&self, dims: &[usize]) -> Result<()> {
        if self.bad_elements == 0 {
            return Ok(());
        }
        let shape = Elements::new(dims)?;
        Err(validate::named_out_of_range(
            &shape,
            self.first_position as usize,
            if self.in_target { "target" } else { "input" },
            self.value,
            u64::from(self.bad_elements),
        ))
    }
}
