//! Timing recorded work: wall clock, and GPU timestamps where the device has them.

use std::time::Instant;

use super::PROFILE_MAX_DISPATCHES;
use crate::core::Context;
use crate::error::{Error, Result};

/// Submits recorded work repeatedly and times it, with GPU timestamps when
/// the device has `TIMESTAMP_QUERY`.
pub(crate) struct Timer<'a> {
    ctx: &'a Context,
    pub(crate) queries: Option<(wgpu::QuerySet, wgpu::Buffer, wgpu::Buffer)>,
}

/// What [`Timer::measure`] gives per record: the median wall milliseconds
/// and, with timestamps, the median GPU milliseconds of each pair.
pub(crate) type Measured = (f64, Option<Vec<f64>>);

/// Records one timed unit. Given the timer's query set (when the device
/// has timestamps), it writes pairs of timestamps (start, end) from query 0
/// and returns how many pairs it wrote.
pub(crate) type Record<'r> =
    dyn FnMut(Option<&wgpu::QuerySet>, &mut wgpu::CommandEncoder) -> Result<usize> + 'r;

/// Timestamps the timer's query set holds: a start and an end per dispatch
/// of a profile.
const TIMER_QUERIES: u32 = 2 * PROFILE_MAX_DISPATCHES as u32;

impl<'a> Timer<'a> {
    pub(crate) fn new(ctx: &'a Context) -> Self {
        let dev = &ctx.device;
        let queries = dev
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
            .then(|| {
                let set = dev.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("bench timestamps"),
                    ty: wgpu::QueryType::Timestamp,
                    count: TIMER_QUERIES,
                });
                let resolve = dev.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("bench timestamp resolve"),
                    size: 8 * u64::from(TIMER_QUERIES),
                    usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                });
                let read = dev.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("bench timestamp read"),
                    size: 8 * u64::from(TIMER_QUERIES),
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                (set, resolve, read)
            });
        Self { ctx, queries }
    }

    /// For each record, the median wall milliseconds over `iters` runs
    /// after one warm-up, and the median GPU milliseconds of each timestamp
    /// pair it wrote. The records take turns, run after run, so a machine
    /// whose speed drifts (a shared VM) drifts under all of them alike.
    pub(crate) fn measure(
        &self,
        iters: usize,
        records: &mut [&mut Record<'_>],
    ) -> Result<Vec<Measured>> {
        let mut walls = vec![Vec::new(); records.len()];
        // gpus[r][k]: the times of record r's pair k over the runs
        let mut gpus: Vec<Vec<Vec<f64>>> = vec![Vec::new(); records.len()];
        for i in 0..=iters.max(1) {
            for (r, record) in records.iter_mut().enumerate() {
                let (wall, gpu) = self.run_once(record)?;
                if i > 0 {
                    walls[r].push(wall);
                    gpus[r].resize(gpu.len(), Vec::new());
                    for (k, t) in gpu.into_iter().enumerate() {
                        gpus[r][k].push(t);
                    }
                }
            }
        }
        Ok(walls
            .iter_mut()
            .zip(&mut gpus)
            .map(|(w, g)| {
                let gpu = (!g.is_empty()).then(|| g.iter_mut().map(|t| median(t)).collect());
                (median(w), gpu)
            })
            .collect())
    }

    /// Records, submits and waits once: the wall milliseconds and the GPU
    /// milliseconds of each timestamp pair written.
    fn run_once(&self, record: &mut Record<'_>) -> Result<(f64, Vec<f64>)> {
        let dev = &self.ctx.device;
        let scope = dev.push_error_scope(wgpu::ErrorFilter::Validation);
        let start = Instant::now();
        let mut enc = dev.create_command_encoder(&Default::default());
        let pairs = record(self.queries.as_ref().map(|q| &q.0), &mut enc)? as u32;
        if let Some((set, resolve, read)) = &self.queries {
            enc.resolve_query_set(set, 0..2 * pairs, resolve, 0);
            enc.copy_buffer_to_buffer(resolve, 0, read, 0, 16 * u64::from(pairs));
        }
        self.ctx.queue.submit([enc.finish()]);
        dev.poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))?;
        let wall = start.elapsed().as_secs_f64() * 1e3;
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu(e.to_string()));
        }
        let gpu = match &self.queries {
            Some((_, _, read)) => self.read_timestamps(read, pairs)?,
            None => Vec::new(),
        };
        Ok((wall, gpu))
    }

    /// The milliseconds between each pair of the first `pairs` timestamps.
    fn read_timestamps(&self, read: &wgpu::Buffer, pairs: u32) -> Result<Vec<f64>> {
        let bytes = 16 * u64::from(pairs);
        let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
        read.slice(..bytes)
            .map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(e.to_string()))?;
        match pollster::block_on(rx.receive()) {
            Some(Ok(())) => {}
            _ => return Err(Error::Gpu("timestamp readback failed".into())),
        }
        let ticks: Vec<u64> = {
            let view = read
                .get_mapped_range(..bytes)
                .map_err(|e| Error::Gpu(e.to_string()))?;
            bytemuck::cast_slice(&view).to_vec()
        };
        read.unmap();
        let period = f64::from(self.ctx.queue.get_timestamp_period());
        Ok(ticks
            .chunks_exact(2)
            .map(|t| t[1].saturating_sub(t[0]) as f64 * period / 1e6)
            .collect())
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}
