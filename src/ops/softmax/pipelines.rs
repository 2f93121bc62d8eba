//! Softmax's shader module (`shaders/softmax/`, its tensors stored in the
//! call's precision by the core's scheme) and its pipelines, built through
//! the context's pipeline cache.

use super::plan::SoftmaxDirection;
use crate::core::pipelines::PIPELINE_CACHE_MAX;
use crate::core::precision::Precision;
use crate::core::shaders::{
    assemble, ADDRESSING_WGSL, ONLINE_SOFTMAX_WGSL, TEAMS_WGSL, WORKGROUP_TREES_WGSL,
};
use crate::core::storage::{storage_wgsl, Stored};
use crate::core::teams::check_team_spec;
use crate::core::Context;
use crate::error::Result;

/// The module's body: the row kernels, the team kernels.
const BODY: [&str; 2] = [
    include_str!("../../../shaders/softmax/kernels.wgsl"),
    include_str!("../../../shaders/softmax/teams.wgsl"),
];
/// The input (or forward output), the output, and the upstream gradient.
/// Each with its vec4 view (the same region) for the vec4 teams.
const STORED: &[Stored] = &[
    Stored::read("x", 1, Some(5)),
    Stored::written("y", 2, Some(6)),
    Stored::read("dy", 3, Some(7)),
];

// A call's entry points (two at most) fit in the cache many times over.
const _: () = assert!(PIPELINE_CACHE_MAX >= 8);

/// The softmax module for input, output and upstream gradient stored in
/// `precision` (bf16 with the shared bf16 piece): the storage, the kernels,
/// the online (max, sum-exp) merge, the workgroup trees and the teams.
pub(crate) fn source(precision: Precision) -> String {
    assemble(&[
        &storage_wgsl(&[(precision, STORED)]),
        BODY[0],
        BODY[1],
        ADDRESSING_WGSL,
        ONLINE_SOFTMAX_WGSL,
        WORKGROUP_TREES_WGSL,
        TEAMS_WGSL,
    ])
}

impl Context {
    /// The pipeline of `entry` storing in `precision`, specialised by `spec`
    /// (a team's `TEAM` and `TEAM_HELD`), built on first use (f16 needs
    /// `SHADER_F16`).
    pub(crate) fn softmax_pipeline(
        &self,
        precision: Precision,
        entry: &'static str,
        spec: &[(&'static str, u32)],
    ) -> Result<wgpu::ComputePipeline> {
        check_team_spec(spec, SoftmaxDirection::held_array(entry))?;
        precision.supported_on(&self.device, "f16 softmax inputs and outputs")?;
        let build = ("softmax", precision.code());
        let constants: Vec<_> = spec.iter().map(|&(n, v)| (n, f64::from(v))).collect();
        self.pipeline(build, || source(precision), entry, &constants)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_build_parses_and_validates() {
        for precision in Precision::ALL {
            let what = format!("softmax, {precision:?}");
            crate::core::pipelines::validates(&what, &source(precision));
        }
    }
}
