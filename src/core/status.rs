//! The status buffer an op reports bad input in, and its decoding.

use super::shape::Layout;
use crate::error::{Error, Result};

/// Size in bytes of a status buffer: see [`Status`].
pub const STATUS_SIZE: u64 = 16;

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
        Err(out_of_range(
            layout,
            self.first_position as usize,
            i64::from(self.first_value),
            ignore_index,
            u64::from(self.bad_targets),
        ))
    }
}

/// The typed error of a target out of range: its position in the target's
/// shape, its value, and how many targets were bad.
pub(crate) fn out_of_range(
    layout: &Layout,
    flat: usize,
    value: i64,
    ignore_index: i64,
    count: u64,
) -> Error {
    Error::TargetOutOfRange {
        position: layout.target_position(flat),
        value,
        classes: layout.classes,
        ignore_index,
        count,
    }
}
