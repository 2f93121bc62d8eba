//! Softmax's shader module (`shaders/softmax/`, its tensors stored in the
//! call's precision by the core's scheme) and its pipelines, built through
//! the context's pipeline cache.

use crate::core::pipelines::PIPELINE_CACHE_MAX;
use crate::core::precision::Precision;
use crate::core::shaders::{assemble, ADDRESSING_WGSL, ONLINE_SOFTMAX_WGSL, WORKGROUP_TREES_WGSL};
use crate::core::storage::{storage_wgsl, Stored};
use crate::core::Context;
use crate::error::Result;

const BODY: &str = include_str!("../../../shaders/softmax/kernels.wgsl");
/// The input (or forward output), the output, and the upstream gradient.
const STORED: &[Stored] = &[
    Stored::read("x", 1, None),
    Stored::written("y", 2, None),
    Stored::read("dy", 3, None),
];

// A call's four entry points fit in the cache many times over.
const _: () = assert!(PIPELINE_CACHE_MAX >= 8);

/// The softmax module for input, output and upstream gradient stored in
/// `precision` (bf16 with the shared bf16 piece): the storage, the kernels,
/// the online (max, sum-exp) merge and the workgroup trees.
pub(crate) fn source(precision: Precision) -> String {
    assemble(&[
        &storage_wgsl(&[(precision, STORED)]),
        BODY,
        ADDRESSING_WGSL,
        ONLINE_SOFTMAX_WGSL,
        WORKGROUP_TREES_WGSL,
    ])
}

impl Context {
    /// The pipelines of `entries` storing in `precision`, built on first use
    /// (f16 needs `SHADER_F16`).
    pub(crate) fn softmax_pipelines<const K: usize>(
        &self,
        precision: Precision,
        entries: [&'static str; K],
    ) -> Result<[wgpu::ComputePipeline; K]> {
        precision.supported_on(&self.device, "f16 softmax inputs and outputs")?;
        let build = ("softmax", precision.code());
        let mut built = Vec::with_capacity(K);
        for entry in entries {
            built.push(self.pipeline(build, || source(precision), entry, &[])?);
        }
        Ok(built
            .try_into()
            .unwrap_or_else(|_| unreachable!("K pipelines")))
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
