//! Cross-entropy's shader module (assembled from `shaders/cross_entropy/`
//! and the shared pieces) and its pipelines: one per (variant, entry point,
//! specialisation), built through the context's pipeline cache.

use crate::core::pipelines::flag;
use crate::core::precision::Precision;
use crate::core::shaders::{
    assemble, ADDRESSING_WGSL, BLOCK_STATS_WGSL, ONLINE_SOFTMAX_WGSL, SUBNORMAL_WGSL, TEAMS_WGSL,
    WORKGROUP_TREES_WGSL,
};
use crate::core::storage::{storage_wgsl, Stored};
use crate::core::teams::{check_team_spec, TEAM_HELD_MAX};
use crate::core::Context;
use crate::error::{Error, Result};

/// The module's body, one job per piece, in reading order.
const BODY: [&str; 14] = [
    include_str!("../../../shaders/cross_entropy/common.wgsl"),
    include_str!("../../../shaders/cross_entropy/target_stats.wgsl"),
    include_str!("../../../shaders/cross_entropy/pass1.wgsl"),
    include_str!("../../../shaders/cross_entropy/row_plan.wgsl"),
    include_str!("../../../shaders/cross_entropy/rows_wide.wgsl"),
    include_str!("../../../shaders/cross_entropy/rows_narrow.wgsl"),
    include_str!("../../../shaders/cross_entropy/rows_vec4.wgsl"),
    include_str!("../../../shaders/cross_entropy/rows_quads.wgsl"),
    include_str!("../../../shaders/cross_entropy/rows_fixed.wgsl"),
    include_str!("../../../shaders/cross_entropy/rows_team.wgsl"),
    include_str!("../../../shaders/cross_entropy/split.wgsl"),
    include_str!("../../../shaders/cross_entropy/vocab.wgsl"),
    include_str!("../../../shaders/cross_entropy/loss_tiles.wgsl"),
    include_str!("../../../shaders/cross_entropy/reduce_loss.wgsl"),
];
/// The input and the gradient (written in place over the input's buffer),
/// with their vec4 views.
const STORED: &[Stored] = &[
    Stored::read("input", 1, Some(12)),
    Stored::written("grad", 7, Some(13)),
];
/// The merge of a row's partials: through workgroup memory, or by subgroup
/// shuffles where the device's subgroups hold a workgroup.
const WORKGROUP_REDUCTIONS_WGSL: &str =
    include_str!("../../../shaders/cross_entropy/workgroup_reductions.wgsl");
const SUBGROUP_REDUCTIONS_WGSL: &str =
    include_str!("../../../shaders/cross_entropy/subgroup_reductions.wgsl");

/// The cross-entropy module for input and gradient stored in `precision`
/// (sums stay f32): the storage, the body, the shared pieces it uses (the
/// online (max, sum-exp) merge, the block statistics, the subnormal
/// logarithms) and the row reductions (by subgroups or workgroup memory).
pub(crate) fn source(precision: Precision, subgroups: bool) -> String {
    // `enable f16;` must precede every declaration: the storage first.
    let storage = storage_wgsl(&[(precision, STORED)]);
    // Naga takes the subgroup builtins without `enable subgroups;` (it
    // rejects the directive as not yet implemented); the device feature
    // SUBGROUP is what allows them.
    let reductions: &[&str] = if subgroups {
        &[SUBGROUP_REDUCTIONS_WGSL]
    } else {
        &[WORKGROUP_REDUCTIONS_WGSL, WORKGROUP_TREES_WGSL]
    };
    let mut pieces = vec![storage.as_str()];
    pieces.extend(BODY);
    pieces.extend([
        ADDRESSING_WGSL,
        ONLINE_SOFTMAX_WGSL,
        BLOCK_STATS_WGSL,
        SUBNORMAL_WGSL,
        TEAMS_WGSL,
    ]);
    pieces.extend(reductions);
    assemble(&pieces)
}

/// The switches of the module's override constants: one pipeline set per
/// combination in use, so the kernels' loops carry no branches for options
/// that are off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CrossEntropyVariant {
    pub target_kind: u32,
    pub input_kind: u32,
    pub has_weights: bool,
    pub has_sample_weights: bool,
    pub smoothing: bool,
    pub z_loss: bool,
    pub softcap: bool,
    /// A temperature other than 1.
    pub temperature: bool,
    pub write_grad: bool,
    pub write_lse: bool,
    pub count_correct: bool,
    /// Each row's predicted class and entropy, into `aux` (`row_outputs` copies them out).
    pub write_argmax: bool,
    pub write_entropy: bool,
    pub in_place: bool,
    /// The input is a window of rows refilled between chunks.
    pub row_window: bool,
    /// The finish of a vocabulary shard (`SHARDED`).
    pub sharded: bool,
    /// The input's and the gradient's storage (the module built for it).
    pub precision: Precision,
}

impl CrossEntropyVariant {
    /// Every switch off, f32 class-index targets and logits: the variant of
    /// entry points that use none of them (the vocabulary merge sets its
    /// input kind).
    pub(crate) fn plain() -> Self {
        Self {
            target_kind: 0,
            input_kind: 0,
            has_weights: false,
            has_sample_weights: false,
            smoothing: false,
            z_loss: false,
            softcap: false,
            temperature: false,
            write_grad: false,
            write_lse: false,
            count_correct: false,
            write_argmax: false,
            write_entropy: false,
            in_place: false,
            row_window: false,
            sharded: false,
            precision: Precision::F32,
        }
    }

    /// The override constants of this variant, on a device whose wide
    /// kernels run `wide_wg` invocations.
    fn constants(&self, wide_wg: usize) -> Vec<(&'static str, f64)> {
        vec![
            ("TARGET_KIND", f64::from(self.target_kind)),
            ("INPUT_KIND", f64::from(self.input_kind)),
            ("HAS_WEIGHTS", flag(self.has_weights)),
            ("HAS_SAMPLE_WEIGHTS", flag(self.has_sample_weights)),
            ("SMOOTHING", flag(self.smoothing)),
            ("Z_LOSS", flag(self.z_loss)),
            ("SOFTCAP", flag(self.softcap)),
            ("TEMPERATURE", flag(self.temperature)),
            ("WRITE_GRAD", flag(self.write_grad)),
            ("WRITE_LSE", flag(self.write_lse)),
            ("COUNT_CORRECT", flag(self.count_correct)),
            ("WRITE_ARGMAX", flag(self.write_argmax)),
            ("WRITE_ENTROPY", flag(self.write_entropy)),
            ("IN_PLACE", flag(self.in_place)),
            ("ROW_WINDOW", flag(self.row_window)),
            ("SHARDED", flag(self.sharded)),
            ("WIDE_WG", wide_wg as f64),
        ]
    }
}

impl Context {
    /// Entry point `entry` of variant `v`, specialised for the override
    /// constant `spec` names (`FIXED_N` of `rows_narrow4_fixed` and
    /// `rows_pixels4_fixed`, `TEAM` of `rows_team` and `rows_team4`), built
    /// on first use and cached.
    pub(crate) fn cross_entropy_pipeline(
        &self,
        v: CrossEntropyVariant,
        entry: &'static str,
        spec: &[(&'static str, u32)],
    ) -> Result<wgpu::ComputePipeline> {
        // The team kernels hold TEAM_HELD_MAX values (a quarter as many
        // vec4s in rows_team4); the fixed kernels' row array MAX_FIXED = 32 vec4s.
        let held_most = match entry {
            "rows_team4" => TEAM_HELD_MAX / 4,
            _ => TEAM_HELD_MAX,
        };
        check_team_spec(spec, held_most)?;
        if let Some(&(name, n)) = spec.iter().find(|&&(name, n)| name == "FIXED_N" && n > 32) {
            return Err(Error::Unsupported {
                what: "a kernel specialised for this shape",
                reason: format!("{name} = {n} is outside the shader's range 1..=32"),
            });
        }
        v.precision
            .supported_on(&self.device, "f16 logits and gradients")?;
        let mut constants = v.constants(self.profile.wide_wg);
        constants.extend(spec.iter().map(|&(name, n)| (name, f64::from(n))));
        let subgroups = self.profile.subgroups;
        let build = (
            "cross_entropy",
            v.precision.code() * 2 + u32::from(subgroups),
        );
        self.pipeline(build, || source(v.precision, subgroups), entry, &constants)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::pipelines::validates;
    use crate::core::test_context;

    #[test]
    fn every_build_parses_and_validates() {
        for precision in Precision::ALL {
            for subgroups in [false, true] {
                let what = format!("cross-entropy, {precision:?}, subgroups {subgroups}");
                validates(&what, &source(precision, subgroups));
            }
        }
    }

    fn cached(ctx: &Context) -> Vec<(&'static str, u32)> {
        let keys = ctx.pipelines.cached("cross_entropy").into_iter();
        keys.map(|k| {
            let spec = k
                .constants
                .iter()
                .find(|(n, _)| *n == "FIXED_N" || *n == "TEAM");
            (k.entry, spec.map_or(0, |&(_, v)| f64::from_bits(v) as u32))
        })
        .collect()
    }

    #[test]
    fn a_call_builds_only_the_entry_points_it_uses() {
        // The software table's plan, on any adapter.
        let Some(ctx) = test_context() else { return };
        let ctx = ctx.with_device_class(crate::core::DeviceClass::Software);
        let x = vec![0.0f32; 64 * 32];
        ctx.cross_entropy(
            &x,
            &[64, 32],
            &[1i64; 64],
            None,
            &Default::default(),
            &Default::default(),
        )
        .unwrap();
        let mut built = cached(&ctx);
        built.sort();
        assert_eq!(
            built,
            vec![
                ("loss_tiles", 0),
                ("reduce_loss", 0),
                ("rows_narrow4_fixed", 8),
                ("target_stats", 0)
            ]
        );
    }

    #[test]
    fn the_pipeline_cache_is_bounded_and_drops_the_least_recently_used() {
        let Some(ctx) = test_context() else { return };
        ctx.pipelines.reset(4);
        let call = |c: usize| {
            let x = vec![0.0f32; 4 * c];
            let out = ctx
                .cross_entropy(
                    &x,
                    &[4, c],
                    &[0i64; 4],
                    None,
                    &Default::default(),
                    &Default::default(),
                )
                .unwrap();
            assert!(
                (out.loss[0] - (c as f32).ln()).abs() < 1e-5,
                "{c}: {:?}",
                out.loss
            );
        };
        // Each class count has its own specialised pipeline (plus the two
        // reductions): 8 of them through a cache of 4.
        for c in (4..=32).step_by(4) {
            call(c);
            assert!(cached(&ctx).len() <= 4);
        }
        let now = cached(&ctx);
        assert!(now.contains(&("rows_narrow4_fixed", 8)), "{now:?}");
        assert!(!now.contains(&("rows_narrow4_fixed", 1)), "{now:?}");
        // A dropped pipeline is built again when used again.
        call(4);
        assert!(cached(&ctx).contains(&("rows_narrow4_fixed", 1)));
    }
}
