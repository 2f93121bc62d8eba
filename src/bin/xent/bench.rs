//! `xent bench`: the fused kernel against a copy over the same bytes and the CPU path.

use crate::{usage, BackendArg, Failure};
use xent::bench::BenchOp;

use crate::kernel::ProductKernelArg;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// The storage of the op's tensors (logits and gradient, an elementwise
    /// loss's input and target, softmax's input and output); comma-separated to run each case in each, e.g. f32,bf16.
    #[arg(long, value_name = "f32|f16|bf16", default_value = "f32")]
    precision: String,
    /// Cross-entropy's kernel strategies to time each case with:
    /// comma-separated names (auto, wide, wide4, wide-mixed, narrow,
    /// narrow4, pixels4, split, team, team4, map-team), or `all` for auto and every strategy that
    /// can serve the case.
    #[arg(long, value_name = "auto|all|NAME,...", default_value = "auto")]
    strategies: String,
    /// Timed runs per case (after one warm-up); the median is reported.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    iters: u64,
    /// Comma-separated cases: shapes like 4096x4096,8x21x256x256 (cross-entropy), or an
    /// op and a shape like bce-with-logits:4096x4096, softmax:4096x4096,
    /// log-softmax-backward:4096x4096, vocab-split-4:4096x32000 (cross-entropy
    /// over 4 vocabulary shards on this device) (default: the reference cases).
    #[arg(long)]
    cases: Option<String>,
    /// Skip timing the CPU path (slow on large shapes).
    #[arg(long)]
    no_cpu: bool,
    /// After timing each cross-entropy or softmax case of shape (N, C), hold
    /// K rows of its output (the gradient; spread evenly, the first and last
    /// among them) to the CPU path on those rows alone: the check of a case
    /// too large to compute whole on the CPU. A disagreement is exit status 1.
    #[arg(long, value_name = "K", default_value_t = 0)]
    check_rows: usize,
    /// Also time each dispatch of the fused call on its own (GPU time from
    /// timestamps, each dispatch in a compute pass of its own), to show where
    /// a case spends its time.
    #[arg(long)]
    profile: bool,
    /// Benchmark the fused linear cross-entropy instead: comma-separated
    /// NxHxV shapes (hidden N x H, weight V x H), or none for the default
    /// set (2048x512x32000, 1024x768x50257, 8192x256x4096). Prints the op's
    /// time and GFLOP/s (forward 2NHV, backward 4NHV), its forward product's
    /// GFLOP/s over one window, the device scratch it holds and the N·V·4
    /// bytes the logits would take.
    #[arg(long, value_name = "NxHxV,...", num_args = 0..=1, default_missing_value = "")]
    linear: Option<String>,
    /// With --linear, the products' kernel: auto, tiled, blocks, coop
    /// (tensor cores, bf16 and f16 only; exit 2 where the adapter lacks
    /// them), coop-emulated (the same kernel in plain WGSL, any adapter).
    #[arg(long, value_enum, default_value_t = ProductKernelArg::Auto)]
    product_kernel: ProductKernelArg,
    /// Plan every call as for this class of device, whatever the adapter
    /// (default: the adapter's own): `gpu` runs, checks and counts the GPU
    /// table's plans on a software adapter. Sets the strategies, not the
    /// speed: timings of a forced class say nothing of a real GPU.
    #[arg(long, value_name = "gpu|software")]
    device_class: Option<String>,
    /// The wgpu backend to run on (sets WGPU_BACKEND).
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
}

/// The context on the environment's adapter, its plans as `--device-class` says.
fn context(args: &BenchArgs) -> Result<xent::Context, Failure> {
    let ctx = xent::Context::from_env()?;
    Ok(match &args.device_class {
        None => ctx,
        Some(class) => ctx.with_device_class(class.trim().parse()?),
    })
}

pub fn run(args: &BenchArgs) -> Result<(), Failure> {
    if args.backend == BackendArg::Cpu {
        return Err(usage(
            "xent bench times the GPU; --backend cpu is for xent loss",
        ));
    }
    if let Some(list) = &args.linear {
        return run_linear(args, list);
    }
    if args.product_kernel != ProductKernelArg::Auto {
        return Err(usage("--product-kernel applies to --linear"));
    }
    let all = args.strategies.trim() == "all";
    let cases = cases(args, all)?;
    let ctx = context(args)?;
    let mut results = Vec::new();
    if !args.json {
        say!(
            "adapter: {} (plans for the {} class)",
            ctx.adapter_summary(),
            ctx.device_class().name()
        );
        say!(
            "{:>34} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9} {:>8} {:>8}",
            "case",
            "fused ms",
            "clock",
            "GB/s",
            "copy GB/s",
            "of copy",
            "CPU ms",
            "record",
            "bytes/min"
        );
    }
    for case in &cases {
        let Some(r) = time_case(&ctx, case, args, all)? else {
            continue;
        };
        if !args.json {
            print_row(&r);
        }
        results.push(r);
    }
    if args.json {
        say_json(&ctx, "results", results.iter().map(|r| r.to_json()));
    }
    Ok(())
}

/// The cases to time: each of `--cases` (or the reference cases) in each
/// precision, the cross-entropy ones in each strategy (`all`: `--strategies
/// all`), with `--check-rows` on those of shape (N, C).
fn cases(args: &BenchArgs, all: bool) -> Result<Vec<xent::bench::BenchCase>, Failure> {
    let cases = match &args.cases {
        None => xent::bench::reference_cases(),
        Some(list) => list
            .split(',')
            .map(parse_case)
            .collect::<Result<Vec<_>, _>>()?,
    };
    let precisions = precisions(args)?;
    let strategies: Vec<xent::Strategy> = if all {
        std::iter::once(xent::Strategy::Auto)
            .chain(xent::Strategy::FORCED)
            .collect()
    } else {
        args.strategies
            .split(',')
            .map(|s| s.trim().parse())
            .collect::<Result<_, _>>()?
    };
    // Each case in each precision; the cross-entropy ones in each strategy,
    // the others with their one table.
    let cases: Vec<xent::bench::BenchCase> = cases
        .into_iter()
        .flat_map(|case| {
            let ss = match case.op {
                BenchOp::CrossEntropy => strategies.clone(),
                _ => vec![xent::Strategy::Auto],
            };
            let ps = precisions.clone();
            ps.into_iter().flat_map(move |p| {
                let case = case.clone();
                ss.clone()
                    .into_iter()
                    .map(move |s| case.clone().with_precision(p).with_strategy(s))
            })
        })
        .map(|mut case| {
            let by_rows = !matches!(case.op, BenchOp::Elementwise(_));
            if by_rows && case.dims.len() == 2 {
                case.check_rows = args.check_rows;
            }
            case
        })
        .collect();
    if args.check_rows > 0 && cases.iter().all(|c| c.check_rows == 0) {
        return Err(usage(
            "--check-rows checks cross-entropy and softmax cases of shape (N, C); --cases has none",
        ));
    }
    Ok(cases)
}

/// Times a case (and profiles it with `--profile`); `None` for a strategy
/// that cannot serve it under `--strategies all` (`all`).
fn time_case(
    ctx: &xent::Context,
    case: &xent::bench::BenchCase,
    args: &BenchArgs,
    all: bool,
) -> Result<Option<xent::bench::BenchResult>, Failure> {
    let mut r = match xent::bench::run_case(ctx, case, args.iters as usize, !args.no_cpu) {
        // With `all`, the strategies that cannot serve a case are left out.
        Err(xent::Error::Unsupported { .. }) if all && case.strategy != xent::Strategy::Auto => {
            return Ok(None)
        }
        r => r?,
    };
    if args.profile {
        r.dispatches = xent::bench::profile_case(ctx, case, args.iters as usize)?;
    }
    Ok(Some(r))
}

/// A timed case's row of the table, with its dispatches (`--profile`) and
/// its rows checked (`--check-rows`).
fn print_row(r: &xent::bench::BenchResult) {
    say!(
        "{:>34} {:>9.2} {:>9} {:>9.2} {:>9.2} {:>7.0}% {:>9} {:>6.1}us {:>8}",
        r.name,
        r.kernel_ms(),
        if r.gpu_ms.is_some() { "gpu" } else { "wall" },
        r.gbps(),
        r.copy_gbps(),
        r.copy_ratio() * 100.0,
        r.cpu_ms.map_or("-".to_string(), |c| format!("{c:.1}")),
        r.record_us,
        r.traffic
            .as_ref()
            .map_or("-".to_string(), |t| format!("{:.3}", t.ratio()))
    );
    print_profile(r);
    if let Some((rows, diff)) = r.rows_checked {
        say!(
            "{:>16}   {rows} sampled rows agree with the CPU path (largest |GPU - CPU| {diff:.3e})",
            ""
        );
    }
}

/// `--json`: one document of the adapter and each result's JSON under `key`.
fn say_json(ctx: &xent::Context, key: &str, results: impl Iterator<Item = String>) {
    let body: Vec<String> = results.collect();
    say!(
        "{{\"adapter\":\"{}\",\"device_class\":\"{}\",\"{key}\":[{}]}}",
        ctx.adapter_summary()
            .replace('\\', "\\\\")
            .replace('"', "\\\""),
        ctx.device_class().name(),
        body.join(",")
    );
}

/// The dispatches of a profiled case, each with its share of their sum.
fn print_profile(r: &xent::bench::BenchResult) {
    let sum: f64 = r.dispatches.iter().map(|d| d.gpu_ms).sum();
    for d in &r.dispatches {
        // A sum of 0 (a timer too coarse for the call) has no shares.
        let share = if sum > 0.0 {
            100.0 * d.gpu_ms / sum
        } else {
            0.0
        };
        say!(
            "{:>16}   {:<20} {:>8.3} ms {:>5.1}%",
            "",
            d.entry,
            d.gpu_ms,
            share
        );
    }
    if !r.dispatches.is_empty() {
        say!(
            "{:>16}   {:<20} {:>8.3} ms (the call in one pass: {:.3} ms)",
            "",
            "sum of dispatches",
            sum,
            r.kernel_ms()
        );
    }
}

/// A case as `--cases` names it: a shape (`4096x4096`, cross-entropy), or
/// an op and a shape (`bce-with-logits:4096x4096`, `softmax:4096x4096`;
/// `BenchOp` names them).
fn parse_case(case: &str) -> Result<xent::bench::BenchCase, Failure> {
    let (loss, shape) = match case.trim().split_once(':') {
        Some((loss, shape)) => (Some(loss), shape),
        None => (None, case.trim()),
    };
    let dims = shape
        .split('x')
        .map(|d| {
            d.trim().parse::<usize>().map_err(|_| {
                usage(format!(
                    "bad case {case:?}: expected a shape like 4096x4096, or an op and a shape \
                     like bce-with-logits:4096x4096 or softmax:4096x4096"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(match loss {
        None => xent::bench::BenchCase::new(&dims),
        Some(name) => xent::bench::BenchCase::of(name.trim().parse()?, &dims),
    })
}

/// `--precision`, comma-separated.
fn precisions(args: &BenchArgs) -> Result<Vec<xent::Precision>, Failure> {
    args.precision
        .split(',')
        .map(|p| match p.trim() {
            "f32" => Ok(xent::Precision::F32),
            "f16" => Ok(xent::Precision::F16),
            "bf16" => Ok(xent::Precision::BF16),
            other => Err(usage(format!(
                "bad --precision {other:?}: expected f32, f16 or bf16 (comma-separated)"
            ))),
        })
        .collect()
}

/// `xent bench --linear`: each shape in each precision.
fn run_linear(args: &BenchArgs, list: &str) -> Result<(), Failure> {
    for (flag, given) in [
        ("--cases", args.cases.is_some()),
        ("--check-rows", args.check_rows > 0),
        ("--profile", args.profile),
        ("--strategies", args.strategies.trim() != "auto"),
    ] {
        if given {
            return Err(usage(format!("{flag} does not apply to --linear")));
        }
    }
    let shapes = if list.trim().is_empty() {
        xent::bench::default_linear_cases()
    } else {
        list.split(',')
            .map(parse_linear)
            .collect::<Result<Vec<_>, _>>()?
    };
    let precisions = precisions(args)?;
    let kernel = args.product_kernel.kernel();
    let ctx = context(args)?;
    args.product_kernel.check_device(&ctx)?;
    let mut results = Vec::new();
    if !args.json {
        say!("adapter: {}", ctx.adapter_summary());
        say!(
            "{:>24} {:>10} {:>6} {:>9} {:>11} {:>11} {:>11} {:>11} {:>11} {:>9} {:>10}",
            "case",
            "op ms",
            "clock",
            "GFLOP/s",
            "h·Wᵀ GF/s",
            "g·W GF/s",
            "gᵀ·h GF/s",
            "scratch MB",
            "logits MB",
            "scratch",
            "bytes/min"
        );
    }
    for &dims in &shapes {
        for &p in &precisions {
            let r = xent::bench::run_linear_kernel(&ctx, dims, p, args.iters as usize, kernel)?;
            if !args.json {
                say!(
                    "{:>24} {:>10.2} {:>6} {:>9.2} {:>11.2} {:>11.2} {:>11.2} {:>11.2} {:>11.2} \
                     {:>8.1}% {:>10.2}",
                    r.name,
                    r.ms(),
                    if r.gpu_ms.is_some() { "gpu" } else { "wall" },
                    r.gflops(),
                    r.products[0].gflops(),
                    r.products[1].gflops(),
                    r.products[2].gflops(),
                    r.plan.scratch_bytes as f64 / 1e6,
                    dims.logits_bytes() as f64 / 1e6,
                    100.0 * r.plan.scratch_bytes as f64 / dims.logits_bytes() as f64,
                    r.traffic.as_ref().map_or(f64::NAN, xent::Traffic::ratio)
                );
            }
            results.push(r);
        }
    }
    if args.json {
        say_json(&ctx, "linear", results.iter().map(|r| r.to_json()));
    }
    Ok(())
}

/// A fused case as `--linear` names it: `NxHxV` (`×` also taken).
fn parse_linear(case: &str) -> Result<xent::LinearDims, Failure> {
    let dims: Vec<usize> = case
        .trim()
        .split(['x', '×'])
        .map(|d| d.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| {
            usage(format!(
                "bad --linear case {case:?}: expected NxHxV, like 2048x512x32000"
            ))
        })?;
    match dims[..] {
        [n, h, v] => Ok(xent::LinearDims { n, h, v }),
        _ => Err(usage(format!(
            "bad --linear case {case:?}: expected three sizes NxHxV, like 2048x512x32000"
        ))),
    }
}
