//! `xent` / `xent demo`: the main job on embedded data, on the default
//! adapter, every GPU result held against the f64 CPU path.

use std::time::Instant;

use xent::{cpu, CrossEntropyOptions, ElementwiseLoss, ElementwiseOptions, LossWeights, Tolerance};

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
    loss: Loss,
}

/// What a case computes of its logits.
enum Loss {
    /// Cross-entropy against class ids.
    CrossEntropy {
        targets: Vec<i64>,
        opts: CrossEntropyOptions,
    },
    /// An elementwise loss against targets of the logits' shape.
    Elementwise {
        targets: Vec<f32>,
        pos_weight: Option<Vec<f32>>,
        opts: ElementwiseOptions,
    },
}

/// A case's GPU result held against the CPU.
struct Row {
    loss: f32,
    grad: Vec<f32>,
    loss_diff: f64,
    grad_diff: f64,
    gpu_ms: f64,
    verdict: Result<(), xent::Error>,
}

impl Case {
    /// Runs the case on the GPU and on the CPU.
    fn run(&self, ctx: &xent::Context, tol: &Tolerance) -> Result<Row, Failure> {
        let (x, dims) = (&self.logits[..], &self.dims[..]);
        match &self.loss {
            Loss::CrossEntropy { targets, opts } => {
                let (gpu, gpu_ms) =
                    timed(|| ctx.cross_entropy(x, dims, targets, None, opts, &Default::default()))?;
                let want = cpu::cross_entropy(x, dims, targets, None, opts)?;
                let verdict = tol.compare_cross_entropy(&gpu, &want, tol);
                Ok(Row::new(
                    &gpu.loss, gpu.grad, &want.loss, want.grad, gpu_ms, verdict,
                ))
            }
            Loss::Elementwise {
                targets,
                pos_weight,
                opts,
            } => {
                let weights = LossWeights {
                    pos_weight: pos_weight.as_deref(),
                    ..Default::default()
                };
                let (gpu, gpu_ms) = timed(|| {
                    ctx.elementwise_loss(x, targets, dims, weights, opts, &Default::default())
                })?;
                let want = cpu::elementwise_loss(x, targets, dims, weights, opts)?;
                let verdict = tol.compare_elementwise(&gpu, &want, tol);
                Ok(Row::new(
                    &gpu.loss, gpu.grad, &want.loss, want.grad, gpu_ms, verdict,
                ))
            }
        }
    }
}

impl Row {
    fn new(
        loss: &[f32],
        grad: Option<Vec<f32>>,
        want: &[f64],
        want_grad: Option<Vec<f64>>,
        gpu_ms: f64,
        verdict: Result<(), xent::Error>,
    ) -> Self {
        let grad = grad.unwrap_or_default();
        Row {
            loss: loss.first().copied().unwrap_or(f32::NAN),
            loss_diff: xent::max_abs_diff(loss, want),
            grad_diff: xent::max_abs_diff(&grad, want_grad.as_deref().unwrap_or_default()),
            grad,
            gpu_ms,
            verdict,
        }
    }
}

/// An untimed first call (pipelines, scratch buffers, the driver's shader
/// compile), then the call timed, so the time is of the call alone; the
/// second call's result with its milliseconds.
fn timed<T>(call: impl Fn() -> Result<T, xent::Error>) -> Result<(T, f64), Failure> {
    call()?;
    let start = Instant::now();
    let out = call()?;
    Ok((out, start.elapsed().as_secs_f64() * 1e3))
}

pub fn run() -> Result<(), Failure> {
    let ctx = xent::Context::from_env()?;
    let tol = Tolerance::default();
    say!("adapter: {}", ctx.adapter_summary());

    let cases = [
        worked_example(),
        segmentation_map(),
        vocabulary(),
        multi_label(),
    ];

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
        let row = case.run(&ctx, &tol)?;
        let shape: Vec<String> = case.dims.iter().map(ToString::to_string).collect();
        say!(
            "{:<26} {:<11} {:>8.4} {:>15.2e} {:>15.2e} {:>8.2}  {}",
            case.name,
            shape.join("x"),
            row.loss,
            row.loss_diff,
            row.grad_diff,
            row.gpu_ms,
            if row.verdict.is_ok() {
                "ok"
            } else {
                "MISMATCH"
            }
        );
        if let Err(e) = row.verdict {
            failures.push(format!("{}: {e}", case.name));
        }
        if worked.is_none() {
            worked = Some((row.loss, row.grad));
        }
    }

    say!("(GPU ms: wall time of the host call, upload to read-back, after one untimed call)");
    if let Some((loss, grad)) = worked {
        print_worked(loss, &grad);
    }

    if failures.is_empty() {
        say!(
            "all {} GPU results agree with the CPU (|gpu - cpu| <= {:e} x max(|gpu|, |cpu|, M) + {:e} + F x 2^-126, \
             M the magnitude of the CPU value's terms, F its flush factor)",
            cases.len(),
            tol.rel,
            tol.abs
        );
        Ok(())
    } else {
        Err(Failure {
            code: 1,
            message: failures.join("; "),
        })
    }
}

/// The worked example's loss and gradient, row by row, to hold against PyTorch's.
fn print_worked(loss: f32, grad: &[f32]) {
    say!("\nworked example: mean loss {loss:.4} (PyTorch: 3.7925); d loss / d logits:");
    for row in grad.chunks(5) {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:+.4}")).collect();
        say!("  [{}]", cells.join(", "));
    }
}

/// (a) The worked example: logits (3, 5), targets [1, 3, 2].
fn worked_example() -> Case {
    Case {
        name: "worked example",
        dims: vec![3, 5],
        logits: WORKED_LOGITS.to_vec(),
        loss: Loss::CrossEntropy {
            targets: WORKED_TARGETS.to_vec(),
            opts: CrossEntropyOptions::default(),
        },
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
        loss: Loss::CrossEntropy {
            targets,
            opts: CrossEntropyOptions {
                ignore_index: IGNORE,
                ..Default::default()
            },
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
        loss: Loss::CrossEntropy {
            targets,
            opts: CrossEntropyOptions::default(),
        },
    }
}

/// (d) Multi-label classification: 3 samples x 4 labels, binary
/// cross-entropy of the logits with a pos_weight that counts the positives
/// of the rarer labels more (`binary_cross_entropy_with_logits`, mean).
fn multi_label() -> Case {
    Case {
        name: "multi-label (pos_weight)",
        dims: vec![3, 4],
        logits: vec![
            2.5, -1.0, 0.3, -3.0, //
            -0.5, 1.5, -2.0, 0.8, //
            1.2, 0.1, 3.0, -1.5,
        ],
        loss: Loss::Elementwise {
            targets: vec![
                1.0, 0.0, 1.0, 0.0, //
                0.0, 1.0, 0.0, 1.0, //
                1.0, 0.0, 1.0, 0.0,
            ],
            pos_weight: Some(vec![1.0, 2.0, 1.5, 3.0]),
            opts: ElementwiseOptions::new(ElementwiseLoss::BceWithLogits),
        },
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
