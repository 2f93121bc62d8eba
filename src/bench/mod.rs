//! Benchmarks of the losses against this adapter's copy bandwidth and the
//! CPU path, shared by `xent bench` and `benches/`: the cases and their
//! results here, the uploaded data in `prepared.rs`, the timing in
//! `timer.rs`.
//!
//! Traffic model: a fused cross-entropy forward + backward must read the
//! logits once and write the gradient once, `8·N·C` bytes in f32 (`4·N·C`
//! in f16 and bf16); an
//! elementwise loss reads the input and the target once and writes the
//! gradient once, `12·N` (half that in f16 and bf16). Effective GB/s is that over the time taken. The
//! copy kernel moves the same bytes on the same adapter in the same
//! process: its GB/s is this adapter's practical bound.
//!
//! ```
//! let ctx = xent::Context::from_env()?;
//! let r = xent::bench::run_case(&ctx, &xent::bench::BenchCase::new(&[64, 100]), 3, false)?;
//! assert_eq!(r.bytes, 8 * 64 * 100); // the logits read once, the gradient written once
//! println!("{}: {:.1} GB/s, {:.0}% of a copy's", r.name, r.gbps(), 100.0 * r.copy_ratio());
//! # Ok::<(), xent::Error>(())
//! ```

mod linear;
mod prepared;
mod timer;

pub use linear::{default_linear_cases, linear_bench_data, run_linear_case, LinearBenchResult};
pub use prepared::Prepared;
use timer::{Measured, Timer};

use std::time::Instant;

use crate::core::encode::Timing;
use crate::core::shape::Layout;
use crate::core::Context;
use crate::core::Precision;
use crate::error::{Error, Result};
use crate::ops::cross_entropy::options::Strategy;
use crate::ops::elementwise::ElementwiseLoss;

/// One benchmark case: a shape, and the loss (cross-entropy unless `loss`).
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// let ctx = xent::Context::from_env()?;
/// // After timing, hold 3 rows of the gradient to the CPU path.
/// let case = xent::bench::BenchCase { check_rows: 3, ..xent::bench::BenchCase::new(&[16, 100]) };
/// let r = xent::bench::run_case(&ctx, &case, 1, false)?;
/// assert_eq!(r.rows_checked.map(|(rows, _)| rows), Some(3));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BenchCase {
    /// A short name, e.g. `4096x4096` or `bce-with-logits 4096x4096`.
    pub name: String,
    /// The logits' shape, class axis 1 (or the elementwise loss's input's).
    pub dims: Vec<usize>,
    /// An elementwise loss (mean, no weights) in place of cross-entropy.
    pub loss: Option<ElementwiseLoss>,
    /// The storage of the logits (an elementwise loss's input and target)
    /// and the gradient.
    pub precision: Precision,
    /// Cross-entropy's kernel strategy (`Auto`, or one forced).
    pub strategy: Strategy,
    /// After timing, hold this many rows of the gradient (spread evenly,
    /// the first and the last among them) to the CPU path on those rows
    /// alone ([`Prepared::check_rows`]): the check of a case too large for
    /// the CPU to compute whole. 0: none. Cross-entropy cases of (N, C) only.
    pub check_rows: usize,
}

impl BenchCase {
    /// A cross-entropy case named after its shape.
    ///
    /// ```
    /// use xent::{bench::BenchCase, Precision, Strategy};
    /// let case = BenchCase::new(&[8, 21, 64, 64]);
    /// assert_eq!(case.name, "8x21x64x64");
    /// // Cross-entropy in f32, the strategy chosen by shape, no rows checked.
    /// assert_eq!((case.loss, case.precision, case.strategy, case.check_rows), (None, Precision::F32, Strategy::Auto, 0));
    /// ```
    pub fn new(dims: &[usize]) -> Self {
        let name = dims
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("x");
        Self {
            name,
            dims: dims.to_vec(),
            loss: None,
            precision: Precision::F32,
            strategy: Strategy::Auto,
            check_rows: 0,
        }
    }

    /// The case with its kernel strategy forced, named so (`4096x4096 [wide4]`).
    ///
    /// ```
    /// let case = xent::bench::BenchCase::new(&[64, 64]).with_strategy(xent::Strategy::Wide4);
    /// assert_eq!(case.name, "64x64 [wide4]");
    /// ```
    pub fn with_strategy(self, strategy: Strategy) -> Self {
        let name = match strategy {
            Strategy::Auto => self.name.clone(),
            forced => format!("{} [{}]", self.name, forced.name()),
        };
        Self {
            name,
            strategy,
            ..self
        }
    }

    /// The case with its logits and gradient in `precision`, named so
    /// (`4096x4096 bf16`).
    ///
    /// ```
    /// let case = xent::bench::BenchCase::new(&[64, 64]).with_precision(xent::Precision::BF16);
    /// assert_eq!(case.name, "64x64 bf16");
    /// ```
    pub fn with_precision(self, precision: Precision) -> Self {
        let name = match precision {
            Precision::F32 => self.name.clone(),
            Precision::F16 => format!("{} f16", self.name),
            Precision::BF16 => format!("{} bf16", self.name),
        };
        Self {
            name,
            precision,
            ..self
        }
    }

    /// An elementwise-loss case.
    ///
    /// ```
    /// let case = xent::bench::BenchCase::elementwise(xent::ElementwiseLoss::Mse, &[64, 64]);
    /// assert_eq!(case.name, "mse 64x64");
    /// ```
    pub fn elementwise(loss: ElementwiseLoss, dims: &[usize]) -> Self {
        let shape = Self::new(dims);
        Self {
            name: format!("{} {}", loss.name(), shape.name),
            loss: Some(loss),
            ..shape
        }
    }

    /// Bytes under the traffic model (see the module's documentation).
    fn bytes(&self) -> u64 {
        let n: usize = self.dims.iter().product();
        let per = if self.loss.is_some() { 3 } else { 2 } * self.precision.size();
        per * n as u64
    }
}

/// The reference cases: cross-entropy on the shapes of the speed issue
/// (square, GPT-2 vocabulary, many short rows, few very long rows (Llama-3
/// vocabulary), a segmentation map), and the multi-label
/// binary cross-entropy with logits on 4096 × 4096.
///
/// ```
/// let cases = xent::bench::reference_cases();
/// assert_eq!(cases.len(), 6);
/// assert_eq!(cases[5].name, "bce-with-logits 4096x4096");
/// ```
pub fn reference_cases() -> Vec<BenchCase> {
    let mut cases: Vec<BenchCase> = [
        &[4096, 4096][..],
        &[256, 50_257],
        &[65_536, 32],
        &[16, 128_256],
        &[8, 21, 256, 256],
    ]
    .iter()
    .map(|d| BenchCase::new(d))
    .collect();
    cases.push(BenchCase::elementwise(
        ElementwiseLoss::BceWithLogits,
        &[4096, 4096],
    ));
    cases
}

/// What one case measured. Times are medians over the iterations, in milliseconds.
///
/// ```
/// use xent::bench::BenchResult;
/// let r = BenchResult {
///     name: "1000x1000".into(), dims: vec![1000, 1000], bytes: 8_000_000,
///     gpu_ms: Some(0.5), wall_ms: 1.0, copy_gpu_ms: Some(0.25), copy_wall_ms: 0.75,
///     cpu_ms: Some(20.0), record_us: 12.0, dispatches: Vec::new(), rows_checked: None,
/// };
/// // 8 MB read and written in 0.5 ms: 16 GB/s, half the copy's 32.
/// assert_eq!((r.gbps(), r.copy_gbps(), r.copy_ratio()), (16.0, 32.0, 0.5));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BenchResult {
    /// The case's name.
    pub name: String,
    /// The logits' (or input's) shape.
    pub dims: Vec<usize>,
    /// Bytes under the traffic model: logits (input and target) read once, gradient written once.
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
    /// The rows checked against the CPU path ([`BenchCase::check_rows`])
    /// and their gradient's largest |GPU − CPU|; `None` when not asked for.
    pub rows_checked: Option<(usize, f64)>,
}

/// GPU time of one dispatch of a profiled call.
///
/// ```
/// use xent::bench::DispatchTime;
/// let profile = [
///     DispatchTime { entry: "target_stats", gpu_ms: 0.25 },
///     DispatchTime { entry: "rows_wide4", gpu_ms: 1.5 },
///     DispatchTime { entry: "reduce_loss", gpu_ms: 0.25 },
/// ];
/// // The rows pass takes 3/4 of the call's 2 ms.
/// assert_eq!(profile[1].gpu_ms / profile.iter().map(|d| d.gpu_ms).sum::<f64>(), 0.75);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchTime {
    /// The shader entry point, e.g. `rows_wide4`.
    pub entry: &'static str,
    /// Median GPU milliseconds over the iterations.
    pub gpu_ms: f64,
}

impl BenchResult {
    /// The best time available for the fused kernel: GPU time, else wall time.
    ///
    /// ```
    /// # let r = xent::bench::BenchResult { name: "1000x1000".into(), dims: vec![1000, 1000], bytes: 8_000_000, gpu_ms: Some(0.5), wall_ms: 1.0, copy_gpu_ms: Some(0.25), copy_wall_ms: 0.75, cpu_ms: Some(20.0), record_us: 12.0, dispatches: Vec::new(), rows_checked: None };
    /// // `r` as in BenchResult's example: 0.5 ms on the GPU's clock, 1 on the wall's.
    /// assert_eq!(r.kernel_ms(), 0.5);
    /// assert_eq!(xent::bench::BenchResult { gpu_ms: None, ..r }.kernel_ms(), 1.0);
    /// ```
    pub fn kernel_ms(&self) -> f64 {
        self.gpu_ms.unwrap_or(self.wall_ms)
    }

    /// The copy kernel's time on the same clock as [`BenchResult::kernel_ms`].
    ///
    /// ```
    /// # let r = xent::bench::BenchResult { name: "1000x1000".into(), dims: vec![1000, 1000], bytes: 8_000_000, gpu_ms: Some(0.5), wall_ms: 1.0, copy_gpu_ms: Some(0.25), copy_wall_ms: 0.75, cpu_ms: Some(20.0), record_us: 12.0, dispatches: Vec::new(), rows_checked: None };
    /// // `r` as in BenchResult's example: the copy 0.25 ms on the GPU's clock, 0.75 on the wall's.
    /// assert_eq!(r.copy_ms(), 0.25);
    /// // Without the call's GPU time, both are on the wall clock.
    /// assert_eq!(xent::bench::BenchResult { gpu_ms: None, ..r }.copy_ms(), 0.75);
    /// ```
    pub fn copy_ms(&self) -> f64 {
        match (self.gpu_ms, self.copy_gpu_ms) {
            (Some(_), Some(c)) => c,
            _ => self.copy_wall_ms,
        }
    }

    /// Effective GB/s of the fused kernel under the traffic model.
    ///
    /// ```
    /// # let r = xent::bench::BenchResult { name: "1000x1000".into(), dims: vec![1000, 1000], bytes: 8_000_000, gpu_ms: Some(0.5), wall_ms: 1.0, copy_gpu_ms: Some(0.25), copy_wall_ms: 0.75, cpu_ms: Some(20.0), record_us: 12.0, dispatches: Vec::new(), rows_checked: None };
    /// // `r` as in BenchResult's example: 8 MB (8·N·C, N = C = 1 000) in 0.5 ms.
    /// assert_eq!(r.gbps(), 16.0);
    /// assert_eq!(xent::bench::BenchResult { gpu_ms: None, ..r }.gbps(), 8.0); // in 1 ms
    /// ```
    pub fn gbps(&self) -> f64 {
        self.bytes as f64 / (self.kernel_ms() * 1e6)
    }

    /// Effective GB/s of the copy kernel.
    ///
    /// ```
    /// # let r = xent::bench::BenchResult { name: "1000x1000".into(), dims: vec![1000, 1000], bytes: 8_000_000, gpu_ms: Some(0.5), wall_ms: 1.0, copy_gpu_ms: Some(0.25), copy_wall_ms: 0.75, cpu_ms: Some(20.0), record_us: 12.0, dispatches: Vec::new(), rows_checked: None };
    /// // `r` as in BenchResult's example: the same 8 MB in 0.25 ms.
    /// assert_eq!(r.copy_gbps(), 32.0);
    /// ```
    pub fn copy_gbps(&self) -> f64 {
        self.bytes as f64 / (self.copy_ms() * 1e6)
    }

    /// Fused bandwidth as a fraction of the copy's (1.0 = as fast as a copy).
    ///
    /// ```
    /// # let r = xent::bench::BenchResult { name: "1000x1000".into(), dims: vec![1000, 1000], bytes: 8_000_000, gpu_ms: Some(0.5), wall_ms: 1.0, copy_gpu_ms: Some(0.25), copy_wall_ms: 0.75, cpu_ms: Some(20.0), record_us: 12.0, dispatches: Vec::new(), rows_checked: None };
    /// // `r` as in BenchResult's example: 0.5 ms against the copy's 0.25.
    /// assert_eq!(r.copy_ratio(), 0.5);
    /// assert_eq!(r.copy_ratio(), r.gbps() / r.copy_gbps());
    /// ```
    pub fn copy_ratio(&self) -> f64 {
        self.copy_ms() / self.kernel_ms()
    }

    /// CPU path time over the fused kernel's wall time.
    ///
    /// ```
    /// # let r = xent::bench::BenchResult { name: "1000x1000".into(), dims: vec![1000, 1000], bytes: 8_000_000, gpu_ms: Some(0.5), wall_ms: 1.0, copy_gpu_ms: Some(0.25), copy_wall_ms: 0.75, cpu_ms: Some(20.0), record_us: 12.0, dispatches: Vec::new(), rows_checked: None };
    /// // `r` as in BenchResult's example: 20 ms on the CPU, 1 on the wall clock.
    /// assert_eq!(r.cpu_speedup(), Some(20.0));
    /// assert_eq!(xent::bench::BenchResult { cpu_ms: None, ..r }.cpu_speedup(), None);
    /// ```
    pub fn cpu_speedup(&self) -> Option<f64> {
        self.cpu_ms.map(|c| c / self.wall_ms)
    }

    /// One JSON object (no external serialiser needed for these flat fields).
    ///
    /// ```
    /// # let r = xent::bench::BenchResult { name: "1000x1000".into(), dims: vec![1000, 1000], bytes: 8_000_000, gpu_ms: Some(0.5), wall_ms: 1.0, copy_gpu_ms: Some(0.25), copy_wall_ms: 0.75, cpu_ms: Some(20.0), record_us: 12.0, dispatches: Vec::new(), rows_checked: None };
    /// // `r` as in BenchResult's example.
    /// let json = r.to_json();
    /// assert!(json.starts_with(r#"{"name":"1000x1000","dims":[1000, 1000],"bytes":8000000,"gpu_ms":0.500000,"#));
    /// assert!(json.contains(r#""gbps":16.000,"copy_gbps":32.000,"copy_ratio":0.5000,"cpu_speedup":20.000000,"rows_checked":null,"#));
    /// ```
    pub fn to_json(&self) -> String {
        let opt = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.6}"));
        format!(
            "{{\"name\":\"{}\",\"dims\":{:?},\"bytes\":{},\"gpu_ms\":{},\"wall_ms\":{:.6},\"copy_gpu_ms\":{},\
             \"copy_wall_ms\":{:.6},\"cpu_ms\":{},\"record_us\":{:.3},\"gbps\":{:.3},\"copy_gbps\":{:.3},\
             \"copy_ratio\":{:.4},\"cpu_speedup\":{},\"rows_checked\":{},\"rows_max_diff\":{},\
             \"dispatches\":[{}]}}",
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
            self.rows_checked.map_or("null".to_string(), |(n, _)| n.to_string()),
            opt(self.rows_checked.map(|(_, d)| d)),
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
    let mut next = move || splitmix(&mut state);
    let logits = (0..layout.len())
        .map(|_| ((next() >> 40) as f32 / (1u64 << 24) as f32) * 20.0 - 10.0)
        .collect();
    let targets = (0..layout.rows())
        .map(|_| (next() % layout.classes as u64) as i64)
        .collect();
    (logits, targets)
}

/// The next splitmix64 draw from `state`: the benchmarks' one generator,
/// which `benches/compare_torch.py` reproduces.
pub(crate) fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
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
            prepared
                .run_cpu()
                .map(|()| start.elapsed().as_secs_f64() * 1e3)
        })
        .transpose()?;
    let rows_checked = match case.check_rows {
        0 => None,
        k => Some(prepared.check_rows(k)?),
    };
    Ok(BenchResult {
        name: case.name.clone(),
        dims: case.dims.clone(),
        bytes: case.bytes(),
        gpu_ms,
        wall_ms,
        copy_gpu_ms,
        copy_wall_ms,
        cpu_ms,
        record_us,
        dispatches: Vec::new(),
        rows_checked,
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
pub(crate) const PROFILE_MAX_DISPATCHES: usize = 64;
