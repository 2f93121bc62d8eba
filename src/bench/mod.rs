//! Benchmarks of the losses against this adapter's copy bandwidth and the
//! CPU path, shared by `xent bench` and `benches/`: the cases and their runs
//! here, their results in `result.rs`, the uploaded data in
//! `prepared.rs`, the timing in `timer.rs`.
//!
//! Traffic model: a fused cross-entropy forward + backward must read the
//! logits once and write the gradient once, `8·N·C` bytes in f32 (`4·N·C`
//! in f16 and bf16); an
//! elementwise loss reads the input and the target once and writes the
//! gradient once, `12·N` (half that in f16 and bf16); softmax reads its input
//! and writes its output once, `8·N`, its backward reads y and dy and writes
//! dx, `12·N`. Effective GB/s is that over the time taken. The
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

mod data;
mod linear;
mod op;
mod prepared;
mod result;
mod timer;
mod vocab;

pub use data::bench_data;
pub(crate) use data::splitmix;
pub use linear::{
    default_linear_cases, linear_bench_data, run_linear_case, run_linear_kernel, LinearBenchResult,
    ProductTime,
};
pub use op::BenchOp;
pub use prepared::Prepared;
pub use result::{BenchResult, DispatchTime};
use timer::{Measured, Timer};

use std::time::Instant;

use crate::core::encode::Timing;
use crate::core::Context;
use crate::core::Precision;
use crate::error::{Error, Result};
use crate::ops::cross_entropy::options::Strategy;
use crate::ops::elementwise::ElementwiseLoss;

/// One benchmark case: a shape, and the op it times.
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
    /// The op timed: cross-entropy, an elementwise loss, softmax or its backward.
    pub op: BenchOp,
    /// The storage of the op's tensors: the logits (an elementwise loss's
    /// input and target, softmax's input or y and dy) and the gradient (or
    /// output).
    pub precision: Precision,
    /// Cross-entropy's kernel strategy (`Auto`, or one forced).
    pub strategy: Strategy,
    /// After timing, hold this many rows of the gradient (spread evenly,
    /// the first and the last among them) to the CPU path on those rows
    /// alone ([`Prepared::check_rows`]): the check of a case too large for
    /// the CPU to compute whole. 0: none. Cross-entropy and softmax cases of
    /// (N, C) only.
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
    /// assert_eq!((case.op, case.precision, case.strategy, case.check_rows),
    ///     (xent::bench::BenchOp::CrossEntropy, Precision::F32, Strategy::Auto, 0));
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
            op: BenchOp::CrossEntropy,
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
        Self::of(BenchOp::Elementwise(loss), dims)
    }

    /// A case of `op`, named after it and its shape (a cross-entropy case
    /// after its shape alone).
    ///
    /// ```
    /// use xent::bench::{BenchCase, BenchOp};
    /// let case = BenchCase::of(BenchOp::Softmax(xent::SoftmaxKind::LogSoftmax), &[64, 64]);
    /// assert_eq!(case.name, "log-softmax 64x64");
    /// assert_eq!(BenchCase::of(BenchOp::CrossEntropy, &[64, 64]), BenchCase::new(&[64, 64]));
    /// assert_eq!(BenchCase::of(BenchOp::VocabSplit(4), &[64, 64]).name, "vocab-split-4 64x64");
    /// ```
    pub fn of(op: BenchOp, dims: &[usize]) -> Self {
        let shape = Self::new(dims);
        match op {
            BenchOp::CrossEntropy => shape,
            BenchOp::VocabSplit(k) => Self {
                name: format!("vocab-split-{k} {}", shape.name),
                op,
                ..shape
            },
            op => Self {
                name: format!("{} {}", op.name(), shape.name),
                op,
                ..shape
            },
        }
    }

    /// Bytes under the traffic model (see the module's documentation).
    fn bytes(&self) -> u64 {
        let n: usize = self.dims.iter().product();
        self.op.tensors() * self.precision.size() * n as u64
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

/// Times one case: `iters` runs of its op's call (a loss's fused forward +
/// backward: mean reduction, class-index targets) and of the copy kernel,
/// after one warm-up each; the CPU path once when `with_cpu`.
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
        traffic: Some(prepared.traffic()?),
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
///     // the statistics, the rows, the loss's tiles of 64 rows, the loss
///     let entries: Vec<_> = profile.iter().map(|d| d.entry).collect();
///     assert_eq!((entries[0], entries[2], entries[3]), ("target_stats", "loss_tiles", "reduce_loss"));
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
