//! The elementwise losses' shader module (`shaders/elementwise/`, its
//! tensors stored in the call's precision by the core's scheme) and its
//! pipelines, built through the context's pipeline cache.

use crate::core::pipelines::flag;
use crate::core::precision::Precision;
use crate::core::shaders::{assemble, ADDRESSING_WGSL, BLOCK_STATS_WGSL, SUBNORMAL_WGSL};
use crate::core::storage::{storage_wgsl, Stored};
use crate::core::Context;
use crate::error::Result;

const BODY: &str = include_str!("../../../shaders/elementwise/loss.wgsl");
/// The input, the target and the gradient, with their vec4 views.
const STORED: &[Stored] = &[
    Stored::read("input", 1, Some(11)),
    Stored::read("targets", 2, Some(12)),
    Stored::written("grad", 5, Some(15)),
];

/// The module for input, target and gradient stored in `precision`
/// (weights, losses and every sum stay f32): the storage, the body, the
/// block statistics (its fixed-order sums and input check) and the
/// subnormal logarithms (`Bce`'s logarithm of a subnormal probability).
pub(crate) fn source(precision: Precision) -> String {
    assemble(&[
        &storage_wgsl(&[(precision, STORED)]),
        BODY,
        ADDRESSING_WGSL,
        BLOCK_STATS_WGSL,
        SUBNORMAL_WGSL,
    ])
}

/// The switches of the module's override constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ElementwiseVariant {
    /// `LOSS`: [`ElementwiseLoss::code`](crate::ElementwiseLoss).
    pub loss: u32,
    pub has_weight: bool,
    /// The weight has the last axis's length.
    pub weight_last: bool,
    pub has_pos_weight: bool,
    pub write_grad: bool,
    /// The input's, the target's and the gradient's storage.
    pub precision: Precision,
}

impl Context {
    /// Entry point `entry` of variant `v`, built on first use and cached.
    pub(crate) fn elementwise_pipeline(
        &self,
        v: ElementwiseVariant,
        entry: &'static str,
    ) -> Result<wgpu::ComputePipeline> {
        v.precision
            .supported_on(&self.device, "f16 inputs and gradients")?;
        let constants = [
            ("LOSS", f64::from(v.loss)),
            ("HAS_WEIGHT", flag(v.has_weight)),
            ("WEIGHT_LAST", flag(v.weight_last)),
            ("HAS_POS_WEIGHT", flag(v.has_pos_weight)),
            ("WRITE_GRAD", flag(v.write_grad)),
        ];
        let build = ("elementwise", v.precision.code());
        self.pipeline(build, || source(v.precision), entry, &constants)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_build_parses_and_validates() {
        for precision in Precision::ALL {
            let what = format!("elementwise, {precision:?}");
            crate::core::pipelines::validates(&what, &source(precision));
        }
    }
}
