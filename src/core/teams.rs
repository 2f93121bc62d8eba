//! Teams (`shaders/lib/teams.wgsl`): the GPU kernels' neighbouring
//! invocations per row, how many a row gets and how much of it each lane
//! holds in registers, and when few long rows are split to fill a GPU;
//! shared by every op with row kernels.

use crate::error::{Error, Result};

/// Invocations per workgroup of the team kernels (`TEAM_WG` in
/// teams.wgsl): 8 SIMD groups of 32 (or 4 of 64) lanes, the size the
/// fastest loss kernels run rows at (quack, Liger), and the most WebGPU
/// promises every device takes.
pub(crate) const TEAM_WG: usize = 256;
/// The most values a team lane holds in registers between its passes
/// (`TEAM_HELD_MAX` in teams.wgsl: 64 f32 registers, widened from any
/// precision): rows of up to `TEAM_WG · TEAM_HELD_MAX` = 16 384 classes,
/// in f32, f16 and bf16 alike, are read from memory once by a kernel that
/// holds one value per class.
pub(crate) const TEAM_HELD_MAX: usize = 64;
/// A team lane takes about this many elements of its row per pass: short
/// rows get few lanes (several rows per workgroup), rows of 2048 classes or
/// more get all `TEAM_WG`.
pub(crate) const TEAM_ELEMENTS: usize = 8;
/// Invocations a GPU needs in flight to hide its memory latency: 2^18 is
/// about a full H100/H200 (132 SMs × 2048 resident invocations = 270 336)
/// and more than any smaller GPU holds. wgpu reports no SM count, so this
/// is a constant.
pub(crate) const GPU_LANES_FULL: usize = 1 << 18;
/// The shortest span of a row split on a GPU for occupancy, and the most
/// spans: every invocation of every span's workgroup merges all the row's
/// partials, work that grows as splits².
pub(crate) const GPU_SPLIT_SPAN_MIN: usize = 2048;
pub(crate) const GPU_SPLITS_MAX: usize = 128;

/// Lanes of a map team (a team per pixel of a map, `TEAM_WG / lanes`
/// neighbouring pixels side by side): 16, so that a workgroup's 16
/// pixels read 64 contiguous bytes of each class plane in f32 (a 32-byte
/// sector in bf16), then 32 (8 pixels) where 16 lanes' walks would loop more
/// than `trips_max`; `None` past 32 lanes'. `trips(lanes)` is the kernel's
/// loop count with that many lanes.
pub(crate) fn map_team_lanes(trips: impl Fn(usize) -> usize, trips_max: usize) -> Option<usize> {
    [MAP_TEAM_LANES, 2 * MAP_TEAM_LANES]
        .into_iter()
        .find(|&lanes| trips(lanes) <= trips_max)
}

/// See [`map_team_lanes`].
pub(crate) const MAP_TEAM_LANES: usize = 16;

/// Spans of a long row split on a GPU for occupancy: enough for `rows`
/// rows of `wg`-invocation workgroups per span to put `GPU_LANES_FULL`
/// invocations to work, no shorter than `GPU_SPLIT_SPAN_MIN` classes, at
/// most `GPU_SPLITS_MAX`, at least 2.
pub(crate) fn gpu_splits(rows: usize, classes: usize, wg: usize) -> usize {
    GPU_LANES_FULL
        .div_ceil(rows * wg)
        .min(classes / GPU_SPLIT_SPAN_MIN)
        .clamp(2, GPU_SPLITS_MAX)
}

/// The team kernels' invocations per row of `classes` classes: about
/// `TEAM_ELEMENTS` elements per lane, a power of two up to `TEAM_WG`.
pub(crate) fn team_lanes(classes: usize) -> usize {
    classes
        .div_ceil(TEAM_ELEMENTS)
        .next_power_of_two()
        .min(TEAM_WG)
}

/// `TEAM_HELD` for `units` units of a row (elements, or vec4s) over `lanes`
/// lanes, each lane holding at most `most`: a lane's share rounded up to a
/// power of two, or 0 (the row is read twice) past `most`.
pub(crate) fn team_held(units: usize, lanes: usize, most: usize) -> usize {
    match units.div_ceil(lanes).max(1).next_power_of_two() {
        held if held <= most => held,
        _ => 0,
    }
}

/// The specialisation `[("TEAM", lanes), ("TEAM_HELD", held)]` of a team
/// kernel whose held array has `held_most` entries (`TEAM_HELD_MAX`, or a
/// fraction of it: vec4s, two values a class), or [`Error::Unsupported`]
/// when it is outside the shader's range (a team a power of two of lanes
/// within its workgroup, holding a power of two of values up to its
/// array's, or none). A `TEAM_HELD` past the array would be clamped by the
/// bounds checks into a wrong result, never an error: hence this check.
pub(crate) fn check_team_spec(spec: &[(&'static str, u32)], held_most: usize) -> Result<()> {
    let fits = spec.iter().all(|&(name, n)| match name {
        "TEAM" => n.is_power_of_two() && n as usize <= TEAM_WG,
        "TEAM_HELD" => n == 0 || (n.is_power_of_two() && n as usize <= held_most),
        _ => true,
    });
    if fits {
        return Ok(());
    }
    Err(Error::Unsupported {
        what: "a team kernel specialised for this shape",
        reason: format!(
            "{spec:?} is outside the shader's range (TEAM a power of two up to {TEAM_WG}, \
             TEAM_HELD 0 or a power of two up to {held_most})"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_constants_shared_with_the_wgsl_agree() {
        use crate::core::binding::wgsl::wgsl_u32;
        use crate::core::shaders::{assemble, ONLINE_SOFTMAX_WGSL, TEAMS_WGSL};
        // The piece and what it needs from a module: the (max, sum-exp) merge.
        let source = &assemble(&[TEAMS_WGSL, ONLINE_SOFTMAX_WGSL]);
        assert_eq!(wgsl_u32(source, "TEAM_WG") as usize, TEAM_WG);
        assert_eq!(wgsl_u32(source, "TEAM_HELD_MAX") as usize, TEAM_HELD_MAX);
    }

    #[test]
    fn team_lanes_are_powers_of_two_of_about_eight_elements_each() {
        for (classes, lanes) in [
            (1, 1),
            (8, 1),
            (9, 2),
            (32, 4),
            (100, 16),
            (2048, 256),
            (2049, 256),
            (1 << 20, 256),
        ] {
            assert_eq!(team_lanes(classes), lanes, "C = {classes}");
        }
        for classes in 1..5000 {
            let lanes = team_lanes(classes);
            assert!(lanes.is_power_of_two() && TEAM_WG.is_multiple_of(lanes));
        }
    }

    #[test]
    fn few_long_rows_split_to_fill_a_gpu() {
        // 256 rows of 256 invocations: 2^18 / 2^16 = 4 spans.
        assert_eq!(gpu_splits(256, 50_257, 256), 4);
        // 16 rows: 2^18 / (16 · 64) = 256 spans, at most one per 2 048 classes.
        assert_eq!(gpu_splits(16, 128_256, 64), 62);
        assert_eq!(gpu_splits(1, 1 << 30, 64), GPU_SPLITS_MAX);
        assert_eq!(gpu_splits(1, 3000, 64), 2);
    }

    #[test]
    fn a_lane_holds_its_share_rounded_up_or_nothing() {
        for (units, lanes, most, held) in [
            (8, 1, 64, 8),
            (7, 1, 64, 8),
            (0, 4, 64, 1),
            (4097, 256, 64, 32),
            (16_384, 256, 64, 64),
            (16_385, 256, 64, 0),
            (8192, 256, 32, 32),
            (8193, 256, 32, 0),
        ] {
            assert_eq!(team_held(units, lanes, most), held, "{units} over {lanes}");
        }
    }

    #[test]
    fn specialisations_outside_the_shader_are_refused() {
        let most = TEAM_HELD_MAX;
        assert!(check_team_spec(&[("TEAM", 256), ("TEAM_HELD", 64)], most).is_ok());
        assert!(check_team_spec(&[("TEAM", 1), ("TEAM_HELD", 0)], most).is_ok());
        for bad in [
            ("TEAM", 512),
            ("TEAM", 3),
            ("TEAM_HELD", 128),
            ("TEAM_HELD", 6),
        ] {
            assert!(check_team_spec(&[bad], most).is_err(), "{bad:?}");
        }
        // A smaller array (a vec4 kernel's 16) refuses what fits the largest.
        assert!(check_team_spec(&[("TEAM_HELD", 32)], most / 4).is_err());
    }
}
