//! `xent` / `xent demo`: the main job on embedded data, on the default
//! adapter, every GPU result held against the f64 CPU path.

use std::time::Instant;

use xent::{cpu, CrossEntropyOptions, Tolerance};

use crate::Failure;

/// The worked example: PyTorch's `F.cross_entropy` gives mean loss 3.7925.
const WORKED_LOGITS: [f32; 15] = [
    10.0, 2.0, 1.0, -2.0, -3.0, //
    -1.0, -6.0, 0.0, -3.0, -5.0, //
    -5.0, 4.0, 8.0, 2.0, 1.0,
];
const WORKED_TARGETS: [i64; 3] = [1, 3, 2];

/// One case of the demo.
struct Case {
    name: &'static str,
    dims: Vec<usize>,
    logits: Vec<f32>,
    targets: Vec<i64>,
    opts: CrossEntropyOptions,
}

pub fn run() -> Result<(), Failure> {
    let ctx = xent::Context::from_env()?;
    let tol = Tolerance::default();
    say!("adapter: {}", ctx.adapter_summary());

    let cases = [worked_example(), segmentation_map(), vocabulary()];

    say!(
        "{:<26} {:<11} {:>8} {:>15} {:>15} {:>8}  check",
        "case",
        "shape",
        "loss",
        "loss |gpu-cpu|",
        "grad |gpu-cpu|",
        "GPU ms"
    );
    let mut failures = Vec::new();
    let mut worked: Option<(f32, Vec<f32>)> = None;
    for case in &cases {
        // An untimed first call per shape (pipelines, scratch buffers, the
        // driver's shader compile), so the time is of the call alone.
        ctx.cross_entropy(&case.logits, &case.dims, &case.targets, None, &case.opts)?;
        let start = Instant::now();
        let gpu = ctx.cross_entropy(&case.logits, &case.dims, &case.targets, None, &case.opts)?;
        let gpu_ms = start.elapsed().as_secs_f64() * 1e3;
        let want = cpu::cross_entropy(&case.logits, &case.dims, &case.targets, None, &case.opts)?;
        let loss = gpu.loss.first().copied().unwrap_or(f32::NAN);
        let grad = gpu.grad.clone().unwrap_or_default();
        let want_grad = want.grad.as_deref().unwrap_or_default();
        let verdict = tol.compare_cross_entropy(&gpu, &want, &tol);
        let shape: Vec<String> = case.dims.iter().map(ToString::to_string).collect();
        say!(
            "{:<26} {:<11} {:>8.4} {:>15.2e} {:>15.2e} {:>8.2}  {}",
            case.name,
            shape.join("x"),
            loss,
            xent::max_abs_diff(&gpu.loss, &want.loss),
            xent::max_abs_diff(&grad, want_grad),
            gpu_ms,
            if verdict.is_ok() { "ok" } else { "MISMATCH" }
        );
        if let Err(e) = verdict {
            failures.push(format!("{}: {e}", case.name));
        }
        if worked.is_none() {
            worked = Some((loss, grad));
        }
    }

    say!("(GPU ms: wall time of the host call, upload to read-back, after one untimed call)");
    if let Some((loss, grad)) = worked {
        say!("\nworked example: mean loss {loss:.4} (PyTorch: 3.7925); d loss / d logits:");
        for row in grad.chunks(5) {
            let cells: Vec<String> = row.iter().map(|v| format!("{v:+.4}")).collect();
            say!("  [{}]", cells.join(", "));
        }
    }

    if failures.is_empty() {
        say!(
            "all {} GPU results agree with the CPU (|gpu - cpu| <= {:e} or <= {:e} x max(|gpu|, |cpu|))",
            cases.len(),
            tol.abs,
            tol.rel
        );
        Ok(())
    } else {
        Err(Failure {
            code: 1,
            message: failures.join("; "),
        })
    }
}

/// (a) The worked example: logits (3, 5), targets [1, 3, 2].
fn worked_example() -> Case {
    Case {
        name: "worked example",
        dims: vec![3, 5],
        logits: WORKED_LOGITS.to_vec(),
        targets: WORKED_TARGETS.to_vec(),
        opts: CrossEntropyOptions::default(),
    }
}

/// (b) A segmentation map: 2 x 21 x 64 x 64 logits, channel-first, 2 x 64 x 64
/// targets with the ignore label 255 on a 2-pixel border and on about 3% of
/// the other pixels. The logits favour each pixel's class, as a partly
/// trained network's would.
fn segmentation_map() -> Case {
    const IGNORE: i64 = 255;
    let (n, classes, h, w) = (2, 21, 64, 64);
    let mut rng = SplitMix64(0x5e9_0001);
    let targets: Vec<i64> = (0..n * h * w)
        .map(|i| {
            let (y, x) = ((i / w) % h, i % w);
            let border = y < 2 || x < 2 || y >= h - 2 || x >= w - 2;
            if border || rng.below(100) < 3 {
                IGNORE
            } else {
                rng.below(classes as u64) as i64
            }
        })
        .collect();
    let mut logits = vec![0.0f32; n * classes * h * w];
    for b in 0..n {
        for c in 0..classes {
            for p in 0..h * w {
                let boost = if targets[b * h * w + p] == c as i64 {
                    3.0
                } else {
                    0.0
                };
                logits[(b * classes + c) * h * w + p] = rng.uniform(-4.0, 4.0) + boost;
            }
        }
    }
    Case {
        name: "segmentation (ignore 255)",
        dims: vec![n, classes, h, w],
        logits,
        targets,
        opts: CrossEntropyOptions {
            ignore_index: IGNORE,
            ..Default::default()
        },
    }
}

/// (c) A long vocabulary row: 8 x 50257 logits (GPT-2's vocabulary).
fn vocabulary() -> Case {
    let (rows, vocab) = (8, 50_257);
    let mut rng = SplitMix64(0x0c4b_0002);
    let logits = (0..rows * vocab).map(|_| rng.uniform(-8.0, 8.0)).collect();
    let targets = (0..rows).map(|_| rng.below(vocab as u64) as i64).collect();
    Case {
        name: "vocabulary (GPT-2 size)",
        dims: vec![rows, vocab],
        logits,
        targets,
        opts: CrossEntropyOptions::default(),
    }
}

/// splitmix64: a small fixed-seed generator, so the demo's data are the same on every run.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi), from the top 24 bits.
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * unit
    }

    /// Uniform in [0, n) (modulo bias is immaterial here).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
