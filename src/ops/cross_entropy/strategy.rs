//! Which strategy spreads a cross-entropy call's rows over invocations:
//! the strategies, the two tables (GPU and software adapter) that choose
//! among them by shape, forcing one, and each one's loop count under the
//! loop bound.

use crate::core::device::{DeviceClass, DeviceProfile, LOOP_TRIPS_MAX};
use crate::core::shape::Layout;
use crate::error::{Error, Result};
use crate::ops::cross_entropy::options::Strategy;

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
const SPLIT_SPAN: usize = 8192;
const OCCUPANCY_SPLITS: usize = 32;

/// Invocations per workgroup of the team kernels (`TEAM_WG` in
/// rows_team.wgsl): 8 SIMD groups of 32 (or 4 of 64) lanes, the size the
/// fastest loss kernels run rows at (quack, Liger), and the most WebGPU
/// promises every device takes.
pub(crate) const TEAM_WG: usize = 256;
/// A team lane takes about this many elements of its row per pass: short
/// rows get few lanes (several rows per workgroup), rows of 2048 classes or
/// more get all `TEAM_WG`.
const TEAM_ELEMENTS: usize = 8;
/// Invocations a GPU needs in flight to hide its memory latency: 2^18 is a
/// full H100/H200 (132 SMs × 2048 resident invocations) and more than any
/// smaller GPU holds. wgpu reports no SM count, so this is a constant.
pub(crate) const GPU_LANES_FULL: usize = 1 << 18;
/// The shortest span of a row split on a GPU for occupancy, and the most
/// spans: every invocation of every span's workgroup merges all the row's
/// partials, work that grows as splits².
const GPU_SPLIT_SPAN_MIN: usize = 2048;
const GPU_SPLITS_MAX: usize = 128;

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
}

/// The team kernels' invocations per row of `classes` classes: about
/// `TEAM_ELEMENTS` elements per lane, a power of two up to `TEAM_WG`.
pub(crate) fn team_lanes(classes: usize) -> usize {
    classes
        .div_ceil(TEAM_ELEMENTS)
        .next_power_of_two()
        .min(TEAM_WG)
}

impl RowStrategy {
    /// The strategy for `layout` on `device` (see ARCHITECTURE.md for both
    /// tables).
    /// A strategy whose invocations would loop more than [`LOOP_TRIPS_MAX`]
    /// times gives way to `Split` (any layout: its spans walk classes
    /// `inner` apart), with enough spans to stay under the bound.
    pub(crate) fn choose(layout: &Layout, device: DeviceProfile) -> Result<Self> {
        let classes = layout.classes;
        let wide_wg = device.wide_wg;
        let chosen = match device.class {
            DeviceClass::Software => Self::software_choice(layout),
            DeviceClass::Gpu => Self::gpu_choice(layout, wide_wg),
        };
        if chosen.loop_trips(classes, wide_wg) <= LOOP_TRIPS_MAX {
            return Ok(chosen);
        }
        // Spans of at most wide_wg * LOOP_TRIPS_MAX classes walk at most half
        // the bound (two classes per iteration), leaving the rest for the
        // merges over the row's spans.
        let needed = classes.div_ceil(wide_wg * LOOP_TRIPS_MAX);
        let occupancy = match chosen {
            RowStrategy::Split { splits } => splits,
            _ => 2,
        };
        let split = RowStrategy::Split {
            splits: needed.max(occupancy),
        };
        let trips = split.loop_trips(classes, wide_wg);
        if trips > LOOP_TRIPS_MAX {
            return Err(Error::Unsupported {
                what: "a row this long",
                reason: format!(
                    "{classes} classes need {trips} loop iterations per invocation even split \
                     over {} workgroups, more than the {LOOP_TRIPS_MAX} xent bounds every \
                     invocation to",
                    needed.max(occupancy)
                ),
            });
        }
        Ok(split)
    }

    /// The software adapters' table, as measured on lavapipe (BENCHMARKS.md):
    /// an invocation per short row (a CPU core's SIMD lanes walk rows side
    /// by side), a workgroup of `wide_wg` per long row, fewer than
    /// `SPLIT_ROWS_BELOW_CPU` long rows split.
    fn software_choice(layout: &Layout) -> Self {
        let quads = layout.classes.is_multiple_of(4);
        let classes = layout.classes;
        if layout.inner == 1 && layout.rows() < SPLIT_ROWS_BELOW_CPU && classes >= SPLIT_MIN_CLASSES
        {
            return RowStrategy::Split {
                splits: (classes / SPLIT_SPAN).clamp(2, OCCUPANCY_SPLITS),
            };
        }
        match (layout.inner, classes >= WIDE_MIN_CLASSES) {
            (1, true) if quads => RowStrategy::Wide4,
            (1, true) => RowStrategy::WideMixed,
            (1, false) if quads => RowStrategy::Narrow4,
            (inner, _) if inner.is_multiple_of(4) => RowStrategy::Pixels4,
            _ => RowStrategy::Narrow,
        }
    }

    /// The GPU table, by principle until measured (`benches/device.sh`):
    /// rows of inner = 1 get a team of neighbouring invocations each
    /// (`team_lanes`: several short rows per workgroup, `TEAM_WG` per long
    /// row), so a SIMD group's loads cover contiguous memory; long rows too
    /// few to put `GPU_LANES_FULL` invocations to work are split so that
    /// their workgroups do, in spans of at least `GPU_SPLIT_SPAN_MIN`
    /// classes. Maps keep an invocation per pixel (or pixel quad), which
    /// reads neighbouring pixels of each class plane: coalesced already.
    fn gpu_choice(layout: &Layout, wide_wg: usize) -> Self {
        let classes = layout.classes;
        if layout.inner != 1 {
            return if layout.inner.is_multiple_of(4) {
                RowStrategy::Pixels4
            } else {
                RowStrategy::Narrow
            };
        }
        let lanes = team_lanes(classes);
        let rows = layout.rows();
        if classes >= SPLIT_MIN_CLASSES && rows * lanes < GPU_LANES_FULL {
            let wanted = GPU_LANES_FULL.div_ceil(rows * wide_wg);
            return RowStrategy::Split {
                splits: wanted
                    .min(classes / GPU_SPLIT_SPAN_MIN)
                    .clamp(2, GPU_SPLITS_MAX),
            };
        }
        if classes.is_multiple_of(4) {
            RowStrategy::Team4 { lanes }
        } else {
            RowStrategy::Team { lanes }
        }
    }

    /// The strategy `forced` names, for `layout`, or [`Error::Unsupported`]
    /// naming what it needs when it cannot serve the layout or would pass
    /// the loop bound. `Split` gets
    /// the spans `choose` would give it.
    pub(crate) fn forced(forced: Strategy, layout: &Layout, wide_wg: usize) -> Result<Self> {
        let (classes, inner) = (layout.classes, layout.inner);
        let (strategy, needs) = match forced {
            Strategy::Auto => unreachable!("Auto is chosen, not forced"),
            Strategy::Wide => (RowStrategy::Wide, inner == 1),
            Strategy::Wide4 => (RowStrategy::Wide4, inner == 1 && classes.is_multiple_of(4)),
            // Its seams hold two rows' elements at most.
            Strategy::WideMixed => (RowStrategy::WideMixed, inner == 1 && classes >= 4),
            Strategy::Narrow => (RowStrategy::Narrow, true),
            Strategy::Narrow4 => (
                RowStrategy::Narrow4,
                inner == 1 && classes.is_multiple_of(4),
            ),
            Strategy::Pixels4 => (RowStrategy::Pixels4, inner.is_multiple_of(4)),
            Strategy::Team => (
                RowStrategy::Team {
                    lanes: team_lanes(classes),
                },
                inner == 1,
            ),
            Strategy::Team4 => (
                RowStrategy::Team4 {
                    lanes: team_lanes(classes),
                },
                inner == 1 && classes.is_multiple_of(4),
            ),
            Strategy::Split => {
                let occupancy = (classes / SPLIT_SPAN).clamp(2, OCCUPANCY_SPLITS);
                let needed = classes.div_ceil(wide_wg * LOOP_TRIPS_MAX);
                (
                    RowStrategy::Split {
                        splits: occupancy.max(needed),
                    },
                    true,
                )
            }
        };
        let name = forced.name();
        if !needs {
            let what = match forced {
                Strategy::Wide | Strategy::Team => "rows of inner = 1",
                Strategy::Wide4 | Strategy::Narrow4 | Strategy::Team4 => {
                    "rows of inner = 1 and C % 4 = 0"
                }
                Strategy::WideMixed => "rows of inner = 1 and C >= 4",
                _ => "maps of inner % 4 = 0",
            };
            return Err(Error::Unsupported {
                what: "the forced strategy",
                reason: format!(
                    "{name} serves {what}; shape {:?} is (outer {}, C {classes}, inner {inner})",
                    layout.dims, layout.outer
                ),
            });
        }
        let trips = strategy.loop_trips(classes, wide_wg);
        if trips > LOOP_TRIPS_MAX {
            return Err(Error::Unsupported {
                what: "the forced strategy",
                reason: format!(
                    "{name} would loop {trips} times per invocation for {classes} classes, \
                     more than the {LOOP_TRIPS_MAX} xent bounds every invocation to"
                ),
            });
        }
        Ok(strategy)
    }

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
            // Two passes of a lane's share, two trees of log2(lanes) levels.
            RowStrategy::Team { lanes } => {
                2 * classes.div_ceil(lanes) + 2 * lanes.max(2).ilog2() as usize
            }
            RowStrategy::Team4 { lanes } => {
                2 * (classes / 4).div_ceil(lanes) + 2 * lanes.max(2).ilog2() as usize
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

    /// The override constant the rows pipeline is specialised for, if any:
    /// `FIXED_N` (the fixed kernels) or `TEAM` (the team kernels' lanes).
    pub(crate) fn specialisation(self, classes: usize) -> Option<(&'static str, u32)> {
        match self {
            RowStrategy::Team { lanes } | RowStrategy::Team4 { lanes } => {
                Some(("TEAM", lanes as u32))
            }
            _ => self.fixed_n(classes).map(|n| ("FIXED_N", n)),
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
            RowStrategy::Team { lanes } | RowStrategy::Team4 { lanes } => {
                layout.rows().div_ceil(TEAM_WG / lanes)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::device::{DeviceClass, DeviceProfile, LOOP_TRIPS_MAX};

    fn layout(dims: &[usize]) -> Layout {
        Layout::from_dims(dims).unwrap()
    }

    const SOFTWARE: DeviceProfile = DeviceProfile {
        class: DeviceClass::Software,
        wide_wg: 8,
        subgroups: false,
    };
    /// A GPU with 32-lane subgroups (the wide kernels' workgroup).
    const GPU: DeviceProfile = DeviceProfile {
        class: DeviceClass::Gpu,
        wide_wg: 32,
        subgroups: true,
    };

    #[test]
    fn every_chosen_strategy_stays_under_the_loop_bound() {
        for wg in [8, 16, 32, 64] {
            for classes in (0..26).flat_map(|k| [1usize << k, (1 << k) + 1, 3 << k]) {
                for inner in [1, 2, 4, 8] {
                    // Few rows (split on a GPU) and many (teams).
                    for outer in [2, 5000] {
                        let l = layout(&[outer, classes, inner]);
                        for class in [DeviceClass::Software, DeviceClass::Gpu] {
                            let device = DeviceProfile {
                                class,
                                wide_wg: wg,
                                subgroups: false,
                            };
                            let s = RowStrategy::choose(&l, device).unwrap();
                            let trips = s.loop_trips(classes, wg);
                            assert!(
                                trips <= LOOP_TRIPS_MAX,
                                "{s:?} for C = {classes}, inner = {inner}, {class:?}, \
                                 wg = {wg}: {trips}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_device_class_follows_the_device_type() {
        let info = |device_type| wgpu::AdapterInfo {
            device_type,
            ..wgpu::AdapterInfo::new(wgpu::DeviceType::Other, wgpu::Backend::Vulkan)
        };
        for (t, class) in [
            (wgpu::DeviceType::DiscreteGpu, DeviceClass::Gpu),
            (wgpu::DeviceType::IntegratedGpu, DeviceClass::Gpu),
            (wgpu::DeviceType::Cpu, DeviceClass::Software),
            (wgpu::DeviceType::VirtualGpu, DeviceClass::Software),
            (wgpu::DeviceType::Other, DeviceClass::Software),
        ] {
            assert_eq!(DeviceClass::of(&info(t)), class, "{t:?}");
        }
    }

    #[test]
    fn the_strategy_table_for_software_adapters_and_gpus() {
        use RowStrategy::*;
        // (shape, software adapter: 8 invocations; GPU: 32-lane subgroups).
        let table: [(&[usize], RowStrategy, RowStrategy); 14] = [
            (&[65_536, 32], Narrow4, Team4 { lanes: 4 }),
            (&[65_536, 4], Narrow4, Team4 { lanes: 1 }),
            (&[1024, 100], Narrow4, Team4 { lanes: 16 }),
            (&[1024, 99], Narrow, Team { lanes: 16 }),
            (&[1024, 1000], Wide4, Team4 { lanes: 128 }),
            (&[4096, 4096], Wide4, Team4 { lanes: 256 }),
            (&[8192, 50_257], WideMixed, Team { lanes: 256 }),
            // 256 rows put 65 536 invocations to work on a GPU: split into
            // 2^18 / (256 * 32) = 32 spans, at most 50 257 / 2048 = 24.
            (&[256, 50_257], WideMixed, Split { splits: 24 }),
            (&[1024, 50_257], WideMixed, Team { lanes: 256 }),
            (&[16, 128_256], Wide4, Split { splits: 62 }),
            (&[2, 128_256], Split { splits: 15 }, Split { splits: 62 }),
            (&[8, 21, 256, 256], Pixels4, Pixels4),
            (&[8, 21, 255, 255], Narrow, Narrow),
            (&[2, 50_257, 8], Split { splits: 2 }, Split { splits: 2 }),
        ];
        for (dims, software, gpu) in table {
            let l = layout(dims);
            let cpu_choice = RowStrategy::choose(&l, SOFTWARE).unwrap();
            let gpu_choice = RowStrategy::choose(&l, GPU).unwrap();
            assert_eq!((cpu_choice, gpu_choice), (software, gpu), "{dims:?}");
        }
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
        // A workgroup holds whole teams, and its rows are dispatched whole.
        for classes in 1..5000 {
            let lanes = team_lanes(classes);
            assert!(lanes.is_power_of_two() && TEAM_WG.is_multiple_of(lanes));
            let s = RowStrategy::Team { lanes };
            let l = layout(&[1000, classes]);
            assert_eq!(s.workgroups(&l), 1000usize.div_ceil(TEAM_WG / lanes));
        }
    }

    #[test]
    fn strategies_past_the_loop_bound_are_split() {
        let choose = |dims: &[usize], wg| {
            let device = DeviceProfile {
                class: DeviceClass::Software,
                wide_wg: wg,
                subgroups: false,
            };
            RowStrategy::choose(&layout(dims), device).unwrap()
        };
        // The shapes Mesa cut short, on its 8-invocation workgroups.
        assert_eq!(choose(&[1, 8065, 4], 8), RowStrategy::Pixels4);
        assert_eq!(choose(&[1, 8066, 4], 8), RowStrategy::Split { splits: 2 });
        assert_eq!(choose(&[1, 32768, 4], 8), RowStrategy::Split { splits: 2 });
        assert_eq!(choose(&[1, 12785, 3], 8), RowStrategy::Narrow);
        assert_eq!(choose(&[1, 12786, 3], 8), RowStrategy::Split { splits: 2 });
        assert_eq!(choose(&[4, 524_096], 8), RowStrategy::Wide4);
        assert_eq!(choose(&[4, 524_100], 8), RowStrategy::Split { splits: 4 });
        assert_eq!(
            choose(&[4, 33_000_000], 8),
            RowStrategy::Split { splits: 252 }
        );
        // Few rows split for occupancy: at least what the bound needs.
        assert_eq!(
            choose(&[1, 5_000_000], 8),
            RowStrategy::Split { splits: 32 }
        );
        assert_eq!(
            choose(&[1, 9_000_000], 8),
            RowStrategy::Split { splits: 69 }
        );
        assert_eq!(choose(&[2, 128_256], 8), RowStrategy::Split { splits: 15 });
        // Short rows stay where they were.
        assert_eq!(choose(&[65_536, 32], 8), RowStrategy::Narrow4);
        assert_eq!(choose(&[16, 128_256], 8), RowStrategy::Wide4);
    }
}
