//! Vocabulary-parallel fused linear cross-entropy over MPI: each rank holds
//! its own xent context (the default adapter) and its own rows of the
//! classifier `W` and `b` (and of the class weights); the ranks exchange
//! only each row's 52-byte record, by one all-gather.
//!
//! ```text
//! cargo build --release --features mpi --example vocab_parallel_mpi
//! mpirun -n 2 target/release/examples/vocab_parallel_mpi
//! ```
//!
//! Per rank: `record_linear_vocab_partial` (its logits a window at a time,
//! never whole, into its records) → all-gather of the records → upload →
//! `record_vocab_merge` (shard order: the same bits on every rank) →
//! `record_linear_vocab_finish` (its rows of ∂L/∂W and ∂L/∂b, its part of
//! ∂L/∂h, the whole loss). Then rank 0 gathers the gradients (∂L/∂h summed
//! in rank order), runs the unsharded call on its own device, prints the
//! loss and the largest differences, and exits non-zero unless the split
//! result agrees with the single-process one and with the f64 CPU twin
//! within xent's `Tolerance`.

use mpi::traits::*;
use wgpu::util::DeviceExt;
use xent::{
    ClassRange, Context, CrossEntropyOptions, LinearBuffers, LinearCrossEntropyOptions, LinearDims,
    LinearOutput, LinearPartialBuffers, Reduction, Tolerance, VOCAB_RECORD_WORDS,
};

const N: usize = 96;
const H: usize = 40;
const V: usize = 1003;

type Failure = Box<dyn std::error::Error>;

fn main() {
    let universe = mpi::initialize().expect("MPI initialises once");
    let world = universe.world();
    match run(&world) {
        Ok(true) => {}
        Ok(false) => world.abort(1),
        Err(e) => {
            eprintln!("rank {}: {e}", world.rank());
            world.abort(2)
        }
    }
}

/// The run of one rank; `Ok(false)` when rank 0 finds the result out of
/// tolerance.
fn run(world: &mpi::topology::SimpleCommunicator) -> Result<bool, Failure> {
    let (rank, ranks) = (world.rank() as usize, world.size() as usize);
    // Every rank makes the same problem; each keeps its own rows of W.
    let problem = Problem::new();
    let range = ClassRange::split(V, ranks)?[rank];
    let dims = LinearDims { n: N, h: H, v: V };
    let opts = options();
    let ctx = Context::from_env()?;
    if rank == 0 {
        println!("{ranks} ranks, adapter: {}", ctx.adapter_summary());
    }
    let shard = Shard::upload(&ctx, &problem, range);

    // 1. The partial: this rank's records.
    let mine = shard.partial(&dims, &opts)?;

    // 2. The all-gather: every rank's records, in rank (= class) order.
    let words = N * VOCAB_RECORD_WORDS;
    let mut all = vec![0u32; ranks * words];
    world.all_gather_into(&mine[..words], &mut all[..]);

    // 3. The merge and this rank's finish.
    let out = shard.merge_and_finish(&dims, &opts, &all, ranks)?;

    // 4. Rank 0 gathers the gradients: ∂L/∂h summed in rank order, the rows
    // of ∂L/∂W and ∂L/∂b put together (each rank sends its rows padded to
    // the largest shard's). The other ranks are done.
    let Some(split) = gather_gradients(world, range, &out)? else {
        return Ok(true);
    };

    // 5. The single-process run and the f64 twin, on rank 0's device.
    let (single, twin) = single_and_twin(&ctx, &problem, &dims, &opts)?;
    print_differences(&split, &single);
    Ok(verdicts(&split, &single, &twin))
}

/// The loss every rank computes its share of.
fn options() -> LinearCrossEntropyOptions {
    LinearCrossEntropyOptions {
        loss: CrossEntropyOptions {
            reduction: Reduction::Mean,
            label_smoothing: 0.1,
            z_loss: 1e-4,
            softcap: Some(30.0),
            ..Default::default()
        },
        // A small window: several chunks of rows per rank.
        scratch_budget: Some(64 << 10),
        ..Default::default()
    }
}

/// One rank's inputs on its own device: all of `h` and the targets, and its
/// rows of `W`, `b` and the class weights.
struct Shard<'a> {
    ctx: &'a Context,
    range: ClassRange,
    hidden: wgpu::Buffer,
    targets: wgpu::Buffer,
    weight: wgpu::Buffer,
    bias: wgpu::Buffer,
    class_weights: wgpu::Buffer,
}

impl<'a> Shard<'a> {
    /// Uploads this rank's share of `problem`, the classes of `range`.
    fn upload(ctx: &'a Context, problem: &Problem, range: ClassRange) -> Self {
        let (c0, c1) = (range.start, range.end);
        let floats = |contents: &[f32]| storage(ctx, bytemuck::cast_slice(contents));
        Shard {
            ctx,
            range,
            hidden: floats(&problem.hidden),
            targets: storage(ctx, bytemuck::cast_slice(&problem.targets)),
            weight: floats(&problem.weight[c0 * H..c1 * H]),
            bias: floats(&problem.bias[c0..c1]),
            class_weights: floats(&problem.class_weights[c0..c1]),
        }
    }

    /// Step 1: this rank's records, read back for the all-gather.
    fn partial(
        &self,
        dims: &LinearDims,
        opts: &LinearCrossEntropyOptions,
    ) -> Result<Vec<u32>, Failure> {
        let partial = zeros(self.ctx, N * VOCAB_RECORD_WORDS * 4);
        let mut encoder = self
            .ctx
            .device()
            .create_command_encoder(&Default::default());
        let buffers = LinearPartialBuffers {
            hidden: self.hidden.slice(..),
            weight: self.weight.slice(..),
            bias: Some(self.bias.slice(..)),
            targets: xent::TargetBuffer::ClassI32(self.targets.slice(..)),
            precision: xent::Precision::F32,
            weights: Some(self.class_weights.slice(..)),
            partial: partial.slice(..),
        };
        self.ctx
            .record_linear_vocab_partial(&mut encoder, dims, self.range, opts, &buffers)?;
        Ok(read(self.ctx, encoder, &[&partial])?.remove(0))
    }

    /// Step 3: merges every rank's records (`all`) and records this rank's
    /// finish; returns the words of the loss, the status, `lse`, the count
    /// of right, this rank's ∂L/∂h, ∂L/∂W and ∂L/∂b, and each row's
    /// predicted class and entropy, in that order.
    fn merge_and_finish(
        &self,
        dims: &LinearDims,
        opts: &LinearCrossEntropyOptions,
        all: &[u32],
        ranks: usize,
    ) -> Result<Vec<Vec<u32>>, Failure> {
        let (ctx, range) = (self.ctx, self.range);
        let gathered = storage(ctx, bytemuck::cast_slice(all));
        let merged = zeros(ctx, N * VOCAB_RECORD_WORDS * 4);
        let (loss, status, lse, correct) = (
            zeros(ctx, 4),
            zeros(ctx, 16),
            zeros(ctx, N * 4),
            zeros(ctx, 4),
        );
        let (argmax, entropy) = (zeros(ctx, N * 4), zeros(ctx, N * 4));
        let (gh, gw, gb) = (
            zeros(ctx, N * H * 4),
            zeros(ctx, range.len() * H * 4),
            zeros(ctx, range.len() * 4),
        );
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        let merge_dims = xent::MergeDims {
            rows: N,
            shards: ranks,
        };
        let merge_buffers = xent::VocabMergeBuffers {
            gathered: gathered.slice(..),
            merged: merged.slice(..),
        };
        ctx.record_vocab_merge(&mut encoder, &merge_dims, &opts.loss, &merge_buffers)?;
        let buffers = LinearBuffers {
            bias: Some(self.bias.slice(..)),
            weights: Some(self.class_weights.slice(..)),
            grad_hidden: Some(gh.slice(..)),
            grad_weight: Some(gw.slice(..)),
            grad_bias: Some(gb.slice(..)),
            lse: Some(lse.slice(..)),
            correct: Some(correct.slice(..)),
            argmax: Some(argmax.slice(..)),
            entropy: Some(entropy.slice(..)),
            ..LinearBuffers::new(
                self.hidden.slice(..),
                self.weight.slice(..),
                xent::TargetBuffer::ClassI32(self.targets.slice(..)),
                loss.slice(..),
                status.slice(..),
            )
        };
        let finish_buffers = xent::LinearFinishBuffers {
            shard: buffers,
            merged: merged.slice(..),
        };
        ctx.record_linear_vocab_finish(&mut encoder, dims, range, opts, &finish_buffers)?;
        let out = read(
            ctx,
            encoder,
            &[
                &loss, &status, &lse, &correct, &gh, &gw, &gb, &argmax, &entropy,
            ],
        )?;
        // Targets out of range, or merged records that miss a shard: typed errors.
        let layout = xent::Layout::from_dims(&[N, V])?;
        <xent::CrossEntropyStatus as xent::OpStatus>::from_bytes(bytemuck::cast_slice(&out[1]))
            .check(&layout, opts.loss.ignore_index)?;
        Ok(out)
    }
}

/// Step 4: the split result on rank 0, from the words of
/// [`Shard::merge_and_finish`]: every rank's gradients gathered, and rank 0's
/// loss, `lse`, count of right, predicted classes and entropies (the same
/// on every rank); `None` on the other ranks.
fn gather_gradients(
    world: &mpi::topology::SimpleCommunicator,
    range: ClassRange,
    out: &[Vec<u32>],
) -> Result<Option<LinearOutput<f32>>, Failure> {
    let (rank, ranks) = (world.rank() as usize, world.size() as usize);
    // Each rank sends its rows of ∂L/∂W and ∂L/∂b padded to the largest
    // shard's.
    let most = V.div_ceil(ranks);
    let gather = |mine: &[u32], per: usize| -> Vec<u32> {
        let mut send = mine.to_vec();
        send.resize(per, 0);
        let root = world.process_at_rank(0);
        if rank == 0 {
            let mut all = vec![0u32; per * ranks];
            root.gather_into_root(&send[..], &mut all[..]);
            all
        } else {
            root.gather_into(&send[..]);
            Vec::new()
        }
    };
    let gh_all = gather(&out[4][..N * H], N * H);
    let gw_all = gather(&out[5][..range.len() * H], most * H);
    let gb_all = gather(&out[6][..range.len()], most);
    if rank != 0 {
        return Ok(None);
    }
    let f32s = |w: &[u32]| -> Vec<f32> { w.iter().map(|&b| f32::from_bits(b)).collect() };
    let mut grad_hidden = vec![0.0f32; N * H];
    let (mut grad_weight, mut grad_bias) = (Vec::new(), Vec::new());
    for (k, r) in ClassRange::split(V, ranks)?.iter().enumerate() {
        for (a, b) in grad_hidden
            .iter_mut()
            .zip(f32s(&gh_all[k * N * H..(k + 1) * N * H]))
        {
            *a += b;
        }
        grad_weight.extend(f32s(&gw_all[k * most * H..k * most * H + r.len() * H]));
        grad_bias.extend(f32s(&gb_all[k * most..k * most + r.len()]));
    }
    Ok(Some(LinearOutput {
        loss: f32s(&out[0][..1]),
        grad_hidden: Some(grad_hidden),
        grad_weight: Some(grad_weight),
        grad_bias: Some(grad_bias),
        lse: Some(f32s(&out[2][..N])),
        correct: Some(u64::from(out[3][0])),
        argmax: Some(out[7][..N].iter().map(|&c| i64::from(c as i32)).collect()),
        entropy: Some(f32s(&out[8][..N])),
        magnitude: None,
    }))
}

/// The unsharded call on this rank's device, and the f64 CPU twin.
fn single_and_twin(
    ctx: &Context,
    problem: &Problem,
    dims: &LinearDims,
    opts: &LinearCrossEntropyOptions,
) -> Result<(LinearOutput<f32>, LinearOutput<f64>), Failure> {
    let single = ctx.linear_cross_entropy(
        &problem.hidden,
        &problem.weight,
        Some(&problem.bias),
        &problem.targets64(),
        Some(&problem.class_weights),
        dims,
        opts,
        &xent::Returns::ROWS,
    )?;
    let twin = xent::cpu::linear_cross_entropy(
        &problem.hidden,
        &problem.weight,
        Some(&problem.bias[..]),
        &problem.targets64(),
        Some(&problem.class_weights[..]),
        dims,
        opts,
    )?;
    Ok((single, twin))
}

/// Prints the loss of both runs and their largest differences.
fn print_differences(split: &LinearOutput<f32>, single: &LinearOutput<f32>) {
    let diff = |a: &Option<Vec<f32>>, b: &Option<Vec<f32>>| {
        let (a, b) = (
            a.as_deref().unwrap_or_default(),
            b.as_deref().unwrap_or_default(),
        );
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    };
    println!(
        "loss {} (single process {}), correct {:?}",
        split.loss[0], single.loss[0], split.correct
    );
    println!(
        "largest |split - single|: loss {:.3e}, grad hidden {:.3e}, grad weight {:.3e}, grad bias {:.3e}",
        (split.loss[0] - single.loss[0]).abs(),
        diff(&split.grad_hidden, &single.grad_hidden),
        diff(&split.grad_weight, &single.grad_weight),
        diff(&split.grad_bias, &single.grad_bias),
    );
}

/// Prints whether each pair agrees; `false` unless all three do.
fn verdicts(
    split: &LinearOutput<f32>,
    single: &LinearOutput<f32>,
    twin: &LinearOutput<f64>,
) -> bool {
    // The single-process result as the reference, with the twin's
    // magnitudes: the split one held to it by the tolerance every GPU
    // result is held to; and both to the twin.
    let widen = |v: &Option<Vec<f32>>| {
        v.as_ref()
            .map(|v| v.iter().map(|&x| f64::from(x)).collect())
    };
    let reference = LinearOutput {
        loss: single.loss.iter().map(|&x| f64::from(x)).collect(),
        grad_hidden: widen(&single.grad_hidden),
        grad_weight: widen(&single.grad_weight),
        grad_bias: widen(&single.grad_bias),
        lse: widen(&single.lse),
        correct: single.correct,
        argmax: single.argmax.clone(),
        entropy: widen(&single.entropy),
        magnitude: twin.magnitude.clone(),
    };
    let tol = Tolerance::default();
    let verdicts = [
        (
            "split vs single process",
            tol.compare_linear(split, &reference),
        ),
        ("split vs the f64 twin", tol.compare_linear(split, twin)),
        (
            "single process vs the f64 twin",
            tol.compare_linear(single, twin),
        ),
    ];
    let mut ok = true;
    for (what, verdict) in verdicts {
        match verdict {
            Ok(()) => println!("{what}: agree"),
            Err(e) => {
                println!("{what}: DISAGREE: {e}");
                ok = false;
            }
        }
    }
    ok
}

/// The problem every rank makes the same: a fixed generator, no dependency.
struct Problem {
    hidden: Vec<f32>,
    weight: Vec<f32>,
    bias: Vec<f32>,
    class_weights: Vec<f32>,
    targets: Vec<i32>,
}

impl Problem {
    fn new() -> Self {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut uniform = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        let hidden = (0..N * H).map(|_| uniform()).collect();
        let weight = (0..V * H).map(|_| 0.5 * uniform()).collect();
        let bias = (0..V).map(|_| 0.1 * uniform()).collect();
        let class_weights = (0..V).map(|_| 1.0 + 0.5 * uniform()).collect();
        // Every eighth row is padding (ignored).
        let targets = (0..N)
            .map(|i| {
                if i % 8 == 7 {
                    -100
                } else {
                    ((uniform() + 1.0) * 0.5 * V as f32) as i32 % V as i32
                }
            })
            .collect();
        Problem {
            hidden,
            weight,
            bias,
            class_weights,
            targets,
        }
    }

    fn targets64(&self) -> Vec<i64> {
        self.targets.iter().map(|&t| i64::from(t)).collect()
    }
}

/// A storage buffer holding `contents` (one zero word where they are empty:
/// a shard may have no classes).
fn storage(ctx: &Context, contents: &[u8]) -> wgpu::Buffer {
    ctx.device()
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: if contents.is_empty() {
                &[0; 4]
            } else {
                contents
            },
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        })
}

/// A storage buffer of `bytes` zero bytes (at least 4).
fn zeros(ctx: &Context, bytes: usize) -> wgpu::Buffer {
    storage(ctx, &vec![0u8; bytes.max(4)])
}

/// Submits `encoder` with copies of `buffers` into staging buffers and
/// returns their words.
fn read(
    ctx: &Context,
    mut encoder: wgpu::CommandEncoder,
    buffers: &[&wgpu::Buffer],
) -> Result<Vec<Vec<u32>>, Failure> {
    let dev = ctx.device();
    let staging: Vec<wgpu::Buffer> = buffers
        .iter()
        .map(|b| {
            let s = dev.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: b.size(),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            encoder.copy_buffer_to_buffer(b, 0, &s, 0, b.size());
            s
        })
        .collect();
    ctx.queue().submit([encoder.finish()]);
    for s in &staging {
        s.slice(..).map_async(wgpu::MapMode::Read, |_| {});
    }
    dev.poll(wgpu::PollType::wait_indefinitely())?;
    staging
        .iter()
        .map(|s| Ok(bytemuck::cast_slice(&s.slice(..).get_mapped_range()?).to_vec()))
        .collect()
}
