//! The matrix products' shader module (`shaders/matmul/`, one build per
//! pair of operand precisions) and its pipelines, built through the
//! context's pipeline cache.

use crate::core::pipelines::flag;
use crate::core::precision::Precision;
use crate::core::shaders::{assemble, BF16_WGSL};
use crate::core::Context;
use crate::error::Result;

const BODY: &str = include_str!("../../../shaders/matmul/product.wgsl");
const ENABLE_F16_WGSL: &str = include_str!("../../../shaders/matmul/enable_f16.wgsl");
/// The A operand's storage and accessors, by precision code.
const LHS_WGSL: [&str; 3] = [
    include_str!("../../../shaders/matmul/lhs_f32.wgsl"),
    include_str!("../../../shaders/matmul/lhs_f16.wgsl"),
    include_str!("../../../shaders/matmul/lhs_bf16.wgsl"),
];
/// The B operand's (and the bias's) storage and accessors, by precision code.
const RHS_WGSL: [&str; 3] = [
    include_str!("../../../shaders/matmul/rhs_f32.wgsl"),
    include_str!("../../../shaders/matmul/rhs_f16.wgsl"),
    include_str!("../../../shaders/matmul/rhs_bf16.wgsl"),
];

/// The module for an A operand stored in `lhs` and a B operand (and bias)
/// in `rhs`: `enable f16;` first when either is f16, the operands' storage,
/// the body, the shared bf16 piece when either is bf16.
pub(crate) fn source(lhs: Precision, rhs: Precision) -> String {
    let mut pieces = Vec::new();
    if lhs == Precision::F16 || rhs == Precision::F16 {
        pieces.push(ENABLE_F16_WGSL);
    }
    pieces.extend([
        LHS_WGSL[lhs.code() as usize],
        RHS_WGSL[rhs.code() as usize],
        BODY,
    ]);
    if lhs == Precision::BF16 || rhs == Precision::BF16 {
        pieces.push(BF16_WGSL);
    }
    assemble(&pieces)
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
}

impl Context {
    /// Entry point `entry` (`matmul`, `matmul_blocks` or `column_sums`) of
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
            ],
            _ => Vec::new(),
        };
        let build = ("matmul", v.lhs.code() * 3 + v.rhs.code());
        self.pipeline(build, || source(v.lhs, v.rhs), entry, &constants)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_build_parses_and_validates() {
        for lhs in Precision::ALL {
            for rhs in Precision::ALL {
                let what = format!("matmul, {lhs:?} x {rhs:?}");
                crate::core::pipelines::validates(&what, &source(lhs, rhs));
            }
        }
    }
}
