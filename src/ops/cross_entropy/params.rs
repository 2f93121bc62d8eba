//! What the cross-entropy module and its Rust side share: the binding
//! slots and the uniform's mirror, each held to the WGSL by a unit test.

use bytemuck::{Pod, Zeroable};

/// The binding slots of the cross-entropy module (`@binding(n)` in
/// `shaders/cross_entropy/`; a unit test holds each to its WGSL variable).
pub(crate) mod slot {
    pub const PARAMS: u32 = 0;
    pub const INPUT: u32 = 1;
    pub const TARGETS: u32 = 2;
    pub const WEIGHTS: u32 = 3;
    pub const AUX: u32 = 4;
    pub const STATUS: u32 = 5;
    pub const ROW_LOSS: u32 = 6;
    pub const GRAD: u32 = 7;
    pub const LOSS_OUT: u32 = 8;
    pub const SAMPLE_WEIGHTS: u32 = 9;
    pub const LSE_OUT: u32 = 10;
    pub const CORRECT_OUT: u32 = 11;
    pub const INPUT4: u32 = 12;
    pub const GRAD4: u32 = 13;
    pub const TARGETS4: u32 = 14;
    pub const SHARD_IN: u32 = 15;
    pub const SHARD_OUT: u32 = 16;
    pub const ARGMAX_OUT: u32 = 17;
    pub const ENTROPY_OUT: u32 = 18;
}

/// Mirrors `Params` in `shaders/cross_entropy/common.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct CrossEntropyParams {
    pub(crate) outer: u32,
    pub(crate) classes: u32,
    pub(crate) inner: u32,
    pub(crate) rows: u32,
    pub(crate) ignore_index: i32,
    pub(crate) reduction: u32,
    pub(crate) smoothing: f32,
    pub(crate) nan: f32,
    pub(crate) z_loss: f32,
    pub(crate) empty_mean_zero: u32,
    pub(crate) row_offset: u32,
    pub(crate) row_end: u32,
    pub(crate) splits: u32,
    pub(crate) span: u32,
    pub(crate) elem_offset: u32,
    pub(crate) target_delta: u32,
    pub(crate) flags: u32,
    pub(crate) argmax_at: u32,
    pub(crate) groups: u32,
    pub(crate) partials: u32,
    pub(crate) softcap: f32,
    pub(crate) all_classes: u32,
    pub(crate) class_offset: u32,
    pub(crate) shards: u32,
    pub(crate) temperature: f32,
    pub(crate) entropy_at: u32,
    pub(crate) tiles_at: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::binding::wgsl::{wgsl_fields, wgsl_struct, wgsl_u32};
    use crate::core::Reduction;
    use crate::ops::cross_entropy::buffers::{TARGET_I32, TARGET_PROBS, TARGET_U8};
    use crate::ops::cross_entropy::options::InputKind;
    use crate::ops::cross_entropy::plan::AUX_ROWS;
    use crate::ops::cross_entropy::strategy::NARROW_WG;

    #[test]
    fn the_binding_slots_match_the_wgsl() {
        use wgpu::naga;
        let ce = crate::ops::cross_entropy::pipelines::source(crate::core::Precision::F32, false);
        let module = naga::front::wgsl::parse_str(&ce).unwrap();
        let mut bound: Vec<(u32, String)> = module
            .global_variables
            .iter()
            .filter_map(|(_, v)| Some((v.binding.as_ref()?.binding, v.name.clone()?)))
            .collect();
        bound.sort();
        let want = vec![
            (slot::PARAMS, "p"),
            (slot::INPUT, "input"),
            (slot::TARGETS, "targets"),
            (slot::WEIGHTS, "weights"),
            (slot::AUX, "aux"),
            (slot::STATUS, "status"),
            (slot::ROW_LOSS, "row_loss"),
            (slot::GRAD, "grad"),
            (slot::LOSS_OUT, "loss_out"),
            (slot::SAMPLE_WEIGHTS, "sample_weights"),
            (slot::LSE_OUT, "lse_out"),
            (slot::CORRECT_OUT, "correct_out"),
            (slot::INPUT4, "input4"),
            (slot::GRAD4, "grad4"),
            (slot::TARGETS4, "targets4"),
            (slot::SHARD_IN, "shard_in"),
            (slot::SHARD_OUT, "shard_out"),
            (slot::ARGMAX_OUT, "argmax_out"),
            (slot::ENTROPY_OUT, "entropy_out"),
        ];
        let want: Vec<(u32, String)> = want.into_iter().map(|(n, s)| (n, s.to_string())).collect();
        assert_eq!(bound, want);
    }

    #[test]
    fn the_codes_and_sizes_shared_with_the_wgsl_agree() {
        let ce = crate::ops::cross_entropy::pipelines::source(crate::core::Precision::F32, false);
        let codes = [
            ("REDUCTION_NONE", Reduction::None.code()),
            ("REDUCTION_MEAN", Reduction::Mean.code()),
            ("INPUT_LOGITS", InputKind::Logits.code()),
            ("INPUT_LOG_PROBS", InputKind::LogProbs.code()),
            ("INPUT_PROBS", InputKind::Probs.code()),
            ("TARGET_I32", TARGET_I32),
            ("TARGET_U8", TARGET_U8),
            ("TARGET_PROBS", TARGET_PROBS),
            ("AUX_ROWS", AUX_ROWS as u32),
            ("NARROW_WG", NARROW_WG as u32),
        ];
        for (name, rust) in codes {
            assert_eq!(wgsl_u32(&ce, name), rust, "{name}");
        }
        // Reduction::Sum is the remaining code: the kernels test only NONE and MEAN.
        assert_eq!(Reduction::Sum.code(), 2);
        crate::ops::cross_entropy::plan::tests::shared_with(&ce);
    }

    #[test]
    fn the_rust_mirror_of_the_uniform_matches_the_wgsl() {
        let ce = crate::ops::cross_entropy::pipelines::source(crate::core::Precision::F32, false);
        let (size, members) = wgsl_struct(&ce, "Params");
        assert_eq!(size, std::mem::size_of::<CrossEntropyParams>());
        assert_eq!(
            members,
            wgsl_fields!(CrossEntropyParams: outer, classes, inner, rows, ignore_index, reduction,
                smoothing, nan, z_loss, empty_mean_zero, row_offset, row_end, splits, span,
                elem_offset, target_delta, flags, argmax_at, groups, partials, softcap, all_classes,
                class_offset, shards, temperature, entropy_at, tiles_at)
        );
    }
}
