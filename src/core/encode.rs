//! Encoding a prepared call: every op validates, plans and prepares its
//! dispatches (bind groups made, nothing recorded), then this records them
//! into the caller's encoder, in one compute pass or, for profiles, one pass
//! per dispatch between timestamps.

use super::traffic::{first_occurrences, Traffic};
use super::Context;
use crate::error::{Error, GpuScope, Result};

/// One pipeline, its bind group and its grid of workgroups.
pub(crate) type Dispatch = (
    &'static str,
    wgpu::ComputePipeline,
    wgpu::BindGroup,
    (u32, u32),
);

/// A call's dispatches, in order, ready to encode.
pub(crate) struct Dispatches {
    /// The compute pass's label.
    pub label: &'static str,
    /// (entry point, pipeline, bind group, grid) in dispatch order.
    pub list: Vec<Dispatch>,
    /// The bytes the dispatches move, where the op counts them (the byte
    /// yardstick of `bench`).
    pub traffic: Option<Traffic>,
}

impl Dispatches {
    /// The call of `list` labelled `label`, with the bytes it moves where
    /// the op counts them: in debug builds, the count's passes must be the
    /// dispatches' entry points, so every test of a counted op checks the
    /// count against the dispatch list it models.
    pub(crate) fn new(label: &'static str, list: Vec<Dispatch>, traffic: Option<Traffic>) -> Self {
        if let Some(traffic) = &traffic {
            let entries = first_occurrences(list.iter().map(|d| d.0));
            debug_assert_eq!(traffic.passes(), entries, "the byte count's passes");
        }
        Self {
            label,
            list,
            traffic,
        }
    }

    /// The entry points dispatched, in order.
    pub(crate) fn entries(&self) -> Vec<&'static str> {
        self.list.iter().map(|d| d.0).collect()
    }
}

/// Where [`Context::encode`] writes timestamps (for `bench`).
pub(crate) enum Timing<'q> {
    /// Nowhere.
    Off,
    /// At the start and end of the call's one compute pass.
    Whole(wgpu::ComputePassTimestampWrites<'q>),
    /// Each dispatch in a compute pass of its own, timed by queries `2i` and
    /// `2i + 1` of `set`; an error past `capacity` dispatches.
    PerDispatch {
        set: &'q wgpu::QuerySet,
        capacity: usize,
    },
}

impl Context {
    /// Records `call` into `encoder` with timestamps as `timing` asks.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a per-dispatch profile of more dispatches
    /// than it has queries for; [`Error::Gpu`] for what wgpu rejects.
    pub(crate) fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        call: &Dispatches,
        timing: Timing<'_>,
    ) -> Result<()> {
        let dispatch = |pass: &mut wgpu::ComputePass<'_>, (_, pipeline, group, grid): &Dispatch| {
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(grid.0, grid.1, 1);
        };
        let scope = GpuScope::push(&self.device);
        match timing {
            Timing::PerDispatch { set, capacity } => {
                if call.list.len() > capacity {
                    return Err(Error::Unsupported {
                        what: "a per-dispatch profile of this call",
                        reason: format!(
                            "it times at most {capacity} dispatches; this call records {}",
                            call.list.len()
                        ),
                    });
                }
                for (i, entry) in call.list.iter().enumerate() {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(entry.0),
                        timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                            query_set: set,
                            beginning_of_pass_write_index: Some(2 * i as u32),
                            end_of_pass_write_index: Some(2 * i as u32 + 1),
                        }),
                    });
                    dispatch(&mut pass, entry);
                }
            }
            timing => {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(call.label),
                    timestamp_writes: match timing {
                        Timing::Whole(writes) => Some(writes),
                        _ => None,
                    },
                });
                for entry in &call.list {
                    dispatch(&mut pass, entry);
                }
            }
        }
        scope.pop(&format!("recording {}", call.label))
    }
}
