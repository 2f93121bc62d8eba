//! Choosing the strategy of a call's rows: the two tables (GPU and
//! software adapter) that choose by shape, the split past the loop bound,
//! and forcing one.

use super::strategy::*;
use crate::core::device::{DeviceClass, DeviceProfile, LOOP_TRIPS_MAX};
use crate::core::shape::Layout;
use crate::error::{Error, Result};
use crate::ops::cross_entropy::options::Strategy;

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
    /// reads neighbouring pixels of each class plane: coalesced already;
    /// maps too long for that get a team per pixel (`MapTeam`), pixels
    /// still side by side.
    fn gpu_choice(layout: &Layout, wide_wg: usize) -> Self {
        let classes = layout.classes;
        if layout.inner != 1 {
            let pixel = if layout.inner.is_multiple_of(4) {
                RowStrategy::Pixels4
            } else {
                RowStrategy::Narrow
            };
            if pixel.loop_trips(classes, wide_wg) <= LOOP_TRIPS_MAX {
                return pixel;
            }
            // Too long for an invocation per pixel: a team per pixel, still
            // neighbouring pixels side by side (or split past its bound).
            return map_team_lanes(classes).map_or(pixel, |lanes| RowStrategy::MapTeam { lanes });
        }
        let lanes = team_lanes(classes);
        let rows = layout.rows();
        if classes >= SPLIT_MIN_CLASSES && rows * lanes < GPU_LANES_FULL {
            return RowStrategy::Split {
                splits: gpu_splits(rows, classes, wide_wg),
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
            Strategy::MapTeam => (
                RowStrategy::MapTeam {
                    lanes: map_team_lanes(classes).unwrap_or(2 * MAP_TEAM_LANES),
                },
                inner > 1,
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
                Strategy::MapTeam => "maps (inner > 1)",
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
        let table: [(&[usize], RowStrategy, RowStrategy); 17] = [
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
            // Maps past an invocation per pixel: a team per pixel on GPUs
            // (16 lanes, 32 where 16 would pass the loop bound).
            (&[2, 50_257, 8], Split { splits: 2 }, MapTeam { lanes: 16 }),
            (
                &[8, 32_000, 512],
                Split { splits: 2 },
                MapTeam { lanes: 16 },
            ),
            (&[1, 200_000, 3], Split { splits: 2 }, MapTeam { lanes: 32 }),
            (&[1, 300_000, 3], Split { splits: 3 }, Split { splits: 2 }),
        ];
        for (dims, software, gpu) in table {
            let l = layout(dims);
            let cpu_choice = RowStrategy::choose(&l, SOFTWARE).unwrap();
            let gpu_choice = RowStrategy::choose(&l, GPU).unwrap();
            assert_eq!((cpu_choice, gpu_choice), (software, gpu), "{dims:?}");
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
