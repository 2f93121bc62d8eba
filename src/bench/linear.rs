//! Benchmarks of the fused linear cross-entropy (`xent bench --linear`):
//! the whole op (forward and backward, gradients of `h` and `W`) and each
//! of its three products alone over one window, timed in turns in one run,
//! with the scratch the op holds beside the bytes the logits would take.

use super::splitmix;
use super::timer::{Measured, Timer};
use crate::core::encode::{Dispatches, Timing};
use crate::core::status::STATUS_SIZE;
use crate::core::traffic::Traffic;
use crate::core::transfer::STORAGE_OUT;
use crate::core::Context;
use crate::core::Precision;
use crate::error::Result;
use crate::ops::cross_entropy::TargetBuffer;
use crate::ops::linear::{LinearBuffers, LinearCrossEntropyOptions, LinearDims, LinearPlan};
use crate::ops::matmul::{MatmulDims, MatmulOptions, MatrixView, ProductBuffers, ProductKernel};

/// The shapes `xent bench --linear` runs by default: GPT-2-small-like
/// heads (a 32 000 and a 50 257 vocabulary) and many short rows.
///
/// ```
/// let cases = xent::bench::default_linear_cases();
/// assert_eq!(cases[0], xent::LinearDims { n: 2048, h: 512, v: 32_000 });
/// // Each case's logits are past 16 MiB, the least default scratch budget: the fused op's reason to be.
/// assert!(cases.iter().all(|d| d.logits_bytes() > xent::DEFAULT_SCRATCH_BUDGET));
/// ```
pub fn default_linear_cases() -> Vec<LinearDims> {
    [(2048, 512, 32_000), (1024, 768, 50_257), (8192, 256, 4096)]
        .into_iter()
        .map(|(n, h, v)| LinearDims { n, h, v })
        .collect()
}

/// One fused case's timings and memory.
///
/// ```
/// use xent::bench::{LinearBenchResult, ProductTime};
/// use xent::{LinearDims, LinearPlan, MatmulDims, Precision};
/// // One window of 100 rows: h·Wᵀ, g·W and gᵀ·h in 0.5 ms each (wall).
/// let product = |name, (m, n, k)| ProductTime { name, dims: MatmulDims { m, n, k }, gpu_ms: None, wall_ms: 0.5 };
/// let r = LinearBenchResult {
///     name: "1000x1000x1000".into(), dims: LinearDims { n: 1000, h: 1000, v: 1000 },
///     precision: Precision::F32, gpu_ms: Some(2.0), wall_ms: 3.0,
///     products: [
///         product("logits", (100, 1000, 1000)),
///         product("grad_hidden", (100, 1000, 1000)),
///         product("grad_weight", (1000, 1000, 100)),
///     ],
///     plan: LinearPlan { window_rows: 100, chunks: 10, window_bytes: 400_000, scratch_bytes: 420_000, budget: 16_777_216 },
///     traffic: None,
/// };
/// // 2·10⁹ flops forward and 4·10⁹ backward in 2 ms.
/// assert_eq!(r.gflops(), 3000.0);
/// ```
#[derive(Debug, Clone)]
pub struct LinearBenchResult {
    /// `NxHxV` and the precision, e.g. `2048x512x32000 bf16`.
    pub name: String,
    pub dims: LinearDims,
    pub precision: Precision,
    /// The whole op: GPU milliseconds from timestamps where the device has
    /// them, and the wall milliseconds of a submit and wait.
    pub gpu_ms: Option<f64>,
    pub wall_ms: f64,
    /// The op's products over one window of rows, each timed alone, in
    /// the op's order: `logits` (`h·Wᵀ`), `grad_hidden` (`g·W`),
    /// `grad_weight` (`gᵀ·h`).
    pub products: [ProductTime; 3],
    /// The window and the scratch the op holds.
    pub plan: LinearPlan,
    /// The bytes the op's dispatches move, beside its minimum (the byte
    /// yardstick: the products' blocks, the window's passes).
    pub traffic: Option<Traffic>,
}

impl LinearBenchResult {
    /// The op's milliseconds: GPU time where measured, else wall.
    ///
    /// ```
    /// # let p = xent::bench::ProductTime { name: "logits", dims: xent::MatmulDims { m: 100, n: 1000, k: 1000 }, gpu_ms: None, wall_ms: 0.5 };
    /// # let r = xent::bench::LinearBenchResult { name: "1000x1000x1000".into(), dims: xent::LinearDims { n: 1000, h: 1000, v: 1000 }, precision: xent::Precision::F32, gpu_ms: Some(2.0), wall_ms: 3.0, products: [p; 3], plan: xent::LinearPlan { window_rows: 100, chunks: 10, window_bytes: 400_000, scratch_bytes: 420_000, budget: 16_777_216 }, traffic: None };
    /// // `r` as in LinearBenchResult's example: 2 ms on the GPU's clock, 3 on the wall's.
    /// assert_eq!(r.ms(), 2.0);
    /// assert_eq!(xent::bench::LinearBenchResult { gpu_ms: None, ..r }.ms(), 3.0);
    /// ```
    pub fn ms(&self) -> f64 {
        self.gpu_ms.unwrap_or(self.wall_ms)
    }

    /// GFLOP/s of the op's products: forward `2·N·H·V`, backward `4·N·H·V`.
    ///
    /// ```
    /// # let p = xent::bench::ProductTime { name: "logits", dims: xent::MatmulDims { m: 100, n: 1000, k: 1000 }, gpu_ms: None, wall_ms: 0.5 };
    /// # let r = xent::bench::LinearBenchResult { name: "1000x1000x1000".into(), dims: xent::LinearDims { n: 1000, h: 1000, v: 1000 }, precision: xent::Precision::F32, gpu_ms: Some(2.0), wall_ms: 3.0, products: [p; 3], plan: xent::LinearPlan { window_rows: 100, chunks: 10, window_bytes: 400_000, scratch_bytes: 420_000, budget: 16_777_216 }, traffic: None };
    /// // `r` as in LinearBenchResult's example: 6·10⁹ flops (1 000³) in 2 ms.
    /// assert_eq!(r.gflops(), 3000.0);
    /// // Without GPU time, over the wall clock's 3 ms.
    /// assert_eq!(xent::bench::LinearBenchResult { gpu_ms: None, ..r }.gflops(), 2000.0);
    /// ```
    pub fn gflops(&self) -> f64 {
        let flops = self.dims.forward_flops() + self.dims.backward_flops();
        flops as f64 / self.ms() / 1e6
    }

    /// The forward product's milliseconds over one window: GPU time where
    /// measured, else wall.
    ///
    /// ```
    /// # let p = xent::bench::ProductTime { name: "logits", dims: xent::MatmulDims { m: 100, n: 1000, k: 1000 }, gpu_ms: None, wall_ms: 0.5 };
    /// # let r = xent::bench::LinearBenchResult { name: "1000x1000x1000".into(), dims: xent::LinearDims { n: 1000, h: 1000, v: 1000 }, precision: xent::Precision::F32, gpu_ms: Some(2.0), wall_ms: 3.0, products: [p; 3], plan: xent::LinearPlan { window_rows: 100, chunks: 10, window_bytes: 400_000, scratch_bytes: 420_000, budget: 16_777_216 }, traffic: None };
    /// // `r` as in LinearBenchResult's example: no GPU time, 0.5 ms on the wall's clock.
    /// assert_eq!(r.matmul_ms(), 0.5);
    /// ```
    pub fn matmul_ms(&self) -> f64 {
        self.products[0].ms()
    }

    /// GFLOP/s of the forward product over one window (`2·rows·H·V`).
    ///
    /// ```
    /// # let p = xent::bench::ProductTime { name: "logits", dims: xent::MatmulDims { m: 100, n: 1000, k: 1000 }, gpu_ms: None, wall_ms: 0.5 };
    /// # let r = xent::bench::LinearBenchResult { name: "1000x1000x1000".into(), dims: xent::LinearDims { n: 1000, h: 1000, v: 1000 }, precision: xent::Precision::F32, gpu_ms: Some(2.0), wall_ms: 3.0, products: [p; 3], plan: xent::LinearPlan { window_rows: 100, chunks: 10, window_bytes: 400_000, scratch_bytes: 420_000, budget: 16_777_216 }, traffic: None };
    /// // `r` as in LinearBenchResult's example: 2·100·1 000² flops in 0.5 ms.
    /// assert_eq!(r.matmul_gflops(), 400.0);
    /// ```
    pub fn matmul_gflops(&self) -> f64 {
        self.products[0].gflops()
    }

    /// One JSON object (`xent bench --linear --json`): the case, its times
    /// (`ms` on the `clock` it was taken with) and GFLOP/s, the bytes the
    /// op holds beside those the logits would take, and the bytes it moves
    /// beside its minimum.
    ///
    /// ```
    /// # let p = xent::bench::ProductTime { name: "logits", dims: xent::MatmulDims { m: 100, n: 1000, k: 1000 }, gpu_ms: None, wall_ms: 0.5 };
    /// # let r = xent::bench::LinearBenchResult { name: "1000x1000x1000".into(), dims: xent::LinearDims { n: 1000, h: 1000, v: 1000 }, precision: xent::Precision::F32, gpu_ms: Some(2.0), wall_ms: 3.0, products: [p; 3], plan: xent::LinearPlan { window_rows: 100, chunks: 10, window_bytes: 400_000, scratch_bytes: 420_000, budget: 16_777_216 }, traffic: None };
    /// // `r` as in LinearBenchResult's example.
    /// let json = r.to_json();
    /// assert!(json.starts_with(r#"{"name":"1000x1000x1000","n":1000,"h":1000,"v":1000,"precision":"f32","ms":2.000000,"clock":"gpu""#));
    /// assert!(json.contains(r#""scratch_bytes":420000,"logits_bytes":4000000,"#));
    /// assert!(json.contains(r#""products":[{"name":"logits","m":100,"n":1000,"k":1000,"ms":0.500000,"#));
    /// assert!(json.ends_with(r#""bytes_min":null,"bytes_planned":null,"bytes_ratio":null}"#));
    /// ```
    pub fn to_json(&self) -> String {
        let LinearDims { n, h, v } = self.dims;
        let int = |v: Option<u64>| v.map_or("null".to_string(), |v| v.to_string());
        format!(
            "{{\"name\":\"{}\",\"n\":{n},\"h\":{h},\"v\":{v},\"precision\":\"{}\",\"ms\":{:.6},\
             \"clock\":\"{}\",\"gflops\":{:.3},\"matmul_ms\":{:.6},\"matmul_gflops\":{:.3},\
             \"products\":[{}],\"scratch_bytes\":{},\"logits_bytes\":{},\"window_rows\":{},\"bytes_min\":{},\
             \"bytes_planned\":{},\"bytes_ratio\":{}}}",
            self.name,
            precision_name(self.precision),
            self.ms(),
            if self.gpu_ms.is_some() { "gpu" } else { "wall" },
            self.gflops(),
            self.matmul_ms(),
            self.matmul_gflops(),
            self.products.map(|p| p.to_json()).join(","),
            self.plan.scratch_bytes,
            self.dims.logits_bytes(),
            self.plan.window_rows,
            int(self.traffic.as_ref().map(|t| t.minimum)),
            int(self.traffic.as_ref().map(Traffic::planned)),
            self.traffic
                .as_ref()
                .map_or("null".to_string(), |t| format!("{:.4}", t.ratio())),
        )
    }
}

/// One of the fused op's products over one window of rows, timed alone.
///
/// ```
/// let dims = xent::MatmulDims { m: 128, n: 512, k: 32_000 };
/// let p = xent::bench::ProductTime { name: "grad_hidden", dims, gpu_ms: Some(1.0), wall_ms: 2.0 };
/// // 2·128·512·32 000 flops in 1 ms on the GPU's clock.
/// assert_eq!((p.ms(), p.gflops()), (1.0, 4194.304));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ProductTime {
    /// `logits` (`h·Wᵀ`), `grad_hidden` (`g·W`) or `grad_weight` (`gᵀ·h`).
    pub name: &'static str,
    pub dims: MatmulDims,
    /// GPU milliseconds from timestamps where the device has them, and the
    /// wall milliseconds of a submit and wait.
    pub gpu_ms: Option<f64>,
    pub wall_ms: f64,
}

impl ProductTime {
    /// Its milliseconds: GPU time where measured, else wall.
    pub fn ms(&self) -> f64 {
        self.gpu_ms.unwrap_or(self.wall_ms)
    }

    /// Its GFLOP/s: `2·m·n·k` over [`ProductTime::ms`].
    pub fn gflops(&self) -> f64 {
        self.dims.flops() as f64 / self.ms() / 1e6
    }

    /// One JSON object: the name, the shape, `ms` and `gflops`.
    fn to_json(self) -> String {
        let MatmulDims { m, n, k } = self.dims;
        format!(
            "{{\"name\":\"{}\",\"m\":{m},\"n\":{n},\"k\":{k},\"ms\":{:.6},\"gflops\":{:.3}}}",
            self.name,
            self.ms(),
            self.gflops()
        )
    }
}

fn precision_name(p: Precision) -> &'static str {
    match p {
        Precision::F32 => "f32",
        Precision::F16 => "f16",
        Precision::BF16 => "bf16",
    }
}

/// Deterministic data of a fused case: `h` uniform in [-1, 1), `W` uniform
/// in [-1/√H, 1/√H), class targets; the splitmix64 draws of
/// [`bench_data`](super::bench_data) in that order, as
/// `benches/compare_torch.py --linear` makes them.
///
/// ```
/// let d = xent::LinearDims { n: 4, h: 16, v: 10 };
/// let (h, w, t) = xent::bench::linear_bench_data(d, 0x5eed);
/// assert_eq!((h.len(), w.len(), t.len()), (64, 160, 4));
/// assert!(w.iter().all(|x| x.abs() <= 0.25) && t.iter().all(|&t| (0..10).contains(&t)));
/// ```
pub fn linear_bench_data(dims: LinearDims, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<i64>) {
    let mut state = seed;
    let mut unit = || ((splitmix(&mut state) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
    let hidden: Vec<f32> = (0..dims.n * dims.h).map(|_| unit()).collect();
    let scale = 1.0 / (dims.h as f32).sqrt();
    let weight: Vec<f32> = (0..dims.v * dims.h).map(|_| unit() * scale).collect();
    let targets = (0..dims.n)
        .map(|_| (splitmix(&mut state) % dims.v as u64) as i64)
        .collect();
    (hidden, weight, targets)
}

/// Timestamps around the whole pass, where the device has them.
fn pass_timing(set: Option<&wgpu::QuerySet>) -> Timing<'_> {
    match super::whole(set) {
        Some(w) => Timing::Whole(w),
        None => Timing::Off,
    }
}

/// Times a fused case: `iters` runs of the op (mean, no bias, the default
/// scratch budget, both gradients) and of each of its products over one
/// window, in turns, after a warm-up.
///
/// # Errors
/// The op's errors ([`Context::record_linear_cross_entropy`]); [`Error::Gpu`](crate::Error::Gpu).
///
/// ```
/// let ctx = xent::Context::from_env()?;
/// let d = xent::LinearDims { n: 64, h: 32, v: 100 };
/// let r = xent::bench::run_linear_case(&ctx, d, xent::Precision::F32, 2)?;
/// assert!(r.ms() > 0.0 && r.plan.scratch_bytes <= xent::DEFAULT_SCRATCH_BUDGET);
/// # Ok::<(), xent::Error>(())
/// ```
pub fn run_linear_case(
    ctx: &Context,
    dims: LinearDims,
    precision: Precision,
    iters: usize,
) -> Result<LinearBenchResult> {
    run_linear_kernel(ctx, dims, precision, iters, ProductKernel::Auto)
}

/// [`run_linear_case`] with the products on `kernel` (the op's and the
/// window's reference product; a kernel but `Auto` named in the case's
/// name, e.g. `64x32x100 bf16 [coop-emulated]`).
///
/// # Errors
/// As [`run_linear_case`]; [`Error::Unsupported`](crate::Error::Unsupported)
/// for [`ProductKernel::Coop`] without cooperative matrices.
///
/// ```
/// let ctx = xent::Context::from_env()?;
/// let d = xent::LinearDims { n: 64, h: 32, v: 100 };
/// let kernel = xent::ProductKernel::CoopEmulated;
/// let r = xent::bench::run_linear_kernel(&ctx, d, xent::Precision::BF16, 1, kernel)?;
/// assert_eq!(r.name, "64x32x100 bf16 [coop-emulated]");
/// # Ok::<(), xent::Error>(())
/// ```
pub fn run_linear_kernel(
    ctx: &Context,
    dims: LinearDims,
    precision: Precision,
    iters: usize,
    kernel: ProductKernel,
) -> Result<LinearBenchResult> {
    let opts = LinearCrossEntropyOptions {
        product_kernel: kernel,
        ..Default::default()
    };
    let plan = ctx.plan_linear_cross_entropy(&dims, &opts, &Default::default())?;
    let LinearDims { n, h, v } = dims;
    let (hidden, weight, targets) = linear_bench_data(dims, 0x5eed);
    let targets: Vec<i32> = targets.iter().map(|&t| t as i32).collect();
    let hidden_buf = ctx.upload("xent bench hidden", &precision.narrow(&hidden))?;
    let weight_buf = ctx.upload("xent bench weight", &precision.narrow(&weight))?;
    let targets_buf = ctx.upload("xent bench targets", bytemuck::cast_slice(&targets))?;
    let out = |label, bytes: usize| ctx.upload_as(label, &vec![0u8; bytes], STORAGE_OUT);
    let loss = out("xent bench loss", 4)?;
    let status = out("xent bench status", STATUS_SIZE as usize)?;
    let gh = out("xent bench grad hidden", n * h * 4)?;
    let gw = out("xent bench grad weight", v * h * 4)?;
    let logits = out("xent bench logits window", plan.window_rows * v * 4)?;
    let op = ctx.prepare_linear_cross_entropy(
        dims,
        &opts,
        &LinearBuffers {
            grad_hidden: Some(gh.slice(..)),
            grad_weight: Some(gw.slice(..)),
            precision,
            ..LinearBuffers::new(
                hidden_buf.slice(..),
                weight_buf.slice(..),
                TargetBuffer::ClassI32(targets_buf.slice(..)),
                loss.slice(..),
                status.slice(..),
            )
        },
        None,
    )?;
    let buffers = [&hidden_buf, &weight_buf, &logits, &gh, &gw].map(|b| b.slice(..));
    let products = window_products(ctx, (dims, &plan, &opts), precision, buffers)?;
    let [(_, _, logits_product), (_, _, dh), (_, _, dw)] = &products;
    let [(wall_ms, gpu_ms), times @ ..] = measure(ctx, iters, [&op, logits_product, dh, dw])?;
    let products = std::array::from_fn(|i| ProductTime {
        name: products[i].0,
        dims: products[i].1,
        gpu_ms: super::first(times[i].1.clone()),
        wall_ms: times[i].0,
    });
    Ok(LinearBenchResult {
        name: match kernel {
            ProductKernel::Auto => format!("{n}x{h}x{v} {}", precision_name(precision)),
            k => format!("{n}x{h}x{v} {} [{}]", precision_name(precision), k.name()),
        },
        dims,
        precision,
        gpu_ms: super::first(gpu_ms),
        wall_ms,
        products,
        plan,
        traffic: op.traffic.clone(),
    })
}

/// `iters` runs of each call, in turns, after a warm-up; one compute pass
/// each, timed where the device has timestamps.
fn measure(ctx: &Context, iters: usize, calls: [&Dispatches; 4]) -> Result<[Measured; 4]> {
    let mut records = calls.map(|call| {
        move |set: Option<&wgpu::QuerySet>, enc: &mut wgpu::CommandEncoder| {
            ctx.encode(enc, call, pass_timing(set)).map(|()| 1)
        }
    });
    let [a, b, c, d] = &mut records;
    let measured = Timer::new(ctx).measure(iters, &mut [a, b, c, d])?;
    Ok(<[Measured; 4]>::try_from(measured).expect("four records, four results"))
}

/// The op's three products over one window of rows, as it runs them (its
/// kernel and cut of k, its room for partial sums), each a call of its
/// own: `logits = h·Wᵀ` into the window, `∂L/∂h = g·W` and `∂L/∂W = gᵀ·h`
/// out of it.
fn window_products(
    ctx: &Context,
    (dims, plan, opts): (LinearDims, &LinearPlan, &LinearCrossEntropyOptions),
    precision: Precision,
    [hidden, weight, window, gh, gw]: [wgpu::BufferSlice<'_>; 5],
) -> Result<[(&'static str, MatmulDims, Dispatches); 3]> {
    let (LinearDims { h, v, .. }, rows) = (dims, plan.window_rows);
    let rule = ctx.split_rule(
        opts.split_k,
        Some(plan.budget.saturating_sub(plan.scratch_bytes)),
    );
    let (hidden, weight) = (
        MatrixView::dense(hidden, precision, h),
        MatrixView::dense(weight, precision, h),
    );
    let g = MatrixView::dense(window, Precision::F32, v);
    let product = |name, (m, n, k), (a, b, out), (transpose_a, transpose_b)| {
        let buffers = ProductBuffers {
            a,
            b,
            bias: None,
            out,
            out_offset: 0,
            out_stride: n as u64,
            accumulate: false,
        };
        let options = MatmulOptions {
            transpose_a,
            transpose_b,
            kernel: opts.product_kernel,
            split_k: opts.split_k,
        };
        let dims = MatmulDims { m, n, k };
        let list = ctx.prepare_matmul(dims, &options, &buffers, (&rule, None))?;
        Ok((name, dims, Dispatches::new(name, list, None)))
    };
    Ok([
        product(
            "logits",
            (rows, v, h),
            (hidden, weight, window),
            (false, true),
        )?,
        product("grad_hidden", (rows, h, v), (g, weight, gh), (false, false))?,
        product("grad_weight", (v, h, rows), (g, hidden, gw), (true, false))?,
    ])
}
