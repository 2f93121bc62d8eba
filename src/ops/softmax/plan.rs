//! The plan of a softmax (or its backward): an invocation, a team or a
//! workgroup per row, or split rows, from the device class's table, with its
//! limits checked.

use crate::core::device::{DeviceClass, LOOP_TRIPS_MAX};
use crate::core::shape::Layout;
use crate::core::teams::{
    gpu_splits, map_team_lanes, team_held, team_lanes, GPU_LANES_FULL, TEAM_HELD_MAX, TEAM_WG,
};
use crate::core::Context;
use crate::error::{Error, Result};

/// Rows of at least this many classes (`inner = 1`) get a workgroup each;
/// shorter rows and maps an invocation each (software adapters).
const WIDE_MIN_CLASSES: usize = 128;

/// Workgroup size of the softmax kernels (`WIDE_WG`, `NARROW_WG` in the shader).
pub(crate) const SOFTMAX_WG: usize = 64;

/// Softmax or its backward: the kernels' names and what a team lane holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SoftmaxDirection {
    /// `y = softmax(x)` or `log_softmax(x)`.
    Forward,
    /// `dx` from `y` and `dy`.
    Backward,
}

impl SoftmaxDirection {
    /// The most values of its row a team lane holds: the forward holds x,
    /// the backward y and dy (two registers a class), so the backward holds
    /// rows of half as many classes.
    pub(crate) fn held_most(self) -> usize {
        match self {
            SoftmaxDirection::Forward => TEAM_HELD_MAX,
            SoftmaxDirection::Backward => TEAM_HELD_MAX / 2,
        }
    }

    /// Entries of `entry`'s held array (`TEAM_HELD`'s most): x in the
    /// forward's, y and dy in the backward's; vec4s in the vec4 teams'.
    pub(crate) fn held_array(entry: &str) -> usize {
        let values = match entry.starts_with("backward") {
            true => SoftmaxDirection::Backward.held_most(),
            false => SoftmaxDirection::Forward.held_most(),
        };
        if entry.ends_with("team4") {
            values / 4
        } else {
            values
        }
    }

    /// The entry points `strategy` dispatches, in order.
    pub(crate) fn entries(self, strategy: SoftmaxStrategy) -> &'static [&'static str] {
        use SoftmaxDirection::{Backward, Forward};
        use SoftmaxStrategy::{MapTeam, Narrow, Split, Team, Wide};
        match (self, strategy) {
            (Forward, Narrow { .. }) => &["softmax_narrow"],
            (Forward, Wide) => &["softmax_wide"],
            (Forward, Team { quads: false, .. }) => &["softmax_team"],
            (Forward, Team { quads: true, .. }) => &["softmax_team4"],
            (Forward, Split { .. }) => &["softmax_partial", "softmax_split"],
            (Forward, MapTeam { .. }) => &["softmax_map_team"],
            (Backward, Narrow { .. }) => &["backward_narrow"],
            (Backward, Wide) => &["backward_wide"],
            (Backward, Team { quads: false, .. }) => &["backward_team"],
            (Backward, Team { quads: true, .. }) => &["backward_team4"],
            (Backward, Split { .. }) => &["backward_partial", "backward_split"],
            (Backward, MapTeam { .. }) => &["backward_map_team"],
        }
    }
}

/// How the rows of a softmax (or its backward) are spread over invocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SoftmaxStrategy {
    /// An invocation per row, holding its `held` values in registers
    /// (`TEAM_HELD`, a power of two up to the direction's `held_most`; 0:
    /// the row is read twice).
    Narrow {
        /// `TEAM_HELD`.
        held: usize,
    },
    /// A workgroup per row.
    Wide,
    /// GPUs, inner = 1: a team of `lanes` neighbouring invocations per row
    /// (`shaders/lib/teams.wgsl`), each holding `held` values (or vec4s) of
    /// its row in registers (0: the row is read twice).
    Team {
        /// Invocations per row: a power of two up to `TEAM_WG`.
        lanes: usize,
        /// `TEAM_HELD`: a power of two up to the direction's `held_most`
        /// (a quarter of it in vec4s), or 0.
        held: usize,
        /// vec4 access (C % 4 = 0): whole words in every precision, where
        /// a scalar bf16 store is two atomic operations.
        quads: bool,
    },
    /// GPUs, maps too long for an invocation per pixel: a team of `lanes`
    /// invocations per pixel, `TEAM_WG / lanes` neighbouring pixels per
    /// workgroup side by side (coalesced), the row read twice.
    MapTeam {
        /// Invocations per pixel: 16, or 32 past 16 lanes' loop bound.
        lanes: usize,
    },
    /// `splits` workgroups per row, each over a span of classes: a partial
    /// pass, then a pass that merges the row's partials and writes its span.
    Split {
        /// Workgroups per row.
        splits: usize,
    },
}

impl SoftmaxStrategy {
    /// The first choice of `class`'s table, then, while its loops would pass
    /// [`LOOP_TRIPS_MAX`], a workgroup per row (any layout), then split rows.
    pub(crate) fn choose(
        layout: &Layout,
        class: DeviceClass,
        direction: SoftmaxDirection,
    ) -> Result<Self> {
        let classes = layout.classes;
        let first = match class {
            DeviceClass::Software => Self::software_choice(layout),
            DeviceClass::Gpu => Self::gpu_choice(layout, direction),
        };
        // Spans of at most SOFTMAX_WG * LOOP_TRIPS_MAX / 2 classes walk half the bound.
        let splits = classes.div_ceil(SOFTMAX_WG * LOOP_TRIPS_MAX / 2).max(2);
        [
            first,
            SoftmaxStrategy::Wide,
            SoftmaxStrategy::Split { splits },
        ]
        .into_iter()
        .find(|s| s.loop_trips(classes) <= LOOP_TRIPS_MAX)
        .ok_or_else(|| Error::Unsupported {
            what: "a softmax row this long",
            reason: format!(
                "{classes} classes need more than the {LOOP_TRIPS_MAX} loop iterations per \
                     invocation xent bounds every kernel to"
            ),
        })
    }

    /// Software adapters: long rows (`inner = 1`) get a workgroup each,
    /// short rows and maps an invocation each.
    fn software_choice(layout: &Layout) -> Self {
        if layout.inner == 1 && layout.classes >= WIDE_MIN_CLASSES {
            SoftmaxStrategy::Wide
        } else {
            SoftmaxStrategy::Narrow { held: 0 }
        }
    }

    /// GPUs, by principle until measured (`benches/device.sh`): rows of
    /// inner = 1 get a team each, as cross-entropy's, holding the row where
    /// it fits. Rows too long to hold are read twice whatever runs them, so
    /// when they are too few to put `GPU_LANES_FULL` invocations to work
    /// they are split, in spans of at least `GPU_SPLIT_SPAN_MIN` classes.
    /// Maps keep an invocation per pixel, which reads neighbouring pixels of
    /// each class plane (coalesced already), holding pixels of up to
    /// `held_most` classes; maps too long for that get a team per pixel,
    /// pixels still side by side.
    fn gpu_choice(layout: &Layout, direction: SoftmaxDirection) -> Self {
        let classes = layout.classes;
        if layout.inner != 1 {
            let held = team_held(classes, 1, direction.held_most());
            let pixel = SoftmaxStrategy::Narrow { held };
            if pixel.loop_trips(classes) <= LOOP_TRIPS_MAX {
                return pixel;
            }
            // Too long for an invocation per pixel: a team per pixel.
            let trips = |lanes| Self::MapTeam { lanes }.loop_trips(classes);
            return map_team_lanes(trips, LOOP_TRIPS_MAX)
                .map_or(pixel, |lanes| Self::MapTeam { lanes });
        }
        let lanes = team_lanes(classes);
        let quads = classes.is_multiple_of(4);
        let held = match quads {
            true => team_held(classes / 4, lanes, direction.held_most() / 4),
            false => team_held(classes, lanes, direction.held_most()),
        };
        let rows = layout.rows();
        if held == 0 && rows * lanes < GPU_LANES_FULL {
            return SoftmaxStrategy::Split {
                splits: gpu_splits(rows, classes, SOFTMAX_WG),
            };
        }
        SoftmaxStrategy::Team { lanes, held, quads }
    }

    /// Workgroups per row: `splits` for split rows, else 1.
    pub(crate) fn splits(self) -> usize {
        match self {
            SoftmaxStrategy::Split { splits } => splits,
            _ => 1,
        }
    }

    /// Whether the kernels read each input element once (a team or an
    /// invocation that holds its row); the others read it twice.
    pub(crate) fn reads_once(self) -> bool {
        matches!(self, SoftmaxStrategy::Team { held, .. } | SoftmaxStrategy::Narrow { held } if held > 0)
    }

    /// Workgroups of the (each) pass over `layout`'s rows.
    pub(crate) fn workgroups(self, layout: &Layout) -> usize {
        let rows = layout.rows();
        match self {
            SoftmaxStrategy::Narrow { .. } => rows.div_ceil(SOFTMAX_WG),
            SoftmaxStrategy::Wide => rows,
            SoftmaxStrategy::Team { lanes, .. } | SoftmaxStrategy::MapTeam { lanes } => {
                rows.div_ceil(TEAM_WG / lanes)
            }
            SoftmaxStrategy::Split { splits } => rows * splits,
        }
    }

    /// The pipeline constants of the strategy's kernels: a team's lanes
    /// and held values.
    pub(crate) fn specialisation(self) -> Vec<(&'static str, u32)> {
        match self {
            SoftmaxStrategy::Narrow { held } => vec![("TEAM_HELD", held as u32)],
            SoftmaxStrategy::MapTeam { lanes } => vec![("TEAM", lanes as u32)],
            SoftmaxStrategy::Team { lanes, held, .. } => {
                vec![("TEAM", lanes as u32), ("TEAM_HELD", held as u32)]
            }
            _ => Vec::new(),
        }
    }

    /// Bytes of scratch for the split rows' partials over `layout` (a vec2
    /// per row and span); 0 for the other strategies.
    pub(crate) fn partials_bytes(self, layout: &Layout) -> u64 {
        match self {
            SoftmaxStrategy::Split { splits } => 8 * (layout.rows() * splits) as u64,
            _ => 0,
        }
    }

    /// The most loop iterations one invocation runs (both passes, and the trees).
    pub(crate) fn loop_trips(self, classes: usize) -> usize {
        let tree = 2 * SOFTMAX_WG.ilog2() as usize;
        match self {
            SoftmaxStrategy::Narrow { held: 0 } => 2 * classes,
            SoftmaxStrategy::Narrow { held } => 2 * held,
            SoftmaxStrategy::Wide => 2 * classes.div_ceil(SOFTMAX_WG) + tree,
            SoftmaxStrategy::Team { lanes, held, quads } => {
                let units = if quads { classes / 4 } else { classes };
                let walk = if held > 0 {
                    held
                } else {
                    units.div_ceil(lanes)
                };
                2 * walk + lanes.ilog2() as usize
            }
            SoftmaxStrategy::MapTeam { lanes } => {
                2 * classes.div_ceil(lanes) + lanes.ilog2() as usize
            }
            SoftmaxStrategy::Split { splits } => {
                splits + classes.div_ceil(splits).div_ceil(SOFTMAX_WG) + tree
            }
        }
    }
}

impl Context {
    /// The strategy of a softmax (or its backward) over `layout` on this
    /// context's device class, with its
    /// limits checked: the tensor and the split rows' partials must each fit
    /// one binding (softmax is not chunked). The host API calls it before
    /// uploading.
    pub(crate) fn plan_softmax(
        &self,
        layout: &Layout,
        direction: SoftmaxDirection,
    ) -> Result<SoftmaxStrategy> {
        if layout.is_empty() {
            return Ok(SoftmaxStrategy::Narrow { held: 0 });
        }
        let strategy = SoftmaxStrategy::choose(layout, self.device_class(), direction)?;
        // Softmax is not chunked: its u32 element indices stay below 2^32
        // only while its tensors stay below 2^32 bytes, whatever the device binds.
        let max_binding = self
            .device
            .limits()
            .max_storage_buffer_binding_size
            .min(u64::from(u32::MAX));
        for (what, bytes) in [
            ("the tensor", layout.len() as u64 * 4),
            ("its split rows' partials", strategy.partials_bytes(layout)),
        ] {
            if bytes > max_binding {
                return Err(Error::InvalidShape {
                    shape: layout.dims.clone(),
                    reason: format!(
                        "{what}: {bytes} bytes, more than the device's largest storage \
                         binding of {max_binding} bytes (softmax is not chunked)"
                    ),
                });
            }
        }
        Ok(strategy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(dims: &[usize]) -> Layout {
        Layout::from_dims(dims).unwrap()
    }

    const BOTH: [SoftmaxDirection; 2] = [SoftmaxDirection::Forward, SoftmaxDirection::Backward];

    #[test]
    fn every_chosen_strategy_stays_under_the_loop_bound() {
        for classes in (0..26).flat_map(|k| [1usize << k, (1 << k) + 1, 3 << k]) {
            for (inner, rows) in [(1, 2), (2, 1), (4, 1), (8, 1), (1, 1 << 12)] {
                for (class, direction) in [DeviceClass::Software, DeviceClass::Gpu]
                    .into_iter()
                    .flat_map(|c| BOTH.map(|d| (c, d)))
                {
                    let l = layout(&[rows, classes, inner]);
                    let s = SoftmaxStrategy::choose(&l, class, direction).unwrap();
                    assert!(
                        s.loop_trips(classes) <= LOOP_TRIPS_MAX,
                        "{s:?} for C = {classes}"
                    );
                }
            }
        }
    }

    #[test]
    fn strategies_past_the_loop_bound_are_split() {
        let softmax = |dims: &[usize]| {
            let (class, forward) = (DeviceClass::Software, SoftmaxDirection::Forward);
            SoftmaxStrategy::choose(&layout(dims), class, forward).unwrap()
        };
        assert_eq!(softmax(&[1, 8192, 2]), SoftmaxStrategy::Narrow { held: 0 });
        assert_eq!(softmax(&[1, 8193, 2]), SoftmaxStrategy::Wide);
        assert_eq!(softmax(&[2, 523_904]), SoftmaxStrategy::Wide);
        assert_eq!(
            softmax(&[4, 2_097_152]),
            SoftmaxStrategy::Split { splits: 4 }
        );
    }

    /// The GPU table: teams that hold rows of up to 16 384 classes forward
    /// and 8 192 backward; few rows too long to hold are split; maps keep an
    /// invocation per pixel, holding up to 64 classes forward, 32 backward,
    /// and a team per pixel past 8 192 classes.
    #[test]
    fn gpus_get_teams_that_hold_their_rows() {
        use SoftmaxDirection::{Backward, Forward};
        let gpu = |dims: &[usize], d| SoftmaxStrategy::choose(&layout(dims), DeviceClass::Gpu, d);
        let team = |lanes, held| SoftmaxStrategy::Team {
            lanes,
            held,
            quads: true,
        };
        let scalar = |lanes, held| SoftmaxStrategy::Team {
            lanes,
            held,
            quads: false,
        };
        for (dims, direction, want) in [
            (&[4096, 4096][..], Forward, team(256, 4)),
            (&[65_536, 32], Forward, team(4, 2)),
            (&[65_536, 32], Backward, team(4, 2)),
            (&[65_536, 33], Backward, scalar(8, 8)),
            (&[1024, 16_384], Forward, team(256, 16)),
            (&[1024, 16_384], Backward, team(256, 0)),
            (&[1024, 8192], Backward, team(256, 8)),
            (&[1024, 8190], Backward, scalar(256, 32)),
            (&[1024, 16_383], Forward, scalar(256, 64)),
            (&[1024, 16_385], Forward, scalar(256, 0)),
            (&[16, 16_384], Forward, team(256, 16)),
            (
                &[16, 16_384],
                Backward,
                SoftmaxStrategy::Split { splits: 8 },
            ),
            (
                &[16, 128_256],
                Forward,
                SoftmaxStrategy::Split { splits: 62 },
            ),
            (
                &[8, 21, 65_536],
                Forward,
                SoftmaxStrategy::Narrow { held: 32 },
            ),
            (&[8, 64, 4], Forward, SoftmaxStrategy::Narrow { held: 64 }),
            (&[8, 64, 4], Backward, SoftmaxStrategy::Narrow { held: 0 }),
            (&[8, 65, 4], Forward, SoftmaxStrategy::Narrow { held: 0 }),
            (&[8, 8192, 4], Forward, SoftmaxStrategy::Narrow { held: 0 }),
            (
                &[8, 8193, 4],
                Forward,
                SoftmaxStrategy::MapTeam { lanes: 16 },
            ),
            (
                &[8, 32_000, 512],
                Backward,
                SoftmaxStrategy::MapTeam { lanes: 16 },
            ),
            (
                &[1, 200_000, 3],
                Forward,
                SoftmaxStrategy::MapTeam { lanes: 32 },
            ),
            (&[1, 300_000, 3], Forward, SoftmaxStrategy::Wide),
        ] {
            assert_eq!(
                gpu(dims, direction).unwrap(),
                want,
                "{dims:?} {direction:?}"
            );
        }
    }

    /// Every GPU plan up to 20 000 classes: teams hold what fits (16 384
    /// classes forward, 8 192 backward) and what a lane holds fits its
    /// kernel's array, rows and maps alike.
    #[test]
    fn every_gpu_plan_fits_its_kernels() {
        let gpu = |dims: &[usize], d| SoftmaxStrategy::choose(&layout(dims), DeviceClass::Gpu, d);
        for classes in 1..20_000 {
            for direction in BOTH {
                let s = gpu(&[4096, classes], direction).unwrap();
                let holds = classes <= TEAM_WG * direction.held_most();
                assert_eq!(s.reads_once(), holds, "C = {classes}");
                // What a lane holds fits its kernel's array.
                for (entry, map) in direction.entries(s).iter().zip([1, 3]) {
                    let most = SoftmaxDirection::held_array(entry);
                    crate::core::teams::check_team_spec(&s.specialisation(), most).unwrap();
                    let m = gpu(&[2, classes, map], direction).unwrap();
                    crate::core::teams::check_team_spec(&m.specialisation(), most).unwrap();
                }
            }
        }
    }
}
