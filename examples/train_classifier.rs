//! A softmax classifier trained with the fused linear cross-entropy: the
//! logits `h·Wᵀ + b` of 4 096 points over 64 classes are never stored; each
//! step records xent's fused loss and gradients and an SGD update (a few
//! lines of WGSL below) into one encoder, and nothing is read back but the
//! loss every 25 steps.
//!
//! The data: 64 class centres in 32 dimensions, each point a centre plus
//! noise. A linear classifier separates them; the run exits non-zero unless
//! the loss falls below a tenth of its start and 95 % of the points are
//! classified right.
//!
//! `cargo run --release --example train_classifier`

use wgpu::util::DeviceExt;
use xent::{Context, LinearBuffers, LinearCrossEntropyOptions, LinearDims};

const N: usize = 4096;
const H: usize = 32;
const V: usize = 64;
const STEPS: usize = 150;
const LEARNING_RATE: f32 = 2.0;

/// `p -= lr · g` over `len` floats.
const SGD_WGSL: &str = r#"
struct Step { lr: f32, len: u32 }
@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@compute @workgroup_size(64)
fn sgd(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < step.len) {
        param[id.x] -= step.lr * grad[id.x];
    }
}
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ctx = Context::from_env()?;
    println!("adapter: {}", ctx.adapter_summary());

    let (hidden, targets) = points();
    let model = Model::new(ctx.device(), &hidden, &targets);
    let sgd = Sgd::new(ctx.device(), &model);
    let dims = LinearDims { n: N, h: H, v: V };
    let opts = LinearCrossEntropyOptions {
        // A 256 KiB budget: the logits go through a window of a few hundred rows.
        scratch_budget: Some(256 << 10),
        ..Default::default()
    };
    let (first, last, right) = train(&ctx, &model, &sgd, &dims, &opts)?;
    // The targets never change: the last step's range check speaks for all.
    ctx.read_status::<xent::CrossEntropyStatus>(model.status.slice(..))?
        .check(&xent::Layout::from_dims(&[N, V])?, -100)?;
    report(&ctx, &dims, &opts, first, last, right)
}

/// The data: `N` points in `H` dimensions (`h`, `(N, H)`), each its class's
/// centre plus noise, and their classes.
fn points() -> (Vec<f32>, Vec<i32>) {
    // Points around 64 centres (a fixed generator, no dependency).
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let centres: Vec<f32> = (0..V * H).map(|_| uniform()).collect();
    let targets: Vec<i32> = (0..N).map(|i| (i % V) as i32).collect();
    let hidden: Vec<f32> = (0..N * H)
        .map(|i| centres[targets[i / H] as usize * H + i % H] + 0.3 * uniform())
        .collect();
    (hidden, targets)
}

/// The classifier's buffers: the data, `W` and `b` (from zero) and their
/// gradients, and what xent writes besides.
struct Model {
    hidden: wgpu::Buffer,
    targets: wgpu::Buffer,
    weight: wgpu::Buffer,
    bias: wgpu::Buffer,
    grad_weight: wgpu::Buffer,
    grad_bias: wgpu::Buffer,
    loss: wgpu::Buffer,
    status: wgpu::Buffer,
    correct: wgpu::Buffer,
}

impl Model {
    /// Uploads the data; everything else starts at zero.
    fn new(dev: &wgpu::Device, hidden: &[f32], targets: &[i32]) -> Self {
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
        let init = |label, contents: &[u8]| {
            dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage,
            })
        };
        let zeros = |label, floats: usize| init(label, &vec![0u8; floats * 4]);
        Model {
            hidden: init("hidden", bytemuck::cast_slice(hidden)),
            targets: init("targets", bytemuck::cast_slice(targets)),
            weight: zeros("weight", V * H),
            bias: zeros("bias", V),
            grad_weight: zeros("grad weight", V * H),
            grad_bias: zeros("grad bias", V),
            loss: zeros("loss", 1),
            status: zeros("status", 4),
            correct: zeros("correct", 1),
        }
    }

    /// The buffers as xent's fused call binds them: `h`, `W`, `b` and the
    /// targets in; the loss, ∂L/∂W, ∂L/∂b and the count of right out.
    fn linear_buffers(&self) -> LinearBuffers<'_> {
        LinearBuffers {
            bias: Some(self.bias.slice(..)),
            grad_weight: Some(self.grad_weight.slice(..)),
            grad_bias: Some(self.grad_bias.slice(..)),
            correct: Some(self.correct.slice(..)),
            ..LinearBuffers::new(
                self.hidden.slice(..),
                self.weight.slice(..),
                xent::TargetBuffer::ClassI32(self.targets.slice(..)),
                self.loss.slice(..),
                self.status.slice(..),
            )
        }
    }
}

/// The SGD kernel and its two bindings: `W` with ∂L/∂W, `b` with ∂L/∂b.
struct Sgd {
    pipeline: wgpu::ComputePipeline,
    updates: [(wgpu::BindGroup, u32); 2],
}

impl Sgd {
    /// Compiles `SGD_WGSL` and binds it twice, with a uniform of the learning
    /// rate and the length each.
    fn new(dev: &wgpu::Device, model: &Model) -> Self {
        let module = dev.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("sgd"),
            source: wgpu::ShaderSource::Wgsl(SGD_WGSL.into()),
        });
        let pipeline = dev.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("sgd"),
            layout: None,
            module: &module,
            entry_point: Some("sgd"),
            compilation_options: Default::default(),
            cache: None,
        });
        let update = |param: &wgpu::Buffer, grad: &wgpu::Buffer, len: usize| {
            let step: [u32; 2] = [LEARNING_RATE.to_bits(), len as u32];
            let uniform = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("sgd step"),
                contents: bytemuck::cast_slice(&step),
                usage: wgpu::BufferUsages::UNIFORM,
            });
            let group = dev.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &pipeline.get_bind_group_layout(0),
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: uniform.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: param.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: grad.as_entire_binding(),
                    },
                ],
            });
            (group, len.div_ceil(64) as u32)
        };
        let updates = [
            update(&model.weight, &model.grad_weight, V * H),
            update(&model.bias, &model.grad_bias, V),
        ];
        Sgd { pipeline, updates }
    }

    /// Records `p -= lr · g` for `W` and `b`, one pass.
    fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&self.pipeline);
        for (group, workgroups) in &self.updates {
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(*workgroups, 1, 1);
        }
    }
}

/// `STEPS` steps, each one encoder, then one that only measures; prints the
/// loss and the count of right every 25 steps and returns the first and last
/// loss and the last count.
fn train(
    ctx: &Context,
    model: &Model,
    sgd: &Sgd,
    dims: &LinearDims,
    opts: &LinearCrossEntropyOptions,
) -> Result<(f32, f32, u32), Box<dyn std::error::Error>> {
    let buffers = model.linear_buffers();
    let (mut first, mut last, mut right) = (f32::NAN, f32::NAN, 0u32);
    for step in 0..=STEPS {
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        // Loss and ∂L/∂W, ∂L/∂b of the current weights...
        ctx.record_linear_cross_entropy(&mut encoder, dims, opts, &buffers)?;
        // ...and the update, in the same encoder (the last step only measures).
        if step < STEPS {
            sgd.record(&mut encoder);
        }
        ctx.queue().submit([encoder.finish()]);
        if step % 25 == 0 {
            last = f32::from_le_bytes(read(ctx, &model.loss)?);
            right = u32::from_le_bytes(read(ctx, &model.correct)?);
            first = if step == 0 { last } else { first };
            println!("step {step:>3}: loss {last:.4}, {right} of {N} right");
        }
    }
    Ok((first, last, right))
}

/// The first 4 bytes of `buffer`, copied to a staging buffer and read back.
fn read(ctx: &Context, buffer: &wgpu::Buffer) -> Result<[u8; 4], Box<dyn std::error::Error>> {
    let dev = ctx.device();
    let staging = dev.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 4,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = dev.create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, 4);
    ctx.queue().submit([encoder.finish()]);
    staging.slice(..).map_async(wgpu::MapMode::Read, |_| {});
    dev.poll(wgpu::PollType::wait_indefinitely())?;
    let bytes: [u8; 4] = staging.slice(..).get_mapped_range()?[..4].try_into()?;
    Ok(bytes)
}

/// Prints the loss's fall, the accuracy and the window xent used; an error
/// unless the classifier learned.
fn report(
    ctx: &Context,
    dims: &LinearDims,
    opts: &LinearCrossEntropyOptions,
    first: f32,
    last: f32,
    right: u32,
) -> Result<(), Box<dyn std::error::Error>> {
    let accuracy = f64::from(right) / N as f64;
    println!(
        "loss {first:.4} -> {last:.4}, accuracy {:.1} %; the (N, V) logits ({} KB) never stored \
         whole: the window held {} rows",
        100.0 * accuracy,
        dims.logits_bytes() / 1024,
        ctx.plan_linear_cross_entropy(
            dims,
            opts,
            &xent::Returns {
                correct: true,
                ..Default::default()
            },
        )?
        .window_rows
    );
    if !(last < first / 10.0 && accuracy >= 0.95) {
        return Err("the classifier did not learn".into());
    }
    Ok(())
}
