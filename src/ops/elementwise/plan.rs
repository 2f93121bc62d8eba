//! The plan of an elementwise loss call: its chunks past the binding
//! limit, its kernel and its blocks, every limit checked before anything is
//! recorded.

use super::options::WeightShape;
use super::validate::Elements;
use crate::error::{Error, Result};
use crate::gpu::Context;
use crate::ops::cross_entropy::plan::LOOP_TRIPS_MAX;

/// Elements per workgroup of the elementwise kernels (`BLOCK` in
/// `shaders/elementwise/loss.wgsl`): 64 loop trips of the scalar kernel,
/// 16 of the vec4 one, per invocation.
pub(crate) const BLOCK: usize = 4096;
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
    /// Blocks over every chunk: the reduce's count and the scratch's size.
    pub blocks: usize,
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

    /// Loop trips per invocation of the elementwise kernel and of the reduce.
    pub fn loop_trips(&self) -> (usize, usize) {
        let per = BLOCK / ELEMENTWISE_WG;
        (
            if self.vec4 { per / 4 } else { per },
            self.blocks.div_ceil(ELEMENTWISE_WG),
        )
    }

    /// Bytes of the blocks' stats.
    pub fn scratch_bytes(&self) -> u64 {
        (self.blocks * STATS_WORDS * 4).max(16) as u64
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
    let per = ((max_binding / 4) as usize / BLOCK).max(1) * BLOCK;
    let chunks = (0..shape.len)
        .step_by(per)
        .map(|e0| (e0, (e0 + per).min(shape.len)))
        .collect();
    let plan = ElementwisePlan {
        chunks,
        vec4: shape.len.is_multiple_of(4),
        blocks: shape.len.div_ceil(BLOCK),
    };
    debug_assert!(plan.loop_trips().1 <= LOOP_TRIPS_MAX);
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
        assert_eq!((p.entry(), p.blocks), ("elementwise4", 4096));
        assert_eq!(p.chunks, vec![(0, 1 << 24)]);
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
        for len in [1usize, 4095, 4096, 4097, 1 << 24, u32::MAX as usize - 1] {
            let p = plan(&shape(&[len]), None, false, 4 << 30).unwrap();
            let (main, reduce) = p.loop_trips();
            assert!(
                main <= LOOP_TRIPS_MAX && reduce <= LOOP_TRIPS_MAX,
                "{len}: {main}, {reduce}"
            );
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
