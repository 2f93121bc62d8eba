//! The `xent` command.
//!
//! * `xent` / `xent demo` — the main job on embedded data: the worked example,
//!   a segmentation map, a long vocabulary row and a multi-label batch
//!   (bce-with-logits with a pos_weight), each GPU result held
//!   against the CPU;
//! * `xent loss` — loss and gradient of NumPy `.npy` inputs: softmax
//!   cross-entropy (the default) or, with `--loss`, an elementwise loss
//!   (bce-with-logits, bce, mse, l1, smooth-l1, huber);
//! * `xent linear-loss` — the fused linear cross-entropy of `.npy` hidden
//!   states, weight, bias and class ids;
//! * `xent info` — the adapters found, with the limits and features that matter;
//! * `xent bench` — timings of the fused kernel against a copy and the CPU.
//!
//! Exit status: 0 success; 1 the GPU result disagrees with the CPU; 2 bad
//! usage or bad input, with one `error: …` line on stderr.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand, ValueEnum};

/// `println!` that ignores a closed stdout (`xent info | head -1`) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

// The crate root is src/bin/xent.rs, so its modules would be looked for in
// src/bin/, where Cargo takes every file for a binary of its own.
#[path = "xent/bench.rs"]
mod bench;
#[path = "xent/compute.rs"]
mod compute;
#[path = "xent/cross_entropy.rs"]
mod cross_entropy;
#[path = "xent/demo.rs"]
mod demo;
#[path = "xent/elementwise.rs"]
mod elementwise;
#[path = "xent/info.rs"]
mod info;
#[path = "xent/inputs.rs"]
mod inputs;
#[path = "xent/kernel.rs"]
mod kernel;
#[path = "xent/linear.rs"]
mod linear;
#[path = "xent/loss.rs"]
mod loss;
#[path = "xent/npy.rs"]
mod npy;
#[path = "xent/outputs.rs"]
mod outputs;
#[path = "xent/precision.rs"]
mod precision;
#[path = "xent/report.rs"]
mod report;

#[derive(Parser)]
#[command(
    name = "xent",
    version,
    about = "Softmax cross-entropy, binary and regression losses and their gradients on the GPU, \
             checked against the CPU",
    after_help = "Without a command, runs `xent demo`.\n\
                  Exit status: 0 success, 1 GPU and CPU disagree, 2 bad usage or bad input."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// The main job on embedded data: the worked example, a segmentation map, a long vocabulary,
    /// a multi-label batch (the default).
    Demo,
    /// Loss and gradient of .npy inputs: cross-entropy, or --loss bce-with-logits|bce|mse|l1|smooth-l1|huber.
    Loss(loss::LossArgs),
    /// The fused linear cross-entropy of .npy hidden states, weight, bias and class ids: the loss
    /// and the gradients of hidden, weight and bias, without storing the logits whole.
    LinearLoss(linear::LinearArgs),
    /// The adapters found, with the limits and features that matter to xent.
    Info,
    /// Benchmarks of the fused kernel against a copy over the same bytes and the CPU path.
    Bench(bench::BenchArgs),
}

/// `--backend`: which wgpu backend to ask for, or the CPU path alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    /// WGPU_BACKEND as set, else the library's default order.
    Auto,
    Vulkan,
    Gl,
    Metal,
    Dx12,
    /// The f64 CPU path only; no adapter needed.
    Cpu,
}

/// A failure with its exit status: 1 for a GPU/CPU disagreement, 2 for bad
/// usage or bad input (and every other error the library reports).
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

/// A bad-usage or bad-input failure (exit status 2).
fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: 2,
        message: message.into(),
    }
}

/// While set, the panic hook stays silent: a panic inside a dependency that
/// the caller catches and turns into an error (see `npy::read`).
static QUIET_PANICS: AtomicBool = AtomicBool::new(false);

fn main() -> ExitCode {
    // A panic (a bug, here or in a dependency) is one `error:` line, never a backtrace.
    std::panic::set_hook(Box::new(|info| {
        if QUIET_PANICS.load(Ordering::Relaxed) {
            return;
        }
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "error: internal error (please report): {}{at}",
            payload.replace('\n', " ")
        );
    }));

    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Demo);
    // Before anything creates an instance, and while this is the only thread.
    quiet_device_select();
    match &command {
        Command::Loss(args) => select_backend(args.backend),
        Command::Bench(args) => select_backend(args.backend),
        Command::LinearLoss(args) => select_backend(args.backend),
        Command::Demo | Command::Info => {}
    }
    let result = match command {
        Command::Demo => demo::run(),
        Command::Loss(args) => loss::run(&args),
        Command::LinearLoss(args) => linear::run(&args),
        Command::Info => info::run(),
        Command::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message.replace('\n', " "));
            ExitCode::from(f.code)
        }
    }
}

/// On a headless machine (no XDG_RUNTIME_DIR), Mesa's implicit Vulkan
/// device-select layer prints `error: XDG_RUNTIME_DIR is invalid…` while it
/// looks for a display it cannot have, which would read as xent's own error
/// line. It only reorders devices for a display, so it is switched off there.
fn quiet_device_select() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none()
        && std::env::var_os("NODEVICE_SELECT").is_none()
    {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}

/// Points wgpu at the backend asked for, through `WGPU_BACKEND`, which
/// `xent::Context::from_env` reads. Called at the start of `main`, before any
/// thread exists.
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
            magnitude: 2.0,
            abs: 1e-38,
            rel: 1e-4,
        };
        assert_eq!(Failure::from(mismatch).code, 1);
        let bad = xent::Error::WeightsLength {
            classes: 5,
            actual: 4,
        };
        assert_eq!(Failure::from(bad).code, 2);
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
