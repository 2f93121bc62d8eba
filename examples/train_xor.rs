//! Trains the XOR network of the notes entirely on the GPU, with xent's loss
//! recorded into the same command encoder as the network's own kernels.
//!
//! Linear(2, 5) → ReLU → Linear(5, 2), cross-entropy (mean), SGD with
//! learning rate 0.1 for 1000 full-batch steps. The forward pass, the
//! backward pass and the update are this example's WGSL (`train_xor.wgsl`);
//! xent supplies the loss and ∂loss/∂logits. Nothing is read back until
//! training ends: the loss of every step is copied into a GPU-side curve.
//!
//! Run with `cargo run --release --example train_xor [-- SEED]`; it exits
//! non-zero unless the trained network classifies all four inputs.

use std::error::Error;

use wgpu::util::DeviceExt;

/// Of seeds 0..32, all but 6, 7, 11, 15 and 17 train to a loss below 0.035.
/// Those five stall: their ReLUs end up dead on some input, or live on all
/// four, where the network is linear and cannot separate XOR. Seed 0 trains
/// with margin (loss 0.0084) and also converges at learning rates 0.05 and 0.2.
const SEED: u64 = 0;
const STEPS: usize = 1000;
const LEARNING_RATE: f32 = 0.1;
/// Steps recorded per command encoder: fewer submissions, same results.
const STEPS_PER_SUBMIT: usize = 100;

const BATCH: usize = 4;
const INPUTS: usize = 2;
const HIDDEN: usize = 5;
const CLASSES: usize = 2;
const PARAMS: usize = HIDDEN * (INPUTS + 1) + CLASSES * (HIDDEN + 1);
const X: [f32; BATCH * INPUTS] = [0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0];
const TARGETS: [i32; BATCH] = [0, 1, 1, 0];
/// `@workgroup_size` of every kernel in train_xor.wgsl.
const WORKGROUP: usize = 64;
/// The logits' shape, `(BATCH, CLASSES)`, as xent takes it.
const DIMS: [usize; 2] = [BATCH, CLASSES];

/// Mirrors `Shape` in train_xor.wgsl; padded to 32 bytes, a multiple of 16,
/// as uniform buffers want on some backends.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Shape {
    batch: u32,
    inputs: u32,
    hidden: u32,
    classes: u32,
    lr: f32,
    _pad: [u32; 3],
}

fn main() -> Result<(), Box<dyn Error>> {
    let seed = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => SEED,
    };
    // One device for xent and for us: every buffer, pipeline and encoder
    // below comes from the context's device, so xent's passes and ours share
    // one queue and run in recording order. (With a device of your own, wrap
    // it with `xent::Context::new(device.clone(), queue.clone())`.)
    let ctx = xent::Context::from_env()?;
    println!("adapter: {}", ctx.adapter_summary());

    let buffers = Buffers::new(ctx.device(), seed);
    let kernels = Kernels::new(ctx.device(), &buffers);
    // PyTorch's defaults: mean reduction, no weights, no smoothing.
    let opts = xent::CrossEntropyOptions::default();
    train(&ctx, &buffers, &kernels, &opts)?;
    let [final_logits, curve] = evaluate(&ctx, &buffers, &kernels, &opts)?;
    report(seed, &final_logits, &curve)
}

/// Every buffer of the run, all on the context's device: the data, the
/// parameters and their gradients, the activations, what xent reads and
/// writes, and the loss curve.
struct Buffers {
    shape: wgpu::Buffer,
    x: wgpu::Buffer,
    targets: wgpu::Buffer,
    params: wgpu::Buffer,
    grads: wgpu::Buffer,
    hidden: wgpu::Buffer,
    logits: wgpu::Buffer,
    dlogits: wgpu::Buffer,
    loss: wgpu::Buffer,
    status: wgpu::Buffer,
    loss_curve: wgpu::Buffer,
}

impl Buffers {
    /// Uploads the inputs, the targets and the parameters of `seed`; the
    /// rest start empty, for the kernels and xent to fill.
    fn new(device: &wgpu::Device, seed: u64) -> Self {
        use wgpu::BufferUsages as U;
        let init = |label: &str, contents: &[u8], usage| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage,
            })
        };
        let empty = |label: &str, floats: usize, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: (floats * 4) as u64,
                usage,
                mapped_at_creation: false,
            })
        };
        let shape = Shape {
            batch: BATCH as u32,
            inputs: INPUTS as u32,
            hidden: HIDDEN as u32,
            classes: CLASSES as u32,
            lr: LEARNING_RATE,
            _pad: [0; 3],
        };
        Buffers {
            shape: init("xor shape", bytemuck::bytes_of(&shape), U::UNIFORM),
            x: init("xor inputs", bytemuck::cast_slice(&X), U::STORAGE),
            targets: init("xor targets", bytemuck::cast_slice(&TARGETS), U::STORAGE),
            params: init(
                "xor parameters",
                bytemuck::cast_slice(&initial_params(seed)),
                U::STORAGE,
            ),
            grads: empty("xor parameter gradients", PARAMS, U::STORAGE),
            hidden: empty("xor hidden pre-activations", BATCH * HIDDEN, U::STORAGE),
            logits: empty("xor logits", BATCH * CLASSES, U::STORAGE | U::COPY_SRC),
            dlogits: empty("xor dloss/dlogits", BATCH * CLASSES, U::STORAGE),
            loss: empty("xor loss", 1, U::STORAGE | U::COPY_SRC),
            status: empty(
                "xor xent status",
                xent::STATUS_SIZE as usize / 4,
                U::STORAGE | U::COPY_SRC,
            ),
            loss_curve: empty("xor loss curve", STEPS, U::COPY_DST | U::COPY_SRC),
        }
    }
}

/// The three kernels of train_xor.wgsl and the one bind group they share.
struct Kernels {
    bind_group: wgpu::BindGroup,
    forward: wgpu::ComputePipeline,
    backward: wgpu::ComputePipeline,
    sgd_step: wgpu::ComputePipeline,
}

impl Kernels {
    /// Compiles train_xor.wgsl and binds `buffers` to its kernels.
    fn new(device: &wgpu::Device, buffers: &Buffers) -> Self {
        let layout = shared_layout(device);
        // Bindings 0 to 6, in train_xor.wgsl's order.
        let bound = [
            &buffers.shape,
            &buffers.x,
            &buffers.params,
            &buffers.grads,
            &buffers.hidden,
            &buffers.logits,
            &buffers.dlogits,
        ];
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("xor bind group"),
            layout: &layout,
            entries: &bound
                .iter()
                .zip(0..)
                .map(|(buffer, binding)| wgpu::BindGroupEntry {
                    binding,
                    resource: buffer.as_entire_binding(),
                })
                .collect::<Vec<_>>(),
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("xor pipeline layout"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("train_xor.wgsl"),
            source: wgpu::ShaderSource::Wgsl(include_str!("train_xor.wgsl").into()),
        });
        let pipeline = |entry_point: &str| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry_point),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(entry_point),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        Kernels {
            forward: pipeline("forward"),
            backward: pipeline("backward"),
            sgd_step: pipeline("sgd_step"),
            bind_group,
        }
    }

    /// Records the forward pass: hidden pre-activations and logits.
    fn record_forward(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("xor forward"),
            timestamp_writes: None,
        });
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.set_pipeline(&self.forward);
        pass.dispatch_workgroups(BATCH.div_ceil(WORKGROUP) as u32, 1, 1);
    }

    /// Records the backward pass from xent's ∂loss/∂logits, then the SGD
    /// update of the parameters.
    fn record_backward_and_update(&self, encoder: &mut wgpu::CommandEncoder) {
        let param_groups = PARAMS.div_ceil(WORKGROUP) as u32;
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("xor backward and update"),
            timestamp_writes: None,
        });
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.set_pipeline(&self.backward);
        pass.dispatch_workgroups(param_groups, 1, 1);
        // wgpu orders these two dispatches: both use `grads` and `params`.
        pass.set_pipeline(&self.sgd_step);
        pass.dispatch_workgroups(param_groups, 1, 1);
    }
}

/// One explicit layout shared by the three kernels, so one bind group
/// serves them all (automatic layouts would give each its own).
fn shared_layout(device: &wgpu::Device) -> wgpu::BindGroupLayout {
    let entry = |binding, ty| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    };
    let storage = |read_only| wgpu::BufferBindingType::Storage { read_only };
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("xor bind group layout"),
        entries: &[
            entry(0, wgpu::BufferBindingType::Uniform),
            entry(1, storage(true)),
            entry(2, storage(false)),
            entry(3, storage(false)),
            entry(4, storage(false)),
            entry(5, storage(false)),
            entry(6, storage(true)),
        ],
    })
}

/// `STEPS` steps of full-batch SGD, `STEPS_PER_SUBMIT` of them recorded into
/// each command encoder; nothing is read back.
fn train(
    ctx: &xent::Context,
    buffers: &Buffers,
    kernels: &Kernels,
    opts: &xent::CrossEntropyOptions,
) -> Result<(), xent::Error> {
    // Our own buffers, bound by xent as they are: logits in, loss and dlogits out.
    let xent_buffers = xent::CrossEntropyBuffers::new(
        buffers.logits.slice(..),
        xent::TargetBuffer::ClassI32(buffers.targets.slice(..)),
        buffers.loss.slice(..),
        Some(buffers.dlogits.slice(..)),
        buffers.status.slice(..),
    );
    let device = ctx.device();
    for first in (0..STEPS).step_by(STEPS_PER_SUBMIT) {
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("xor training steps"),
        });
        for step in first..STEPS.min(first + STEPS_PER_SUBMIT) {
            // One step: forward, xent's loss and ∂loss/∂logits, the loss into
            // the curve, backward and the update.
            kernels.record_forward(&mut encoder);
            ctx.record_cross_entropy(&mut encoder, &DIMS, opts, &xent_buffers)?;
            let curve_offset = (step * 4) as u64;
            encoder.copy_buffer_to_buffer(&buffers.loss, 0, &buffers.loss_curve, curve_offset, 4);
            kernels.record_backward_and_update(&mut encoder);
        }
        ctx.queue().submit([encoder.finish()]);
    }
    Ok(())
}

/// The trained network's logits and the loss curve, read back, with xent's
/// status checked.
fn evaluate(
    ctx: &xent::Context,
    buffers: &Buffers,
    kernels: &Kernels,
    opts: &xent::CrossEntropyOptions,
) -> Result<[Vec<f32>; 2], Box<dyn Error>> {
    // One more forward pass, so the logits we print are the trained network's
    // (the last step's logits predate its update), then the one readback.
    let (device, queue) = (ctx.device(), ctx.queue());
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("xor final forward"),
    });
    kernels.record_forward(&mut encoder);
    let read = read_f32(
        device,
        queue,
        encoder,
        [&buffers.logits, &buffers.loss_curve],
    )?;
    // The targets never change, so the last step's range check speaks for all.
    ctx.read_status::<xent::CrossEntropyStatus>(buffers.status.slice(..))?
        .check(&xent::Layout::from_dims(&DIMS)?, opts.ignore_index)?;
    Ok(read)
}

/// Prints the loss curve's ends and each input's prediction; an error unless
/// all four are right.
fn report(seed: u64, final_logits: &[f32], curve: &[f32]) -> Result<(), Box<dyn Error>> {
    println!("seed {seed}, {STEPS} steps of SGD at learning rate {LEARNING_RATE}");
    println!(
        "loss: step 1 {:.4}, step {STEPS} {:.4}",
        curve[0],
        curve[STEPS - 1]
    );
    let mut correct = 0;
    for (n, row) in final_logits.chunks(CLASSES).enumerate() {
        let predicted = (0..CLASSES).fold(0, |best, c| if row[c] > row[best] { c } else { best });
        let ok = predicted as i32 == TARGETS[n];
        correct += usize::from(ok);
        let (a, b) = (X[2 * n], X[2 * n + 1]);
        println!(
            "  xor({a}, {b}): logits [{:+.4}, {:+.4}] → {predicted} (target {}){}",
            row[0],
            row[1],
            TARGETS[n],
            if ok { "" } else { "  WRONG" }
        );
    }
    if correct < BATCH {
        return Err(format!("{correct} of {BATCH} XOR inputs classified correctly").into());
    }
    println!("all {BATCH} XOR inputs classified correctly");
    Ok(())
}

/// PyTorch's default `nn.Linear` initialisation, uniform(−1/√fan_in,
/// 1/√fan_in) for weights and biases alike, from an inline SplitMix64 so the
/// run is the same everywhere. Laid out as train_xor.wgsl packs it.
fn initial_params(seed: u64) -> Vec<f32> {
    let mut state = seed;
    let mut uniform = |bound: f32| {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // The top 24 bits are exact in an f32: u in [0, 1).
        let u = (z >> 40) as f32 / (1u32 << 24) as f32;
        bound * (2.0 * u - 1.0)
    };
    let (b1, b2) = (1.0 / (INPUTS as f32).sqrt(), 1.0 / (HIDDEN as f32).sqrt());
    let mut params = Vec::with_capacity(PARAMS);
    params.extend((0..HIDDEN * INPUTS + HIDDEN).map(|_| uniform(b1))); // W1, b1
    params.extend((0..CLASSES * HIDDEN + CLASSES).map(|_| uniform(b2))); // W2, b2
    params
}

/// Finishes `encoder` with copies of `buffers` into mappable staging buffers,
/// submits, waits, and returns their contents as f32s.
fn read_f32<const N: usize>(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    mut encoder: wgpu::CommandEncoder,
    buffers: [&wgpu::Buffer; N],
) -> Result<[Vec<f32>; N], Box<dyn Error>> {
    let staging = buffers.map(|buffer| {
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("xor readback"),
            size: buffer.size(),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, buffer.size());
        staging
    });
    queue.submit([encoder.finish()]);
    let (tx, rx) = std::sync::mpsc::channel();
    for buffer in &staging {
        let tx = tx.clone();
        buffer.map_async(wgpu::MapMode::Read, .., move |result| {
            let _ = tx.send(result);
        });
    }
    device.poll(wgpu::PollType::wait_indefinitely())?;
    for _ in 0..N {
        rx.recv()??;
    }
    let mut out = [const { Vec::new() }; N];
    for (values, buffer) in out.iter_mut().zip(&staging) {
        let bytes = buffer.get_mapped_range(..)?;
        *values = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
    }
    Ok(out)
}
