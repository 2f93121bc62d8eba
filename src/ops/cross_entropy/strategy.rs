//! Which strategy spreads a cross-entropy call's rows over invocations:
//! the strategies and their tuning constants, each one's loop count under
//! the loop bound, entry point and grid. Choosing one is in `choose.rs`.

use crate::core::device::LOOP_TRIPS_MAX;
use crate::core::shape::Layout;
use crate::core::teams::{self, TEAM_HELD_MAX};
pub(crate) use crate::core::teams::{
    gpu_splits, team_lanes, GPU_LANES_FULL, MAP_TEAM_LANES, TEAM_WG,
};

/// Rows with at least this many classes get a workgroup each; shorter rows
/// (and every channel-first map) get an invocation each (software adapters).
pub(crate) const WIDE_MIN_CLASSES: usize = 128;
/// Long rows (at least this many classes) that are too few to keep the device
/// busy are split over several workgroups each: on a software adapter, fewer
/// than `SPLIT_ROWS_BELOW_CPU` rows (its few threads a handful of rows
/// already occupy, and there the extra passes cost more than they give); on
/// a GPU, rows whose team kernel would run fewer than `GPU_LANES_FULL`
/// invocations.
pub(crate) const SPLIT_MIN_CLASSES: usize = 16_384;
pub(crate) const SPLIT_ROWS_BELOW_CPU: usize = 4;
/// Classes per workgroup of a split row chosen for occupancy (before the
/// clamp to `OCCUPANCY_SPLITS`), on software adapters.
pub(crate) const SPLIT_SPAN: usize = 8192;
pub(crate) const OCCUPANCY_SPLITS: usize = 32;

/// Classes per block of the per-pixel kernels' loss sums (`SUM_BLOCK` in the shader).
pub(crate) const SUM_BLOCK: usize = 32;

/// Workgroup size of the per-invocation kernels (`*_narrow` in the shaders).
pub(crate) const NARROW_WG: usize = 64;

/// Rows of at most this many quads (`Narrow4`) run `rows_narrow4_fixed`,
/// specialised for their class count, the row held in registers.
pub(crate) const FIXED_QUADS_MAX: usize = 16;
/// Maps of at most this many classes (`Pixels4`) run `rows_pixels4_fixed`.
pub(crate) const FIXED_CLASSES_MAX: usize = 32;
// Both kernels hold the row in `array<vec4<f32>, MAX_FIXED>` (32) in the shader.
const _: () = assert!(FIXED_QUADS_MAX <= 32 && FIXED_CLASSES_MAX <= 32);

/// How the rows of one call are spread over invocations (see ARCHITECTURE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowStrategy {
    /// A workgroup per row, scalar access.
    Wide,
    /// An invocation per row, scalar access (any layout).
    Narrow,
    /// A workgroup per row, vec4 access (inner = 1, C % 4 = 0).
    Wide4,
    /// A workgroup per row, vec4 access to rows that start and end
    /// mid-vec4 (inner = 1, any C), then `mixed_seams` for the vec4s that
    /// two rows share; where a buffer ends inside the vec4 holding the
    /// tensor's last element, the same walk through scalar views
    /// (`rows_wide_quads`, the same bits).
    WideMixed,
    /// An invocation per row, vec4 access (inner = 1, C % 4 = 0).
    Narrow4,
    /// Four neighbouring pixels per invocation, vec4 access (inner % 4 = 0).
    Pixels4,
    /// `splits` workgroups per row over spans of classes, their (max,
    /// sum-exp) partials merged: few long rows (inner = 1), or any layout
    /// whose other strategy would pass the loop bound.
    Split {
        /// Workgroups per row.
        splits: usize,
    },
    /// A team of `lanes` neighbouring invocations per row, `TEAM_WG / lanes`
    /// rows per workgroup, scalar access (inner = 1): coalesced on a GPU.
    Team {
        /// Invocations per row: a power of two from 1 to `TEAM_WG`.
        lanes: usize,
    },
    /// As `Team`, vec4 access (inner = 1, C % 4 = 0).
    Team4 {
        /// Invocations per row: a power of two from 1 to `TEAM_WG`.
        lanes: usize,
    },
    /// A team of `lanes` invocations per pixel of a map (inner > 1),
    /// `TEAM_WG / lanes` neighbouring pixels per workgroup, pixel fastest:
    /// coalesced across pixels. GPUs, maps too long for an invocation per
    /// pixel.
    MapTeam {
        /// Invocations per pixel: a power of two from 1 to `TEAM_WG`.
        lanes: usize,
    },
}

/// Lanes of a map team (`RowStrategy::MapTeam`) for `classes` classes
/// (`teams::map_team_lanes`), or `None` past 32 lanes' loop bound.
pub(crate) fn map_team_lanes(classes: usize) -> Option<usize> {
    let trips = |lanes| RowStrategy::MapTeam { lanes }.loop_trips(classes, 1);
    teams::map_team_lanes(trips, LOOP_TRIPS_MAX)
}

/// `TEAM_HELD` of the team kernels for rows of `classes` classes over
/// `lanes` lanes: each lane's share of elements (or vec4s for `vec4`) held,
/// or 0 (read twice) past `TEAM_HELD_MAX` values.
pub(crate) fn team_held(classes: usize, lanes: usize, vec4: bool) -> usize {
    match vec4 {
        true => teams::team_held(classes / 4, lanes, TEAM_HELD_MAX / 4),
        false => teams::team_held(classes, lanes, TEAM_HELD_MAX),
    }
}

impl RowStrategy {
    /// The most loop iterations one invocation of this strategy's rows
    /// passes runs for rows of `classes` classes (an upper bound, counted
    /// from the kernels' loops; the fixed-class kernels loop over at most 32
    /// quads or classes five times).
    pub(crate) fn loop_trips(self, classes: usize, wide_wg: usize) -> usize {
        let tree = 2 * wide_wg.max(2).ilog2() as usize;
        // The two-stream walks take two elements (or vec4s) per iteration.
        let walk = |elements: usize| elements.div_ceil(2).div_ceil(wide_wg);
        match self {
            RowStrategy::Wide => 2 * walk(classes) + tree,
            // Plus the up to 3 + 3 elements in shared vec4s, outside any loop.
            RowStrategy::Wide4 | RowStrategy::WideMixed => 2 * walk(classes / 4) + tree,
            // Pass 1 four classes at a time and the rest one by one; pass 2
            // one by one, in blocks of SUM_BLOCK.
            RowStrategy::Narrow => classes / 4 + 3 + classes + classes.div_ceil(SUM_BLOCK),
            RowStrategy::Narrow4 if self.fixed_n(classes).is_some() => 5 * FIXED_QUADS_MAX,
            RowStrategy::Pixels4 if self.fixed_n(classes).is_some() => 5 * FIXED_CLASSES_MAX,
            RowStrategy::Narrow4 => 2 * (classes / 4),
            RowStrategy::Pixels4 => 2 * classes + classes.div_ceil(SUM_BLOCK),
            RowStrategy::Split { splits } => {
                let span = classes.div_ceil(splits);
                // split_rows merges the row's partials, then walks its span;
                // split_finish merges them again and adds two sums over them.
                (splits + walk(span) + tree).max(3 * splits)
            }
            // Two passes of a lane's share (or of what it holds, at least
            // its share), two trees of log2(lanes) levels.
            RowStrategy::Team { lanes } => {
                let share = classes
                    .div_ceil(lanes)
                    .max(team_held(classes, lanes, false));
                2 * share + 2 * lanes.max(2).ilog2() as usize
            }
            RowStrategy::Team4 { lanes } => {
                let share = (classes / 4)
                    .div_ceil(lanes)
                    .max(team_held(classes, lanes, true));
                2 * share + 2 * lanes.max(2).ilog2() as usize
            }
            RowStrategy::MapTeam { lanes } => {
                2 * classes.div_ceil(lanes) + 2 * lanes.max(2).ilog2() as usize
            }
        }
    }

    /// `FIXED_N` of the kernel specialised for the class count that this
    /// strategy runs for rows of `classes` classes (`rows_narrow4_fixed`:
    /// quads, `rows_pixels4_fixed`: classes), if it runs one.
    pub(crate) fn fixed_n(self, classes: usize) -> Option<u32> {
        match self {
            RowStrategy::Narrow4 if classes / 4 <= FIXED_QUADS_MAX => Some((classes / 4) as u32),
            RowStrategy::Pixels4 if classes <= FIXED_CLASSES_MAX => Some(classes as u32),
            _ => None,
        }
    }

    /// The override constants the rows pipeline is specialised for:
    /// `FIXED_N` (the fixed kernels), or `TEAM` and `TEAM_HELD` (the team
    /// kernels' lanes and what each holds).
    pub(crate) fn specialisation(self, classes: usize) -> Vec<(&'static str, u32)> {
        match self {
            RowStrategy::Team { lanes } | RowStrategy::Team4 { lanes } => {
                let held = team_held(classes, lanes, self.is_vec4());
                vec![("TEAM", lanes as u32), ("TEAM_HELD", held as u32)]
            }
            RowStrategy::MapTeam { lanes } => vec![("TEAM", lanes as u32)],
            _ => self
                .fixed_n(classes)
                .map(|n| ("FIXED_N", n))
                .into_iter()
                .collect(),
        }
    }

    /// Whether the rows kernel's workgroups hold whole tiles of the loss's
    /// sum (`TILE_ROWS` rows: loss_tiles.wgsl), so that it can sum them
    /// itself: an invocation per row (64 rows a workgroup) or per four
    /// pixels (256), and the teams of at most 4 lanes (64 rows or more).
    pub(crate) fn sums_tiles(self) -> bool {
        match self {
            RowStrategy::Narrow | RowStrategy::Narrow4 | RowStrategy::Pixels4 => true,
            RowStrategy::Team { lanes } | RowStrategy::Team4 { lanes } => lanes <= 4,
            _ => false,
        }
    }

    /// Whether the rows pass reads each row from memory once: the fixed
    /// kernels and the team kernels that hold their rows in registers.
    /// The others read it again in their second pass.
    pub(crate) fn reads_once(self, classes: usize) -> bool {
        match self {
            RowStrategy::Team { lanes } | RowStrategy::Team4 { lanes } => {
                team_held(classes, lanes, self.is_vec4()) > 0
            }
            _ => self.fixed_n(classes).is_some(),
        }
    }

    /// The entry point of the rows pass for rows of `classes` classes (for
    /// `Split`, the first of its three).
    pub(crate) fn entry(self, classes: usize) -> &'static str {
        match (self, self.fixed_n(classes)) {
            (RowStrategy::Narrow4, Some(_)) => "rows_narrow4_fixed",
            (RowStrategy::Pixels4, Some(_)) => "rows_pixels4_fixed",
            (RowStrategy::Wide, _) => "rows_wide",
            (RowStrategy::WideMixed, _) => "rows_wide_mixed",
            (RowStrategy::Narrow, _) => "rows_narrow",
            (RowStrategy::Wide4, _) => "rows_wide4",
            (RowStrategy::Narrow4, _) => "rows_narrow4",
            (RowStrategy::Pixels4, _) => "rows_pixels4",
            (RowStrategy::Split { .. }, _) => "split_partial",
            (RowStrategy::Team { .. }, _) => "rows_team",
            (RowStrategy::Team4 { .. }, _) => "rows_team4",
            (RowStrategy::MapTeam { .. }, _) => "rows_map_team",
        }
    }

    /// Workgroups per row of split rows; 0 for the other strategies.
    pub(crate) fn splits(self) -> usize {
        match self {
            RowStrategy::Split { splits } => splits,
            _ => 0,
        }
    }

    pub(crate) fn is_vec4(self) -> bool {
        matches!(
            self,
            RowStrategy::Wide4
                | RowStrategy::Narrow4
                | RowStrategy::Pixels4
                | RowStrategy::Team4 { .. }
        )
    }

    /// Workgroups to dispatch for `layout`'s rows.
    pub(crate) fn workgroups(self, layout: &Layout) -> usize {
        match self {
            RowStrategy::Wide | RowStrategy::Wide4 | RowStrategy::WideMixed => layout.rows(),
            RowStrategy::Narrow | RowStrategy::Narrow4 => layout.rows().div_ceil(NARROW_WG),
            RowStrategy::Pixels4 => (layout.rows() / 4).div_ceil(NARROW_WG),
            RowStrategy::Split { splits } => layout.rows() * splits,
            RowStrategy::Team { lanes }
            | RowStrategy::Team4 { lanes }
            | RowStrategy::MapTeam { lanes } => layout.rows().div_ceil(TEAM_WG / lanes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn teams_hold_rows_of_up_to_16384_classes() {
        for (classes, lanes, vec4, held) in [
            (8, 1, false, 8),
            (7, 1, false, 8),
            (32, 4, true, 2),
            (100, 16, false, 8),
            (2048, 256, true, 2),
            (4096, 256, true, 4),
            (4097, 256, false, 32),
            (16_384, 256, false, 64),
            (16_384, 256, true, 16),
            (16_385, 256, false, 0),
            (16_388, 256, true, 0),
            (128_256, 256, true, 0),
        ] {
            assert_eq!(team_held(classes, lanes, vec4), held, "C = {classes}");
        }
        // Every team the table makes holds its share, up to 16 384 classes.
        for classes in (1..20_000).step_by(7) {
            let lanes = team_lanes(classes);
            let held = team_held(classes, lanes, false);
            assert_eq!(
                held > 0,
                classes <= TEAM_WG * TEAM_HELD_MAX,
                "C = {classes}"
            );
            assert!(
                held == 0 || held >= classes.div_ceil(lanes),
                "C = {classes}"
            );
            let team = RowStrategy::Team { lanes };
            assert_eq!(team.reads_once(classes), held > 0);
        }
    }

    #[test]
    fn a_workgroup_holds_whole_teams_of_whole_rows() {
        // A workgroup holds whole teams, and its rows are dispatched whole.
        for classes in 1..5000 {
            let lanes = team_lanes(classes);
            assert!(lanes.is_power_of_two() && TEAM_WG.is_multiple_of(lanes));
            let s = RowStrategy::Team { lanes };
            let l = Layout::from_dims(&[1000, classes]).unwrap();
            assert_eq!(s.workgroups(&l), 1000usize.div_ceil(TEAM_WG / lanes));
        }
    }
}
