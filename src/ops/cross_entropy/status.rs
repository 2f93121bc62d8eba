//! What cross-entropy's status buffer reports: [`CrossEntropyStatus`].

use crate::core::shape::Layout;
use crate::core::status::{words, OpStatus};
use crate::error::{Error, Result};

/// What a cross-entropy call (and the fused linear op, and a vocabulary
/// shard's finish) found wrong, decoded from its status buffer: targets out
/// of range, and, for a shard's finish, merged records that do not cover
/// the call's classes.
///
/// ```
/// use xent::{CrossEntropyStatus, OpStatus};
/// let layout = xent::Layout::from_dims(&[3, 5]).unwrap();
/// let status = CrossEntropyStatus { bad_targets: 1, first_position: 2, first_value: 9, ..Default::default() };
/// assert!(matches!(status.check(&layout, -100), Err(xent::Error::TargetOutOfRange { value: 9, .. })));
/// assert!(CrossEntropyStatus::from_bytes(&[0; 16]).check(&layout, -100).is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CrossEntropyStatus {
    /// Number of targets out of range (neither a class nor `ignore_index`).
    pub bad_targets: u32,
    /// Flat position of the first bad target (meaningful when `bad_targets > 0`).
    pub first_position: u32,
    /// The first bad target's value.
    pub first_value: i32,
    /// For a vocabulary shard's finish
    /// ([`Context::record_vocab_finish`](crate::Context::record_vocab_finish)):
    /// whether some row's merged records do not cover each of the call's `C`
    /// classes once (a shard's partial missing from the gather, there twice,
    /// or in another's place), which makes that row's numbers wrong.
    /// `false` for the other calls.
    pub records_uncovered: bool,
}

impl OpStatus for CrossEntropyStatus {
    fn from_bytes(bytes: &[u8]) -> Self {
        let [bad, first, value, flags] = words(bytes);
        Self {
            bad_targets: bad,
            first_position: first,
            first_value: value as i32,
            records_uncovered: flags == 2,
        }
    }
}

impl CrossEntropyStatus {
    /// `Ok` when every target was in range (and, for a shard's finish, the
    /// merged records covered the classes), else the typed error naming the
    /// first bad target's position (in the target's shape) and value.
    ///
    /// # Errors
    /// [`Error::TargetOutOfRange`](crate::Error::TargetOutOfRange);
    /// [`Error::BadBuffer`](crate::Error::BadBuffer) (`merged`) for records
    /// that do not cover each of the `C` classes once.
    ///
    /// ```
    /// use xent::{CrossEntropyStatus, Error};
    /// let layout = xent::Layout::from_dims(&[2, 3, 4])?; // targets of shape (2, 4)
    /// let bad = CrossEntropyStatus { bad_targets: 3, first_position: 5, first_value: -1, ..Default::default() };
    /// let err = bad.check(&layout, -100).unwrap_err(); // flat 5 of (2, 4) is [1, 1]
    /// assert!(matches!(err, Error::TargetOutOfRange { ref position, value: -1, count: 3, .. } if *position == [1, 1]));
    /// let uncovered = CrossEntropyStatus { records_uncovered: true, ..Default::default() };
    /// assert!(matches!(uncovered.check(&layout, -100), Err(Error::BadBuffer { what: "merged", .. })));
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn check(&self, layout: &Layout, ignore_index: i64) -> Result<()> {
        if self.records_uncovered {
            return Err(Error::BadBuffer {
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
