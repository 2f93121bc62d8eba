//! The plan of a softmax (or its backward): an invocation or a workgroup
//! per row, or split rows past the loop bound, with its limits checked.

use crate::core::device::LOOP_TRIPS_MAX;
use crate::core::shape::Layout;
use crate::core::Context;
use crate::error::{Error, Result};

/// Rows of at least this many classes (`inner = 1`) get a workgroup each;
/// shorter rows and maps an invocation each.
const WIDE_MIN_CLASSES: usize = 128;

/// Workgroup size of the softmax kernels (`WIDE_WG`, `NARROW_WG` in the shader).
pub(crate) const SOFTMAX_WG: usize = 64;

/// How the rows of a softmax (or its backward) are spread over invocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SoftmaxStrategy {
    /// An invocation per row.
    Narrow,
    /// A workgroup per row.
    Wide,
    /// `splits` workgroups per row, each over a span of classes: a partial
    /// pass, then a pass that merges the row's partials and writes its span.
    Split {
        /// Workgroups per row.
        splits: usize,
    },
}

impl SoftmaxStrategy {
    /// Long rows (`inner = 1`) get a workgroup each, short rows and maps an
    /// invocation each, unless its loops would pass [`LOOP_TRIPS_MAX`]: then a
    /// workgroup per row (any layout), then split rows.
    pub(crate) fn choose(layout: &Layout) -> Result<Self> {
        let classes = layout.classes;
        let first = if layout.inner == 1 && classes >= WIDE_MIN_CLASSES {
            SoftmaxStrategy::Wide
        } else {
            SoftmaxStrategy::Narrow
        };
        // Spans of at most SOFTMAX_WG * LOOP_TRIPS_MAX / 2 classes walk half the bound.
        let splits = classes.div_ceil(SOFTMAX_WG * LOOP_TRIPS_MAX / 2).max(2);
        [
            first,
            SoftmaxStrategy::Wide,
            SoftmaxStrategy::Split { splits },
        ]
        .into_iter()
        .find(|s| s.loop_trips(classes) <= LOOP_TRIPS_MAX)
        .ok_or_else(|| Error::Unsupported {
            what: "a softmax row this long",
            reason: format!(
                "{classes} classes need more than the {LOOP_TRIPS_MAX} loop iterations per \
                     invocation xent bounds every kernel to"
            ),
        })
    }

    /// Workgroups per row: `splits` for split rows, else 1.
    pub(crate) fn splits(self) -> usize {
        match self {
            SoftmaxStrategy::Split { splits } => splits,
            _ => 1,
        }
    }

    /// Bytes of scratch for the split rows' partials over `layout` (a vec2
    /// per row and span); 0 for the other strategies.
    pub(crate) fn partials_bytes(self, layout: &Layout) -> u64 {
        match self {
            SoftmaxStrategy::Split { splits } => 8 * (layout.rows() * splits) as u64,
            _ => 0,
        }
    }

    /// The most loop iterations one invocation runs (both passes, and the trees).
    pub(crate) fn loop_trips(self, classes: usize) -> usize {
        let tree = 2 * SOFTMAX_WG.ilog2() as usize;
        match self {
            SoftmaxStrategy::Narrow => 2 * classes,
            SoftmaxStrategy::Wide => 2 * classes.div_ceil(SOFTMAX_WG) + tree,
            SoftmaxStrategy::Split { splits } => {
                splits + classes.div_ceil(splits).div_ceil(SOFTMAX_WG) + tree
            }
        }
    }
}

impl Context {
    /// The strategy of a softmax (or its backward) over `layout`, with its
    /// limits checked: the tensor and the split rows' partials must each fit
    /// one binding (softmax is not chunked). The host API calls it before
    /// uploading.
    pub(crate) fn plan_softmax(&self, layout: &Layout) -> Result<SoftmaxStrategy> {
        if layout.is_empty() {
            return Ok(SoftmaxStrategy::Narrow);
        }
        let strategy = SoftmaxStrategy::choose(layout)?;
        // Softmax is not chunked: its u32 element indices stay below 2^32
        // only while its tensors stay below 2^32 bytes, whatever the device binds.
        let max_binding = self
            .device
            .limits()
            .max_storage_buffer_binding_size
            .min(u64::from(u32::MAX));
        for (what, bytes) in [
            ("the tensor", layout.len() as u64 * 4),
            ("its split rows' partials", strategy.partials_bytes(layout)),
        ] {
            if bytes > max_binding {
                return Err(Error::InvalidShape {
                    shape: layout.dims.clone(),
                    reason: format!(
                        "{what}: {bytes} bytes, more than the device's largest storage \
                         binding of {max_binding} bytes (softmax is not chunked)"
                    ),
                });
            }
        }
        Ok(strategy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(dims: &[usize]) -> Layout {
        Layout::from_dims(dims).unwrap()
    }

    #[test]
    fn every_chosen_strategy_stays_under_the_loop_bound() {
        for classes in (0..26).flat_map(|k| [1usize << k, (1 << k) + 1, 3 << k]) {
            for inner in [1, 2, 4, 8] {
                let s = SoftmaxStrategy::choose(&layout(&[2, classes, inner])).unwrap();
                assert!(
                    s.loop_trips(classes) <= LOOP_TRIPS_MAX,
                    "{s:?} for C = {classes}"
                );
            }
        }
    }

    #[test]
    fn strategies_past_the_loop_bound_are_split() {
        let softmax = |dims: &[usize]| SoftmaxStrategy::choose(&layout(dims)).unwrap();
        assert_eq!(softmax(&[1, 8192, 2]), SoftmaxStrategy::Narrow);
        assert_eq!(softmax(&[1, 8193, 2]), SoftmaxStrategy::Wide);
        assert_eq!(softmax(&[2, 523_904]), SoftmaxStrategy::Wide);
        assert_eq!(
            softmax(&[4, 2_097_152]),
            SoftmaxStrategy::Split { splits: 4 }
        );
    }
}
