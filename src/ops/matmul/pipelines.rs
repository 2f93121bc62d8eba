//! The matrix products' shader module (`shaders/matmul/`, one build per
//! pair of operand precisions) and its pipelines, built through the
//! context's pipeline cache.

use crate::core::pipelines::flag;
use crate::core::precision::Precision;
use crate::core::shaders::assemble;
use crate::core::storage::{storage_wgsl, Stored};
use crate::core::Context;
use crate::error::Result;

const PARAMS: &str = include_str!("../../../shaders/matmul/params.wgsl");
const BODY: &str = include_str!("../../../shaders/matmul/product.wgsl");
const SPLIT: &str = include_str!("../../../shaders/matmul/split.wgsl");
const FILTER: &str = include_str!("../../../shaders/matmul/filter.wgsl");
const COOP: &str = include_str!("../../../shaders/matmul/coop.wgsl");
const COOP_NATIVE: &str = include_str!("../../../shaders/matmul/coop_native.wgsl");
const COOP_EMULATED: &str = include_str!("../../../shaders/matmul/coop_emulated.wgsl");
/// The A operand, with its vec4 view.
const LHS: &[Stored] = &[Stored::read("lhs", 1, Some(5))];
/// The B operand, with its vec4 view, and the bias (in B's precision).
const RHS: &[Stored] = &[
    Stored::read("rhs", 2, Some(6)),
    Stored::read("bias", 4, None),
];

/// The module for an A operand stored in `lhs` and a B operand (and bias)
/// in `rhs`: their storage (the core's scheme), then the body and split
/// k's sum (its partial sums read as an f32 A).
pub(crate) fn source(lhs: Precision, rhs: Precision) -> String {
    assemble(&[
        &storage_wgsl(&[(lhs, LHS), (rhs, RHS)]),
        PARAMS,
        FILTER,
        BODY,
        SPLIT,
    ])
}

/// The cooperative product's module: the same storage, its body, and its
/// primitives on the hardware's matrices (`native`, with their `enable`s
/// first) or emulated.
pub(crate) fn coop_source(lhs: Precision, rhs: Precision, native: bool) -> String {
    let storage = storage_wgsl(&[(lhs, LHS), (rhs, RHS)]);
    if native {
        let storage = storage.replace("enable f16;\n", "");
        let enables = "enable f16;\nenable wgpu_cooperative_matrix;\n";
        assemble(&[enables, &storage, PARAMS, FILTER, COOP, COOP_NATIVE])
    } else {
        assemble(&[&storage, PARAMS, FILTER, COOP, COOP_EMULATED])
    }
}

/// The switches of the products' override constants and the operands'
/// storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct MatmulVariant {
    pub lhs: Precision,
    pub rhs: Precision,
    pub a_k_contig: bool,
    pub b_k_contig: bool,
    pub a_vec: bool,
    pub b_vec: bool,
    pub has_bias: bool,
    /// Gradient filtering (`filter.rs`, `shaders/matmul/filter.wgsl`).
    pub filter: bool,
}

impl Context {
    /// Entry point `entry` (`matmul`, `matmul_blocks`, `sum_slices` or `column_sums`) of
    /// variant `v`, built on first use and cached.
    pub(crate) fn matmul_pipeline(
        &self,
        v: MatmulVariant,
        entry: &'static str,
    ) -> Result<wgpu::ComputePipeline> {
        v.lhs.supported_on(&self.device, "f16 operands")?;
        v.rhs.supported_on(&self.device, "f16 operands")?;
        let constants: Vec<(&str, f64)> = match entry {
            "matmul" | "matmul_blocks" => vec![
                ("A_K_CONTIG", flag(v.a_k_contig)),
                ("B_K_CONTIG", flag(v.b_k_contig)),
                ("A_VEC", flag(v.a_vec)),
                ("B_VEC", flag(v.b_vec)),
                ("HAS_BIAS", flag(v.has_bias)),
                ("FILTER", flag(v.filter)),
            ],
            "sum_slices" => vec![("HAS_BIAS", flag(v.has_bias))],
            _ => Vec::new(),
        };
        let build = ("matmul", v.lhs.code() * 3 + v.rhs.code());
        self.pipeline(build, || source(v.lhs, v.rhs), entry, &constants)
    }

    /// `matmul_coop` of variant `v`, on the hardware's matrices (`native`)
    /// or emulated, built on first use and cached.
    pub(crate) fn coop_pipeline(
        &self,
        v: MatmulVariant,
        native: bool,
    ) -> Result<wgpu::ComputePipeline> {
        v.lhs.supported_on(&self.device, "f16 operands")?;
        v.rhs.supported_on(&self.device, "f16 operands")?;
        let constants = [
            ("A_K_CONTIG", flag(v.a_k_contig)),
            ("B_K_CONTIG", flag(v.b_k_contig)),
            ("HAS_BIAS", flag(v.has_bias)),
            ("A_SPLIT", flag(v.lhs == Precision::F32)),
            ("B_SPLIT", flag(v.rhs == Precision::F32)),
            ("FILTER", flag(v.filter)),
        ];
        let module = if native {
            "matmul_coop"
        } else {
            "matmul_coop_emulated"
        };
        let build = (module, v.lhs.code() * 3 + v.rhs.code());
        let make = || coop_source(v.lhs, v.rhs, native);
        self.pipeline(build, make, "matmul_coop", &constants)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wgpu::naga;

    /// The cooperative module as the Vulkan backend lowers it: its
    /// overrides set, then SPIR-V 1.6 for its one entry point. Naga 30
    /// validates modules whose SPIR-V it then cannot write (a store's
    /// inline arguments) or writes without its extension (no variable of a
    /// matrix type); this is where those would show, on every machine.
    #[test]
    fn the_cooperative_module_lowers_to_spirv() {
        for (lhs, rhs) in [
            (Precision::BF16, Precision::BF16),
            (Precision::F16, Precision::BF16),
            (Precision::F32, Precision::BF16),
            (Precision::F32, Precision::F32),
        ] {
            let source = coop_source(lhs, rhs, true);
            let module = naga::front::wgsl::parse_str(&source).expect("parses");
            let caps = naga::valid::Capabilities::COOPERATIVE_MATRIX
                | naga::valid::Capabilities::SHADER_FLOAT16;
            let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
                .validate(&module)
                .expect("validates");
            let split = |p| f64::from(u8::from(p == Precision::F32));
            let constants = [
                ("A_K_CONTIG", 0.0),
                ("B_K_CONTIG", 1.0),
                ("HAS_BIAS", 1.0),
                ("A_SPLIT", split(lhs)),
                ("B_SPLIT", split(rhs)),
                // The fused op filters its gradient products (A: the f32 window).
                ("FILTER", split(lhs)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            let (module, info) =
                naga::back::pipeline_constants::process_overrides(&module, &info, None, &constants)
                    .expect("overrides");
            let options = naga::back::spv::Options {
                lang_version: (1, 6),
                ..Default::default()
            };
            let pipeline = naga::back::spv::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: "matmul_coop".into(),
            };
            let words = naga::back::spv::write_vec(&module, &info, &options, Some(&pipeline))
                .expect("SPIR-V");
            // OpExtension "SPV_KHR_cooperative_matrix" is in the words.
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            let needle = b"SPV_KHR_cooperative_matrix";
            assert!(
                bytes.windows(needle.len()).any(|w| w == needle),
                "{lhs:?} x {rhs:?}"
            );
        }
    }

    #[test]
    fn every_build_parses_and_validates() {
        for lhs in Precision::ALL {
            for rhs in Precision::ALL {
                let what = format!("matmul, {lhs:?} x {rhs:?}");
                crate::core::pipelines::validates(&what, &source(lhs, rhs));
                for native in [false, true] {
                    let what = format!("matmul_coop (native: {native}), {lhs:?} x {rhs:?}");
                    crate::core::pipelines::validates(&what, &coop_source(lhs, rhs, native));
                }
            }
        }
    }
}
