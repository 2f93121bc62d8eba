//! The plan of an elementwise loss call: its chunks past the binding
//! limit, its kernel and its blocks, every limit checked before anything is
//! recorded.

use super::options::WeightShape;
use super::validate::Elements;
use crate::core::device::LOOP_TRIPS_MAX;
use crate::core::Context;
use crate::error::{Error, Result};

/// Elements per workgroup of the elementwise kernels (`BLOCK` in
/// `shaders/elementwise/loss.wgsl`): 64 loop trips of the scalar kernel,
/// 16 of the vec4 one, per invocation.
pub(crate) const BLOCK: usize = 4096;
/// Blocks per workgroup of `elementwise_fold` (`FOLD` in the WGSL), which
/// runs past that many blocks so that the reduce's invocations each add at
/// most 64 stats one after another (a chain of 16 384 f32 additions would
/// drift past the tolerance near 2³² elements).
pub(crate) const FOLD: usize = 4096;
/// Elements per chunk at most, whatever the binding: block indices stay
/// far from u32's end.
pub(crate) const CHUNK_MAX: usize = 1 << 30;
/// Invocations per workgroup (`STATS_WG` in the WGSL).
pub(crate) const ELEMENTWISE_WG: usize = 64;
/// Words of a block's stats in the scratch (`STATS_WORDS` in `shaders/lib/block_stats.wgsl`).
pub(crate) const STATS_WORDS: usize = 4;

/// What an elementwise call runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ElementwisePlan {
    /// Element ranges, one dispatch each, each within one binding; all but
    /// the last a multiple of [`BLOCK`] long, so each starts at a block and
    /// at an offset every device allows.
    pub chunks: Vec<(usize, usize)>,
    /// `elementwise4` (the element count is a multiple of 4) or `elementwise`.
    pub vec4: bool,
    /// Blocks over every chunk.
    pub blocks: usize,
    /// Workgroups of `elementwise_fold` (0 up to [`FOLD`] blocks).
    pub folds: usize,
}

impl ElementwisePlan {
    /// The kernel's entry point.
    pub fn entry(&self) -> &'static str {
        if self.vec4 {
            "elementwise4"
        } else {
            "elementwise"
        }
    }

    /// Loop trips per invocation of the elementwise kernel, of the fold and
    /// of the reduce.
    pub fn loop_trips(&self) -> (usize, usize, usize) {
        let per = BLOCK / ELEMENTWISE_WG;
        (
            if self.vec4 { per / 4 } else { per },
            FOLD / ELEMENTWISE_WG,
            self.reduced().1.div_ceil(ELEMENTWISE_WG),
        )
    }

    /// The stats the reduce folds: (the first, how many): the blocks, or
    /// the folds' stats after them.
    pub fn reduced(&self) -> (usize, usize) {
        if self.folds > 0 {
            (self.blocks, self.folds)
        } else {
            (0, self.blocks)
        }
    }

    /// Bytes of the blocks' and the folds' stats.
    pub fn scratch_bytes(&self) -> u64 {
        ((self.blocks + self.folds) * STATS_WORDS * 4).max(16) as u64
    }
}

impl Context {
    /// The plan for `shape`, with a weight laid out as `weight` and a
    /// `pos_weight` if `pos_weight`.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for 2³² elements or more (positions are u32 on
    /// the GPU) and for a last-axis weight past the device's largest binding.
    pub(crate) fn plan_elementwise(
        &self,
        shape: &Elements,
        weight: Option<WeightShape>,
        pos_weight: bool,
    ) -> Result<ElementwisePlan> {
        plan(
            shape,
            weight,
            pos_weight,
            self.device.limits().max_storage_buffer_binding_size,
        )
    }
}

fn plan(
    shape: &Elements,
    weight: Option<WeightShape>,
    pos_weight: bool,
    max_binding: u64,
) -> Result<ElementwisePlan> {
    if shape.len as u64 >= u64::from(u32::MAX) {
        return Err(Error::Unsupported {
            what: "an elementwise loss over this many elements",
            reason: format!("{} elements; at most 2^32 - 2", shape.len),
        });
    }
    let last_axis = weight == Some(WeightShape::LastAxis) || pos_weight;
    if last_axis && (shape.last as u64) * 4 > max_binding {
        return Err(Error::Unsupported {
            what: "a last-axis weight this long",
            reason: format!(
                "{} bytes, more than the device's largest storage binding of {max_binding} bytes",
                shape.last * 4
            ),
        });
    }
    // Whole blocks per binding; every device's binding holds at least 128 MiB.
    let per = ((max_binding / 4) as usize).min(CHUNK_MAX) / BLOCK * BLOCK;
    let per = per.max(BLOCK);
    let chunks = (0..shape.len)
        .step_by(per)
        .map(|e0| (e0, (e0 + per).min(shape.len)))
        .collect();
    let blocks = shape.len.div_ceil(BLOCK);
    let plan = ElementwisePlan {
        chunks,
        vec4: shape.len.is_multiple_of(4),
        blocks,
        folds: if blocks > FOLD {
            blocks.div_ceil(FOLD)
        } else {
            0
        },
    };
    let (main, fold, reduce) = plan.loop_trips();
    debug_assert!(main.max(fold).max(reduce) <= LOOP_TRIPS_MAX);
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(dims: &[usize]) -> Elements {
        Elements::new(dims).unwrap()
    }

    #[test]
    fn the_kernel_and_the_chunks_follow_the_shape() {
        let mib = 1 << 20;
        let p = plan(&shape(&[4096, 4096]), None, false, 128 * mib).unwrap();
        assert_eq!((p.entry(), p.blocks, p.folds), ("elementwise4", 4096, 0));
        assert_eq!(p.reduced(), (0, 4096));
        assert_eq!(p.chunks, vec![(0, 1 << 24)]);
        // One block more: a fold per 4 096 blocks, the reduce over the two folds.
        let p = plan(&shape(&[4097, 4096]), None, false, 128 * mib).unwrap();
        assert_eq!((p.blocks, p.folds, p.reduced()), (4097, 2, (4097, 2)));
        assert_eq!(p.chunks, vec![(0, 4097 * 4096)]);
        let p = plan(&shape(&[3, 5]), None, false, 128 * mib).unwrap();
        assert_eq!(
            (p.entry(), p.blocks, p.chunks.clone()),
            ("elementwise", 1, vec![(0, 15)])
        );
        let p = plan(&shape(&[0, 3]), None, false, 128 * mib).unwrap();
        assert_eq!((p.blocks, p.chunks.len()), (0, 0));
        let p = plan(&shape(&[]), None, false, 128 * mib).unwrap();
        assert_eq!((p.entry(), p.chunks.clone()), ("elementwise", vec![(0, 1)]));
        // Past a 64 KiB binding: chunks of 16 384 elements, whole blocks.
        let p = plan(&shape(&[10, 5000]), None, false, 64 * 1024).unwrap();
        assert_eq!(
            p.chunks,
            vec![(0, 16384), (16384, 32768), (32768, 49152), (49152, 50000)]
        );
        assert_eq!(p.blocks, 13);
    }

    #[test]
    fn every_loop_stays_under_the_bound_up_to_the_largest_shape() {
        for len in [
            1usize,
            4095,
            4096,
            4097,
            1 << 24,
            (1 << 24) + 1,
            u32::MAX as usize - 1,
        ] {
            let p = plan(&shape(&[len]), None, false, 8 << 30).unwrap();
            let (main, fold, reduce) = p.loop_trips();
            // The longest chain of additions in one invocation stays short too.
            assert!(
                main.max(fold).max(reduce) <= 64,
                "{len}: {main}, {fold}, {reduce}"
            );
            assert!(p.chunks.iter().all(|&(a, b)| b - a <= CHUNK_MAX), "{len}");
        }
        assert!(matches!(
            plan(&shape(&[u32::MAX as usize]), None, false, 4 << 30),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn a_last_axis_weight_past_the_binding_is_unsupported() {
        let s = shape(&[2, 1 << 15]);
        assert!(plan(&s, Some(WeightShape::LastAxis), false, 64 * 1024).is_err());
        assert!(plan(&s, None, true, 64 * 1024).is_err());
        assert!(plan(&s, Some(WeightShape::Full), false, 64 * 1024).is_ok());
    }
}
