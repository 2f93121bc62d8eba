//! The matrix products' shader module (`shaders/matmul/`, one build per
//! pair of operand precisions) and its pipelines, built through the
//! context's pipeline cache.

use crate::core::pipelines::flag;
use crate::core::precision::Precision;
use crate::core::shaders::assemble;
use crate::core::storage::{storage_wgsl, Stored};
use crate::core::Context;
use crate::error::Result;

const BODY: &str = include_str!("../../../shaders/matmul/product.wgsl");
/// The A operand, with its vec4 view.
const LHS: &[Stored] = &[Stored::read("lhs", 1, Some(5))];
/// The B operand, with its vec4 view, and the bias (in B's precision).
const RHS: &[Stored] = &[
    Stored::read("rhs", 2, Some(6)),
    Stored::read("bias", 4, None),
];

/// The module for an A operand stored in `lhs` and a B operand (and bias)
/// in `rhs`: their storage (the core's scheme), then the body.
pub(crate) fn source(lhs: Precision, rhs: Precision) -> String {
    assemble(&[&storage_wgsl(&[(lhs, LHS), (rhs, RHS)]), BODY])
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
