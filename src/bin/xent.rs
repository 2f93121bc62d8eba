//! The `xent` command: the main job (`xent` / `xent demo`), losses of NumPy
//! `.npy` files (`xent loss`), the adapters (`xent info`) and benchmarks
//! (`xent bench`). Exit status: 0 success, 1 GPU and CPU disagree, 2 bad
//! usage or bad input (one `error: …` line on stderr).

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use npyz::WriterBuilder;
use xent::{cpu, CrossEntropyOptions, InputKind, Layout, Reduction, Targets, Tolerance, Weights};

#[derive(Parser)]
#[command(
    name = "xent",
    version,
    about = "Softmax cross-entropy and its gradient on the GPU, checked against the CPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// The main job on embedded data: the worked example, a segmentation map, a long vocabulary (the default).
    Demo,
    /// Loss and gradient of .npy inputs.
    Loss(LossArgs),
    /// The adapters found, with the limits and features that matter to xent.
    Info,
    /// Benchmarks of the fused kernel against a copy over the same bytes and the CPU path.
    Bench(BenchArgs),
}

#[derive(clap::Args)]
struct LossArgs {
    /// Input .npy (float32 or float64): (C), (N, C) or (N, C, d1, ..., dK), class axis 1.
    #[arg(long)]
    logits: PathBuf,
    /// Targets .npy: int64/int32/uint8 class ids (the input's shape without the class axis)
    /// or float32/float64 probabilities (the input's shape).
    #[arg(long)]
    targets: PathBuf,
    /// Class weights .npy (float32 or float64), shape (C).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Targets equal to this are ignored.
    #[arg(long, default_value_t = -100, allow_negative_numbers = true)]
    ignore_index: i64,
    #[arg(long, value_enum, default_value_t = ReductionArg::Mean)]
    reduction: ReductionArg,
    /// Label smoothing in [0, 1].
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f64,
    /// What the input holds.
    #[arg(long, value_enum, default_value_t = InputArg::Logits)]
    input: InputArg,
    /// Write the loss as float32 .npy: shape () for mean and sum, the target's shape for none.
    #[arg(long)]
    loss_out: Option<PathBuf>,
    /// Write d loss / d input as float32 .npy with the input's shape.
    #[arg(long)]
    grad_out: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,
    /// Do not check the GPU result against the CPU path.
    #[arg(long)]
    no_check: bool,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// Timed runs per case (after one warm-up); the median is reported.
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Comma-separated shapes like 4096x4096,8x21x256x256 (default: the reference shapes).
    #[arg(long)]
    cases: Option<String>,
    /// Skip timing the CPU path (slow on large shapes).
    #[arg(long)]
    no_cpu: bool,
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReductionArg {
    Mean,
    Sum,
    None,
}

#[derive(Clone, Copy, ValueEnum)]
enum InputArg {
    Logits,
    LogProbs,
    Probs,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    Auto,
    Vulkan,
    Gl,
    Metal,
    Dx12,
    Cpu,
}

/// A failure with its exit status: 1 for a GPU/CPU disagreement, 2 for bad usage or input.
struct Failure {
    code: u8,
    message: String,
}

impl From<xent::Error> for Failure {
    fn from(e: xent::Error) -> Self {
        let code = if matches!(e, xent::Error::Mismatch { .. }) {
            1
        } else {
            2
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: 2,
        message: message.into(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Demo) {
        Command::Demo => demo(),
        Command::Loss(args) => loss(&args),
        Command::Info => info(),
        Command::Bench(args) => bench(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message.replace('\n', " "));
            ExitCode::from(f.code)
        }
    }
}

/// Points wgpu at the backend asked for (before any adapter is created).
fn select_backend(backend: BackendArg) {
    let name = match backend {
        BackendArg::Auto | BackendArg::Cpu => return,
        BackendArg::Vulkan => "vulkan",
        BackendArg::Gl => "gl",
        BackendArg::Metal => "metal",
        BackendArg::Dx12 => "dx12",
    };
    std::env::set_var("WGPU_BACKEND", name);
}

// ---------------------------------------------------------------- demo

fn demo() -> Result<(), Failure> {
    let ctx = xent::Context::from_env()?;
    println!("adapter: {}", ctx.adapter_summary());
    let tol = Tolerance::default();
    println!(
        "{:<30} {:<16} {:>10} {:>12} {:>12} {:>10}",
        "case", "shape", "loss", "|dloss|", "|dgrad|", "GPU call"
    );
    let mut failures = Vec::new();

    // 1. The worked example of the notes: mean loss 3.7925.
    let logits = [
        10.0f32, 2.0, 1.0, -2.0, -3.0, -1.0, -6.0, 0.0, -3.0, -5.0, -5.0, 4.0, 8.0, 2.0, 1.0,
    ];
    let case = DemoCase {
        name: "worked example (note 000)",
        dims: vec![3, 5],
        logits: logits.to_vec(),
        targets: vec![1, 3, 2],
        opts: CrossEntropyOptions::default(),
    };
    let out = case.run(&ctx, &tol, &mut failures)?;
    if let Some(g) = out {
        println!("  loss {:.4} (PyTorch: 3.7925); gradient:", g.loss[0]);
        for row in g.grad.as_deref().unwrap_or_default().chunks(5) {
            let cells: Vec<String> = row.iter().map(|v| format!("{v:+.4}")).collect();
            println!("    [{}]", cells.join(", "));
        }
    }

    // 2. A segmentation map, channel-first, ignore label 255 on a border.
    let dims = vec![2, 21, 64, 64];
    let layout = Layout::from_dims(&dims)?;
    let (logits, mut targets) = xent::bench::bench_data(&layout, 2);
    for (i, t) in targets.iter_mut().enumerate() {
        let (h, w) = ((i / 64) % 64, i % 64);
        if h < 2 || w < 2 {
            *t = 255;
        }
    }
    let opts = CrossEntropyOptions {
        ignore_index: 255,
        ..Default::default()
    };
    DemoCase {
        name: "segmentation map (ignore 255)",
        dims,
        logits,
        targets,
        opts,
    }
    .run(&ctx, &tol, &mut failures)?;

    // 3. A long vocabulary row.
    let dims = vec![8, 50_257];
    let (logits, targets) = xent::bench::bench_data(&Layout::from_dims(&dims)?, 3);
    DemoCase {
        name: "vocabulary (GPT-2 size)",
        dims,
        logits,
        targets,
        opts: CrossEntropyOptions::default(),
    }
    .run(&ctx, &tol, &mut failures)?;

    if failures.is_empty() {
        println!(
            "all GPU results agree with the CPU (tolerance |gpu - cpu| <= {} or <= {} x max)",
            tol.abs, tol.rel
        );
        Ok(())
    } else {
        Err(Failure {
            code: 1,
            message: failures.join("; "),
        })
    }
}

struct DemoCase {
    name: &'static str,
    dims: Vec<usize>,
    logits: Vec<f32>,
    targets: Vec<i64>,
    opts: CrossEntropyOptions,
}

impl DemoCase {
    /// Runs on the GPU, holds the result to the CPU, prints a table row.
    fn run(
        self,
        ctx: &xent::Context,
        tol: &Tolerance,
        failures: &mut Vec<String>,
    ) -> Result<Option<xent::CrossEntropyOutput<f32>>, Failure> {
        let start = Instant::now();
        let gpu = ctx.cross_entropy(&self.logits, &self.dims, &self.targets, None, &self.opts)?;
        let elapsed = start.elapsed();
        let want = cpu::cross_entropy(&self.logits, &self.dims, &self.targets, None, &self.opts)?;
        let grad = gpu.grad.as_deref().unwrap_or_default();
        let want_grad = want.grad.as_deref().unwrap_or_default();
        let shape: Vec<String> = self.dims.iter().map(ToString::to_string).collect();
        println!(
            "{:<30} {:<16} {:>10.4} {:>12.3e} {:>12.3e} {:>8.1}ms",
            self.name,
            shape.join("x"),
            gpu.loss[0],
            xent::max_abs_diff(&gpu.loss, &want.loss),
            xent::max_abs_diff(grad, want_grad),
            elapsed.as_secs_f64() * 1e3
        );
        for check in [
            tol.compare("loss", &gpu.loss, &want.loss),
            tol.compare("grad", grad, want_grad),
        ] {
            if let Err(e) = check {
                failures.push(format!("{}: {e}", self.name));
            }
        }
        Ok(Some(gpu))
    }
}

// ---------------------------------------------------------------- loss

/// An .npy array read as f32 or f64 values, or as integers, with its shape.
enum Array {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    U8(Vec<u8>),
}

fn read_npy(what: &str, path: &Path) -> Result<(Array, Vec<usize>), Failure> {
    let file = File::open(path)
        .map_err(|e| usage(format!("cannot read {what} file {}: {e}", path.display())))?;
    let npy = npyz::NpyFile::new(BufReader::new(file)).map_err(|e| {
        usage(format!(
            "{what} file {} is not a NumPy .npy file: {e}",
            path.display()
        ))
    })?;
    if npy.order() == npyz::Order::Fortran {
        return Err(usage(format!(
            "{what} file {} is Fortran-ordered; save it C-ordered",
            path.display()
        )));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let dtype = npy.dtype();
    let npyz::DType::Plain(ts) = &dtype else {
        return Err(usage(format!(
            "{what} file {} has a structured dtype; expected a plain numeric array",
            path.display()
        )));
    };
    let bad = |e: std::io::Error| usage(format!("reading {what} file {}: {e}", path.display()));
    let array = match (ts.type_char(), ts.size_field()) {
        (npyz::TypeChar::Float, 4) => Array::F32(npy.into_vec().map_err(bad)?),
        (npyz::TypeChar::Float, 8) => Array::F64(npy.into_vec().map_err(bad)?),
        (npyz::TypeChar::Int, 8) => Array::I64(npy.into_vec().map_err(bad)?),
        (npyz::TypeChar::Int, 4) => Array::I32(npy.into_vec().map_err(bad)?),
        (npyz::TypeChar::Uint, 1) => Array::U8(npy.into_vec().map_err(bad)?),
        _ => {
            return Err(usage(format!(
                "{what} file {} has dtype {ts}, which xent does not take (see `xent loss --help`)",
                path.display()
            )))
        }
    };
    Ok((array, shape))
}

fn floats(what: &str, array: Array) -> Result<Vec<f32>, Failure> {
    match array {
        Array::F32(v) => Ok(v),
        Array::F64(v) => Ok(v.into_iter().map(|x| x as f32).collect()),
        _ => Err(usage(format!("{what} must be float32 or float64"))),
    }
}

fn loss(args: &LossArgs) -> Result<(), Failure> {
    let (logits, dims) = read_npy("logits", &args.logits)?;
    let logits = floats("logits", logits)?;
    let layout = Layout::from_dims(&dims)?;
    let (targets, target_shape) = read_npy("targets", &args.targets)?;
    let weights = match &args.weights {
        Some(path) => {
            let (w, shape) = read_npy("weights", path)?;
            if shape.len() != 1 {
                return Err(usage(format!("weights must have shape (C), got {shape:?}")));
            }
            Some(floats("weights", w)?)
        }
        None => None,
    };
    let probs;
    let targets = match targets {
        Array::F32(_) | Array::F64(_) => {
            if target_shape != dims {
                return Err(usage(format!(
                    "probability targets have shape {target_shape:?} but the logits have {dims:?}"
                )));
            }
            probs = floats("targets", targets)?;
            TargetsOwned::Probs(&probs)
        }
        other => {
            if target_shape != layout.target_dims() {
                return Err(usage(format!(
                    "class targets have shape {target_shape:?} but logits {dims:?} need {:?}",
                    layout.target_dims()
                )));
            }
            TargetsOwned::Class(other)
        }
    };
    let opts = CrossEntropyOptions {
        reduction: match args.reduction {
            ReductionArg::Mean => Reduction::Mean,
            ReductionArg::Sum => Reduction::Sum,
            ReductionArg::None => Reduction::None,
        },
        ignore_index: args.ignore_index,
        label_smoothing: args.label_smoothing,
        input: match args.input {
            InputArg::Logits => InputKind::Logits,
            InputArg::LogProbs => InputKind::LogProbs,
            InputArg::Probs => InputKind::Probs,
        },
        ..Default::default()
    };
    let w = Weights {
        class: weights.as_deref(),
        sample: None,
    };
    let t = targets.as_targets();

    let (loss, grad, adapter, diff) = if args.backend == BackendArg::Cpu {
        let out = cpu::cross_entropy_with(&logits, &dims, t, w, &opts)?;
        let to32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        (
            to32(&out.loss),
            out.grad.as_deref().map(to32),
            "cpu (f64 reference path)".to_string(),
            None,
        )
    } else {
        select_backend(args.backend);
        let ctx = xent::Context::from_env()?;
        let out = ctx.cross_entropy_with(&logits, &dims, t, w, &opts)?;
        let diff = if args.no_check {
            None
        } else {
            let want = cpu::cross_entropy_with(&logits, &dims, t, w, &opts)?;
            let grad = out.grad.as_deref().unwrap_or_default();
            let want_grad = want.grad.as_deref().unwrap_or_default();
            let d =
                xent::max_abs_diff(&out.loss, &want.loss).max(xent::max_abs_diff(grad, want_grad));
            let tol = Tolerance::default();
            tol.compare("loss", &out.loss, &want.loss)?;
            tol.compare("grad", grad, want_grad)?;
            Some(d)
        };
        (out.loss, out.grad, ctx.adapter_summary(), diff)
    };

    if opts.reduction == Reduction::None {
        let finite: Vec<f32> = loss.iter().copied().filter(|v| v.is_finite()).collect();
        let sum: f64 = finite.iter().map(|&v| f64::from(v)).sum();
        let min = finite.iter().copied().fold(f32::INFINITY, f32::min);
        let max = finite.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        println!(
            "loss (none): {} values, sum {sum:.6}, mean {:.6}, min {min:.6}, max {max:.6}{}",
            loss.len(),
            sum / loss.len() as f64,
            if finite.len() < loss.len() {
                format!(", {} not finite", loss.len() - finite.len())
            } else {
                String::new()
            }
        );
    } else {
        let name = if opts.reduction == Reduction::Sum {
            "sum"
        } else {
            "mean"
        };
        println!("loss ({name}): {:.6}", loss[0]);
    }
    println!("adapter: {adapter}");
    match diff {
        Some(d) => println!("largest |GPU - CPU|: {d:.3e} (within tolerance)"),
        None if args.backend == BackendArg::Cpu => println!("ran on the CPU path only"),
        None => println!("not checked against the CPU (--no-check)"),
    }
    if let Some(path) = &args.loss_out {
        let shape = if opts.reduction == Reduction::None {
            layout.target_dims()
        } else {
            Vec::new()
        };
        write_npy(path, &shape, &loss)?;
    }
    if let Some(path) = &args.grad_out {
        write_npy(path, &dims, grad.as_deref().unwrap_or_default())?;
    }
    Ok(())
}

/// Class targets kept in the dtype they were read in.
enum TargetsOwned<'a> {
    Class(Array),
    Probs(&'a [f32]),
}

impl TargetsOwned<'_> {
    fn as_targets(&self) -> Targets<'_> {
        match self {
            TargetsOwned::Class(Array::I64(t)) => Targets::I64(t),
            TargetsOwned::Class(Array::I32(t)) => Targets::I32(t),
            TargetsOwned::Class(Array::U8(t)) => Targets::U8(t),
            TargetsOwned::Class(_) => unreachable!("float targets are probabilities"),
            TargetsOwned::Probs(p) => Targets::Probs(p),
        }
    }
}

fn write_npy(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), Failure> {
    let fail = |e: std::io::Error| usage(format!("cannot write {}: {e}", path.display()));
    let file = File::create(path).map_err(fail)?;
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(BufWriter::new(file))
        .begin_nd()
        .map_err(fail)?;
    writer.extend(data.iter().copied()).map_err(fail)?;
    writer.finish().map_err(fail)
}

// ---------------------------------------------------------------- info

fn info() -> Result<(), Failure> {
    let adapters = xent::enumerate_adapters();
    if adapters.is_empty() {
        return Err(xent::Error::NoAdapter {
            request: "xent info: no adapter on any backend".into(),
        }
        .into());
    }
    for adapter in adapters {
        let i = adapter.get_info();
        let l = adapter.limits();
        let f = adapter.features();
        println!("{} ({:?}, {:?})", i.name, i.backend, i.device_type);
        println!("  driver: {} {}", i.driver, i.driver_info);
        println!(
            "  largest storage binding: {} bytes",
            l.max_storage_buffer_binding_size
        );
        println!("  largest buffer: {} bytes", l.max_buffer_size);
        println!(
            "  storage buffers per stage: {}",
            l.max_storage_buffers_per_shader_stage
        );
        println!(
            "  workgroups per dimension: {}",
            l.max_compute_workgroups_per_dimension
        );
        println!(
            "  workgroup size x / invocations: {} / {}",
            l.max_compute_workgroup_size_x, l.max_compute_invocations_per_workgroup
        );
        let yes = |flag| if f.contains(flag) { "yes" } else { "no" };
        println!(
            "  subgroups: {}   f16: {}   timestamps: {}",
            yes(wgpu::Features::SUBGROUP),
            yes(wgpu::Features::SHADER_F16),
            yes(wgpu::Features::TIMESTAMP_QUERY)
        );
    }
    Ok(())
}

// ---------------------------------------------------------------- bench

fn bench(args: &BenchArgs) -> Result<(), Failure> {
    select_backend(args.backend);
    let cases = match &args.cases {
        None => xent::bench::reference_cases(),
        Some(list) => list
            .split(',')
            .map(|c| {
                c.split('x')
                    .map(|d| {
                        d.trim()
                            .parse::<usize>()
                            .map_err(|_| usage(format!("bad shape {c:?}: expected e.g. 4096x4096")))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(|dims| xent::bench::BenchCase::new(&dims))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let ctx = xent::Context::from_env()?;
    let mut results = Vec::new();
    if !args.json {
        println!("adapter: {}", ctx.adapter_summary());
        println!(
            "{:>16} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9} {:>8}",
            "shape", "fused ms", "clock", "GB/s", "copy GB/s", "of copy", "CPU ms", "record"
        );
    }
    for case in &cases {
        let r = xent::bench::run_case(&ctx, case, args.iters, !args.no_cpu)?;
        if !args.json {
            println!(
                "{:>16} {:>9.2} {:>9} {:>9.2} {:>9.2} {:>7.0}% {:>9} {:>6.1}us",
                r.name,
                r.kernel_ms(),
                if r.gpu_ms.is_some() { "gpu" } else { "wall" },
                r.gbps(),
                r.copy_gbps(),
                r.copy_ratio() * 100.0,
                r.cpu_ms.map_or("-".to_string(), |c| format!("{c:.1}")),
                r.record_us
            );
        }
        results.push(r);
    }
    if args.json {
        let body: Vec<String> = results.iter().map(|r| r.to_json()).collect();
        println!(
            "{{\"adapter\":\"{}\",\"results\":[{}]}}",
            ctx.adapter_summary()
                .replace('\\', "\\\\")
                .replace('"', "\\\""),
            body.join(",")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gpu_cpu_disagreement_exits_1_and_bad_input_2() {
        let mismatch = xent::Error::Mismatch {
            what: "loss",
            index: 0,
            gpu: 1.0,
            cpu: 2.0,
            abs: 1e-5,
            rel: 1e-4,
        };
        assert_eq!(Failure::from(mismatch).code, 1);
        let bad = xent::Error::WeightsLength {
            classes: 5,
            actual: 4,
        };
        assert_eq!(Failure::from(bad).code, 2);
    }
}
