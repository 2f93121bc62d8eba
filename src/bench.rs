//! Benchmarks of the fused loss against this adapter's copy bandwidth and
//! the CPU path, shared by `xent bench` and `benches/`.
//!
//! Traffic model: a fused forward + backward must read the logits once and
//! write the gradient once, `8·N·C` bytes in f32; effective GB/s is that over
//! the time taken. The copy kernel moves the same bytes on the same adapter in
//! the same process: its GB/s is this adapter's practical bound.

use std::time::Instant;

use crate::cpu;
use crate::error::{Error, Result};
use crate::gpu::encode::Timing;
use crate::gpu::Context;
use crate::ops::cross_entropy::options::CrossEntropyOptions;
use crate::ops::cross_entropy::{CrossEntropyBuffers, TargetBuffer, STATUS_SIZE};
use crate::shape::Layout;

/// One benchmark shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchCase {
    /// A short name, e.g. `4096x4096`.
    pub name: String,
    /// The logits' shape, class axis 1.
    pub dims: Vec<usize>,
}

impl BenchCase {
    /// A case named after its shape.
    pub fn new(dims: &[usize]) -> Self {
        let name = dims
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("x");
        Self {
            name,
            dims: dims.to_vec(),
        }
    }
}

/// The reference shapes of the speed issue: square, GPT-2 vocabulary, many
/// short rows, few very long rows (Llama-3 vocabulary), and a segmentation map.
///
/// ```
/// assert_eq!(xent::bench::reference_cases().len(), 5);
/// ```
pub fn reference_cases() -> Vec<BenchCase> {
    [
        &[4096, 4096][..],
        &[256, 50_257],
        &[65_536, 32],
        &[16, 128_256],
        &[8, 21, 256, 256],
    ]
    .iter()
    .map(|d| BenchCase::new(d))
    .collect()
}

/// What one case measured. Times are medians over the iterations, in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchResult {
    /// The case's name.
    pub name: String,
    /// The logits' shape.
    pub dims: Vec<usize>,
    /// Bytes under the traffic model: logits read once + gradient written once.
    pub bytes: u64,
    /// GPU time of the fused forward + backward from timestamp queries, if the adapter has them.
    pub gpu_ms: Option<f64>,
    /// Wall time of record + submit + wait for the fused forward + backward.
    pub wall_ms: f64,
    /// GPU time of the copy kernel over the same bytes, if timestamps exist.
    pub copy_gpu_ms: Option<f64>,
    /// Wall time of the copy kernel over the same bytes.
    pub copy_wall_ms: f64,
    /// Wall time of the CPU path (f64 reference) on the same data, if measured.
    pub cpu_ms: Option<f64>,
    /// Host time to record one call (validation, uniform, bind groups), in microseconds.
    pub record_us: f64,
    /// The call's dispatches timed one by one ([`profile_case`]); empty
    /// unless a profile was asked for.
    pub dispatches: Vec<DispatchTime>,
}

/// GPU time of one dispatch of a profiled call.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchTime {
    /// The shader entry point, e.g. `rows_wide4`.
    pub entry: &'static str,
    /// Median GPU milliseconds over the iterations.
    pub gpu_ms: f64,
}

impl BenchResult {
    /// The best time available for the fused kernel: GPU time, else wall time.
    pub fn kernel_ms(&self) -> f64 {
        self.gpu_ms.unwrap_or(self.wall_ms)
    }

    /// The copy kernel's time on the same clock as [`BenchResult::kernel_ms`].
    pub fn copy_ms(&self) -> f64 {
        match (self.gpu_ms, self.copy_gpu_ms) {
            (Some(_), Some(c)) => c,
            _ => self.copy_wall_ms,
        }
    }

    /// Effective GB/s of the fused kernel under the traffic model.
    pub fn gbps(&self) -> f64 {
        self.bytes as f64 / (self.kernel_ms() * 1e6)
    }

    /// Effective GB/s of the copy kernel.
    pub fn copy_gbps(&self) -> f64 {
        self.bytes as f64 / (self.copy_ms() * 1e6)
    }

    /// Fused bandwidth as a fraction of the copy's (1.0 = as fast as a copy).
    pub fn copy_ratio(&self) -> f64 {
        self.copy_ms() / self.kernel_ms()
    }

    /// CPU path time over the fused kernel's wall time.
    pub fn cpu_speedup(&self) -> Option<f64> {
        self.cpu_ms.map(|c| c / self.wall_ms)
    }

    /// One JSON object (no external serialiser needed for these flat fields).
    pub fn to_json(&self) -> String {
        let opt = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.6}"));
        format!(
            "{{\"name\":\"{}\",\"dims\":{:?},\"bytes\":{},\"gpu_ms\":{},\"wall_ms\":{:.6},\"copy_gpu_ms\":{},\
             \"copy_wall_ms\":{:.6},\"cpu_ms\":{},\"record_us\":{:.3},\"gbps\":{:.3},\"copy_gbps\":{:.3},\
             \"copy_ratio\":{:.4},\"cpu_speedup\":{},\"dispatches\":[{}]}}",
            self.name,
            self.dims,
            self.bytes,
            opt(self.gpu_ms),
            self.wall_ms,
            opt(self.copy_gpu_ms),
            self.copy_wall_ms,
            opt(self.cpu_ms),
            self.record_us,
            self.gbps(),
            self.copy_gbps(),
            self.copy_ratio(),
            opt(self.cpu_speedup()),
            self.dispatches
                .iter()
                .map(|d| format!("{{\"entry\":\"{}\",\"gpu_ms\":{:.6}}}", d.entry, d.gpu_ms))
                .collect::<Vec<_>>()
                .join(","),
        )
    }
}

/// Deterministic benchmark data: logits uniform in [-10, 10), class targets.
/// The same generator as `benches/compare_torch.py`'s (splitmix64).
///
/// ```
/// let layout = xent::Layout::from_dims(&[4, 10]).unwrap();
/// let (logits, targets) = xent::bench::bench_data(&layout, 0x5eed);
/// assert_eq!((logits.len(), targets.len()), (40, 4));
/// assert!(logits.iter().all(|x| (-10.0..10.0).contains(x)) && targets.iter().all(|&t| (0..10).contains(&t)));
/// ```
pub fn bench_data(layout: &Layout, seed: u64) -> (Vec<f32>, Vec<i64>) {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let logits = (0..layout.len())
        .map(|_| ((next() >> 40) as f32 / (1u64 << 24) as f32) * 20.0 - 10.0)
        .collect();
    let targets = (0..layout.rows())
        .map(|_| (next() % layout.classes as u64) as i64)
        .collect();
    (logits, targets)
}

/// Times one case: `iters` runs of the fused forward + backward (mean
/// reduction, class-index targets) and of the copy kernel, after one warm-up
/// each; the CPU path once when `with_cpu`.
///
/// # Errors
/// [`Error::InvalidShape`] for a bad case, [`Error::Gpu`] if a run fails.
///
/// ```
/// let ctx = xent::Context::from_env()?;
/// let r = xent::bench::run_case(&ctx, &xent::bench::BenchCase::new(&[64, 100]), 3, true)?;
/// assert!(r.wall_ms > 0.0 && r.bytes == 8 * 64 * 100);
/// # Ok::<(), xent::Error>(())
/// ```
pub fn run_case(
    ctx: &Context,
    case: &BenchCase,
    iters: usize,
    with_cpu: bool,
) -> Result<BenchResult> {
    let prepared = Prepared::new(ctx, case)?;
    let timer = Timer::new(ctx);
    // The fused call and the copy take turns (see Timer::measure).
    let measured = timer.measure(
        iters,
        &mut [
            &mut |set, enc| prepared.record_fused(enc, whole(set)).map(|()| 1),
            &mut |set, enc| prepared.record_copy(enc, whole(set)).map(|()| 1),
        ],
    )?;
    let [(wall_ms, gpu_ms), (copy_wall_ms, copy_gpu_ms)] =
        <[Measured; 2]>::try_from(measured).expect("two records, two results");
    let (gpu_ms, copy_gpu_ms) = (first(gpu_ms), first(copy_gpu_ms));
    let record_us = {
        let reps = 50;
        let start = Instant::now();
        for _ in 0..reps {
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            prepared.record_fused(&mut enc, None)?;
        }
        start.elapsed().as_secs_f64() * 1e6 / f64::from(reps)
    };
    let cpu_ms = with_cpu
        .then(|| {
            let start = Instant::now();
            cpu::cross_entropy(
                &prepared.logits,
                &case.dims,
                &prepared.targets,
                None,
                &prepared.opts,
            )
            .map(|_| start.elapsed().as_secs_f64() * 1e3)
        })
        .transpose()?;
    Ok(BenchResult {
        name: case.name.clone(),
        dims: case.dims.clone(),
        bytes: 2 * prepared.layout.len() as u64 * 4,
        gpu_ms,
        wall_ms,
        copy_gpu_ms,
        copy_wall_ms,
        cpu_ms,
        record_us,
        dispatches: Vec::new(),
    })
}

/// Timestamps 0 and 1 of `set` at the start and end of a pass.
fn whole(set: Option<&wgpu::QuerySet>) -> Option<wgpu::ComputePassTimestampWrites<'_>> {
    set.map(|query_set| wgpu::ComputePassTimestampWrites {
        query_set,
        beginning_of_pass_write_index: Some(0),
        end_of_pass_write_index: Some(1),
    })
}

fn first(times: Option<Vec<f64>>) -> Option<f64> {
    times.and_then(|t| t.first().copied())
}

/// Times each dispatch of the case's fused call on its own: every dispatch
/// recorded in a compute pass of its own between two timestamps, `iters`
/// runs after a warm-up, the median per dispatch. The time between the
/// passes is not in any of them, and each pass has its own start-up, so
/// their sum may fall above or below [`BenchResult::gpu_ms`] (the call in
/// one pass); their shares are what the profile is for.
///
/// # Errors
/// [`Error::Unsupported`] when the adapter lacks `TIMESTAMP_QUERY`; as
/// [`run_case`] otherwise.
///
/// ```
/// let ctx = xent::Context::from_env()?;
/// let case = xent::bench::BenchCase::new(&[64, 100]);
/// if ctx.device().features().contains(wgpu::Features::TIMESTAMP_QUERY) {
///     let profile = xent::bench::profile_case(&ctx, &case, 3)?;
///     // the statistics, the rows (C = 100: four classes per load), the loss
///     let entries: Vec<_> = profile.iter().map(|d| d.entry).collect();
///     assert_eq!(entries, ["target_stats", "rows_narrow4", "reduce_loss"]);
/// }
/// # Ok::<(), xent::Error>(())
/// ```
pub fn profile_case(ctx: &Context, case: &BenchCase, iters: usize) -> Result<Vec<DispatchTime>> {
    let prepared = Prepared::new(ctx, case)?;
    let timer = Timer::new(ctx);
    if timer.queries.is_none() {
        return Err(Error::Unsupported {
            what: "a per-dispatch profile",
            reason: "the adapter lacks timestamp queries (TIMESTAMP_QUERY)".into(),
        });
    }
    let mut entries = Vec::new();
    let mut record = |set: Option<&wgpu::QuerySet>, enc: &mut wgpu::CommandEncoder| {
        let set = set.expect("timestamp queries checked above");
        entries = prepared.record_fused_timed(
            enc,
            Timing::PerDispatch {
                set,
                capacity: PROFILE_MAX_DISPATCHES,
            },
        )?;
        Ok(entries.len())
    };
    let measured = timer.measure(iters, &mut [&mut record])?;
    let times = measured
        .into_iter()
        .next()
        .and_then(|(_, gpu)| gpu)
        .expect("timestamp queries checked above");
    Ok(entries
        .into_iter()
        .zip(times)
        .map(|(entry, gpu_ms)| DispatchTime { entry, gpu_ms })
        .collect())
}

/// The most dispatches [`profile_case`] times in one call (a call over
/// tensors larger than one binding records a rows pass per chunk).
const PROFILE_MAX_DISPATCHES: usize = 64;

/// A case's data uploaded once, ready to be recorded again and again: the
/// fused forward + backward (mean, class-index targets, gradient to its own
/// buffer) and the copy kernel over the same bytes.
pub struct Prepared<'a> {
    ctx: &'a Context,
    layout: Layout,
    /// The logits, as uploaded.
    pub logits: Vec<f32>,
    /// The targets, as uploaded.
    pub targets: Vec<i64>,
    opts: CrossEntropyOptions,
    logits_buf: wgpu::Buffer,
    targets_buf: wgpu::Buffer,
    grad: wgpu::Buffer,
    loss: wgpu::Buffer,
    status: wgpu::Buffer,
}

impl<'a> Prepared<'a> {
    /// Generates and uploads the case's data ([`bench_data`], seed 0x5eed).
    ///
    /// # Errors
    /// [`Error::InvalidShape`] for a bad case; [`Error::Gpu`] or
    /// [`Error::DeviceLost`] when the device refuses its buffers.
    ///
    /// ```
    /// let ctx = xent::Context::from_env()?;
    /// let case = xent::bench::Prepared::new(&ctx, &xent::bench::BenchCase::new(&[64, 1000]))?;
    /// case.run(|p, encoder| p.record_fused(encoder, None))?; // one timed unit
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn new(ctx: &'a Context, case: &BenchCase) -> Result<Self> {
        let layout = Layout::from_dims(&case.dims)?;
        let (logits, targets) = bench_data(&layout, 0x5eed);
        let targets32: Vec<i32> = targets.iter().map(|&t| t as i32).collect();
        let dev = &ctx.device;
        // Through a mapping at creation: a lost device is an error, not a panic.
        let init = |label: &str, contents: &[u8]| {
            crate::gpu::buffer_with(dev, label, contents, wgpu::BufferUsages::STORAGE)
        };
        let empty = |label: &str, size: u64| {
            dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        };
        Ok(Self {
            ctx,
            logits_buf: init("bench logits", bytemuck::cast_slice(&logits))?,
            targets_buf: init("bench targets", bytemuck::cast_slice(&targets32))?,
            grad: empty("bench grad", layout.len() as u64 * 4),
            loss: empty("bench loss", 4),
            status: empty("bench status", STATUS_SIZE),
            layout,
            logits,
            targets,
            opts: CrossEntropyOptions::default(),
        })
    }

    /// Records the fused forward + backward.
    ///
    /// # Errors
    /// As [`Context::record_cross_entropy`].
    pub fn record_fused(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        timestamps: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) -> Result<()> {
        let timing = timestamps.map_or(Timing::Off, Timing::Whole);
        self.record_fused_timed(encoder, timing).map(|_| ())
    }

    fn record_fused_timed(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        timing: Timing<'_>,
    ) -> Result<Vec<&'static str>> {
        let buffers = CrossEntropyBuffers::new(
            &self.logits_buf,
            TargetBuffer::ClassI32(&self.targets_buf),
            &self.loss,
            Some(&self.grad),
            &self.status,
        );
        // The same plan and dispatches as record_cross_entropy, encoded with
        // timestamps.
        let call = self
            .ctx
            .prepare_cross_entropy(&self.layout.dims, &self.opts, &buffers)?;
        self.ctx.encode(encoder, &call, timing)?;
        Ok(call.entries())
    }

    /// Records the copy kernel over the same bytes (logits into the gradient buffer).
    ///
    /// # Errors
    /// [`Error::Gpu`] if the grid does not fit the device.
    pub fn record_copy(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        timestamps: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) -> Result<()> {
        self.ctx
            .record_copy(encoder, &self.logits_buf, &self.grad, timestamps)
    }

    /// Records with `record`, submits and waits: one timed unit for criterion.
    ///
    /// # Errors
    /// As the recording; [`Error::Gpu`] if waiting fails.
    pub fn run(
        &self,
        record: impl FnOnce(&Self, &mut wgpu::CommandEncoder) -> Result<()>,
    ) -> Result<()> {
        let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
        record(self, &mut encoder)?;
        self.ctx.queue.submit([encoder.finish()]);
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))
    }
}

/// Submits recorded work repeatedly and times it, with GPU timestamps when
/// the device has `TIMESTAMP_QUERY`.
struct Timer<'a> {
    ctx: &'a Context,
    queries: Option<(wgpu::QuerySet, wgpu::Buffer, wgpu::Buffer)>,
}

/// What [`Timer::measure`] gives per record: the median wall milliseconds
/// and, with timestamps, the median GPU milliseconds of each pair.
type Measured = (f64, Option<Vec<f64>>);

/// Records one timed unit. Given the timer's query set (when the device
/// has timestamps), it writes pairs of timestamps (start, end) from query 0
/// and returns how many pairs it wrote.
type Record<'r> =
    dyn FnMut(Option<&wgpu::QuerySet>, &mut wgpu::CommandEncoder) -> Result<usize> + 'r;

/// Timestamps the timer's query set holds: a start and an end per dispatch
/// of a profile.
const TIMER_QUERIES: u32 = 2 * PROFILE_MAX_DISPATCHES as u32;

impl<'a> Timer<'a> {
    fn new(ctx: &'a Context) -> Self {
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
    fn measure(&self, iters: usize, records: &mut [&mut Record<'_>]) -> Result<Vec<Measured>> {
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
