//! Shared test support, included by every test crate (`mod common;`): one
//! GPU context per test binary and contexts with custom limits, the worked
//! example, a deterministic random generator, buffers and their readback,
//! comparisons; the proptest strategies ([`generators`]) and buffers placed
//! at offsets ([`placed`]).
//!
//! With `XENT_REQUIRE_ADAPTER=1` (CI sets it) a missing adapter fails the
//! test; without it the test prints a loud notice and returns.
// Each test crate uses only some of the helpers.
#![allow(dead_code)]

pub mod family;
pub mod generators;
pub mod half_precision;
pub mod near_flush;
pub mod placed;

use std::sync::OnceLock;

use wgpu::util::DeviceExt;
use xent::Context;

static CONTEXT: OnceLock<Result<Context, String>> = OnceLock::new();
static GPU_CLASS: OnceLock<Option<Context>> = OnceLock::new();

/// A context on the same adapter whose calls are planned as for a GPU
/// ([`xent::DeviceClass::Gpu`]): the GPU table's strategies run on the
/// software adapters of CI. `None` as [`ctx`].
pub fn gpu_class_ctx() -> Option<&'static Context> {
    ctx()?;
    GPU_CLASS
        .get_or_init(|| {
            Context::from_env()
                .ok()
                .map(|c| c.with_device_class(xent::DeviceClass::Gpu))
        })
        .as_ref()
}

/// The shared context, or `None` (after a notice) when no adapter exists and
/// `XENT_REQUIRE_ADAPTER` is not set.
pub fn ctx() -> Option<&'static Context> {
    let ctx = CONTEXT.get_or_init(|| {
        Context::from_env()
            .inspect(|c| eprintln!("xent tests: adapter {}", c.adapter_summary()))
            .map_err(|e| e.to_string())
    });
    match ctx {
        Ok(c) => Some(c),
        Err(e) if require_adapter() => {
            panic!("XENT_REQUIRE_ADAPTER is set and no adapter is usable: {e}")
        }
        Err(e) => {
            eprintln!("!!! SKIPPED: no GPU adapter ({e}); set XENT_REQUIRE_ADAPTER=1 to make this a failure");
            None
        }
    }
}

/// One context in verify mode per test binary (its pipelines built once),
/// or `None` as [`ctx`].
pub fn verified() -> Option<&'static Context> {
    static VERIFIED: OnceLock<Context> = OnceLock::new();
    ctx()?;
    Some(VERIFIED.get_or_init(|| {
        Context::from_env()
            .unwrap()
            .with_verify(xent::Tolerance::default())
    }))
}

/// [`verified`] when its device can store `precision` (f16 needs
/// `SHADER_F16`), else `None`.
pub fn verified_for(precision: xent::Precision) -> Option<&'static Context> {
    let ctx = verified()?;
    (precision != xent::Precision::F16 || has_f16(ctx)).then_some(ctx)
}

fn require_adapter() -> bool {
    std::env::var("XENT_REQUIRE_ADAPTER").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The worked example of `shared/notes/000`: logits (3, 5), targets [1, 3, 2].
pub const WORKED_LOGITS: [f32; 15] = [
    10.0, 2.0, 1.0, -2.0, -3.0, //
    -1.0, -6.0, 0.0, -3.0, -5.0, //
    -5.0, 4.0, 8.0, 2.0, 1.0,
];
pub const WORKED_DIMS: [usize; 2] = [3, 5];
pub const WORKED_TARGETS: [i64; 3] = [1, 3, 2];

/// f32 GPU results against f64 references of worked examples (values up to
/// ~13): a few f32 ulps.
pub const GPU_TOL: f64 = 1e-5;
/// The f64 CPU path against reference values printed to 16 digits.
pub const CPU_TOL: f64 = 1e-12;

/// Central differences with step `FD_STEP` on f64 inputs of size ≤ 5 are
/// accurate to ~1e-9 in the function's units; `FD_TOL` leaves room for
/// curvature.
pub const FD_TOL: f64 = 1e-6;
pub const FD_STEP: f64 = 1e-6;

/// The shared context (when an adapter exists) still computes the worked
/// example's loss, 3.7925.
pub fn still_works() {
    if let Some(ctx) = ctx() {
        still_works_on(ctx);
    }
}

/// `ctx` still computes the worked example's loss, 3.7925.
pub fn still_works_on(ctx: &Context) {
    let out = ctx
        .cross_entropy(
            &WORKED_LOGITS,
            &WORKED_DIMS,
            &WORKED_TARGETS,
            None,
            &xent::CrossEntropyOptions::default(),
            &Default::default(),
        )
        .unwrap();
    assert_eq!(format!("{:.4}", out.loss[0]), "3.7925");
}

/// Asserts f64 values match PyTorch's f64 ones printed to 17 digits:
/// within [`CPU_TOL`] relative (absolute below 1), naming the first bad index.
pub fn assert_pytorch_f64(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= CPU_TOL * w.abs().max(1.0),
            "{what}[{i}]: {g} vs PyTorch {w}"
        );
    }
}

/// Asserts |a − b| ≤ tol element-wise, naming the first bad index.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(g) - w).abs() <= tol,
            "{what}[{i}]: got {g}, want {w} (tolerance {tol})"
        );
    }
}

/// A small deterministic generator (splitmix64) for test data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// Uniform in [-1, 1) times 2^j, j uniform in [-spread, spread]:
    /// magnitudes over many binades.
    pub fn spread(&mut self, spread: i32) -> f32 {
        let j = self.below(2 * spread as usize + 1) as i32 - spread;
        self.uniform(-1.0, 1.0) * 2f32.powi(j)
    }
}

/// `n` values uniform in [-1, 1) from `Rng(seed)`.
pub fn uniform_logits(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed);
    (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

/// Logits uniform in [-3, 3) for `dims` and a class per row, from `Rng(seed)`.
pub fn logits_and_targets(dims: &[usize], seed: u64) -> (Vec<f32>, Vec<i64>) {
    let layout = xent::Layout::from_dims(dims).unwrap();
    let mut rng = Rng(seed);
    let x = (0..layout.len()).map(|_| rng.uniform(-3.0, 3.0)).collect();
    let t = (0..layout.rows())
        .map(|_| rng.below(layout.classes) as i64)
        .collect();
    (x, t)
}

/// Whether `ctx`'s device has SHADER_F16 (f16 storage and arithmetic).
pub fn has_f16(ctx: &Context) -> bool {
    ctx.device().features().contains(wgpu::Features::SHADER_F16)
}

/// A context on the environment's adapter whose device binds at most
/// `max_binding` bytes per storage buffer, at offsets aligned to 256 bytes
/// (coarser than most adapters', so chunks start off vec4 boundaries):
/// tensors larger than that must be processed in chunks. SHADER_F16 where the
/// adapter has it, no SUBGROUP (so the workgroup-memory reductions run).
/// `None` (after the same notice as [`ctx`]) without an adapter.
pub fn small_binding_ctx(max_binding: u64) -> Option<Context> {
    custom_ctx(|adapter| {
        (
            wgpu::Limits {
                max_storage_buffer_binding_size: max_binding,
                min_storage_buffer_offset_alignment: adapter
                    .limits()
                    .min_storage_buffer_offset_alignment
                    .max(256),
                ..adapter.limits()
            },
            adapter.features() & wgpu::Features::SHADER_F16,
        )
    })
}

/// A context whose device has exactly `limits` and no optional features
/// (every pipeline must fit them), in verify mode: each host call is held
/// to the CPU twin.
pub fn limits_ctx(limits: wgpu::Limits) -> Option<Context> {
    custom_ctx(|_| (limits.clone(), wgpu::Features::empty()))
        .map(|c| c.with_verify(xent::Tolerance::default()))
}

/// A context on the environment's adapter whose device has no buffer larger
/// than `max_buffer` bytes (nor a storage binding larger than that).
pub fn max_buffer_ctx(max_buffer: u64) -> Option<Context> {
    custom_ctx(|adapter| {
        (
            wgpu::Limits {
                max_buffer_size: max_buffer,
                max_storage_buffer_binding_size: max_buffer
                    .min(adapter.limits().max_storage_buffer_binding_size),
                ..adapter.limits()
            },
            wgpu::Features::empty(),
        )
    })
}

/// A context on the environment's adapter whose device dispatches at most
/// `max_per_dimension` workgroups along each grid dimension, so that a
/// modest call spills its grid into y (`Context::grid` in
/// src/core/binding.rs) and every kernel must find its row from both
/// coordinates. `None` (after the same notice as [`ctx`]) without an adapter.
pub fn small_grid_ctx(max_per_dimension: u32) -> Option<Context> {
    custom_ctx(|adapter| {
        (
            wgpu::Limits {
                max_compute_workgroups_per_dimension: max_per_dimension,
                ..adapter.limits()
            },
            wgpu::Features::empty(),
        )
    })
}

/// A context of its own (not the shared one of [`ctx`]), for a test that
/// breaks it; `None` (after the same notice) without an adapter.
pub fn own_ctx() -> Option<Context> {
    match Context::from_env() {
        Ok(c) => Some(c),
        Err(e) if require_adapter() => {
            panic!("XENT_REQUIRE_ADAPTER is set and no adapter is usable: {e}")
        }
        Err(e) => {
            eprintln!("!!! SKIPPED: no GPU adapter ({e}); set XENT_REQUIRE_ADAPTER=1 to make this a failure");
            None
        }
    }
}

/// A context and a second device on the same wgpu instance and adapter, so
/// that the second device's buffers are valid ids that xent's device does not
/// own. `None` (after the same notice as [`ctx`]) without an adapter.
pub fn ctx_and_other_device() -> Option<(Context, wgpu::Device, wgpu::Queue)> {
    let adapter = adapter()?;
    let open = || {
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("test device"),
            required_limits: adapter.limits(),
            ..Default::default()
        }))
        .expect("device")
    };
    let (device, queue) = open();
    let (other, other_queue) = open();
    Some((
        Context::new(device, queue).expect("context"),
        other,
        other_queue,
    ))
}

/// The environment's adapter, or `None` after a notice (a failure with
/// `XENT_REQUIRE_ADAPTER`).
fn adapter() -> Option<wgpu::Adapter> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    if wgpu::Backends::from_env().is_none() {
        desc.backends = wgpu::Backends::all();
    }
    let instance = wgpu::Instance::new(desc);
    match pollster::block_on(instance.request_adapter(&Default::default())) {
        Ok(a) => Some(a),
        Err(e) if require_adapter() => {
            panic!("XENT_REQUIRE_ADAPTER is set and no adapter is usable: {e}")
        }
        Err(e) => {
            eprintln!("!!! SKIPPED: no GPU adapter ({e}); set XENT_REQUIRE_ADAPTER=1 to make this a failure");
            None
        }
    }
}

/// A context on the environment's adapter with the limits and features
/// `choose` gives for it.
fn custom_ctx(
    choose: impl Fn(&wgpu::Adapter) -> (wgpu::Limits, wgpu::Features),
) -> Option<Context> {
    let adapter = adapter()?;
    let (limits, features) = choose(&adapter);
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("test device with custom limits"),
        required_limits: limits,
        required_features: features,
        ..Default::default()
    }))
    .expect("device with custom limits");
    Some(Context::new(device, queue).expect("context"))
}

/// Probability targets for `x`'s shape: its softmax read backwards, so each
/// row (or pixel) is a distribution unrelated to its own logits.
pub fn soft_targets(x: &[f32], dims: &[usize]) -> Vec<f32> {
    xent::cpu::softmax(x, dims)
        .unwrap()
        .iter()
        .rev()
        .map(|&v| v as f32)
        .collect()
}

/// Holds a GPU result to the CPU's under the default tolerance (with the
/// CPU's magnitudes): the loss, the gradient and log-sum-exp where both have
/// them, the correct count; panics naming `what`.
pub fn assert_matches_cpu(
    what: &str,
    got: &xent::cpu::CrossEntropyOutput<f32>,
    want: &xent::cpu::CrossEntropyOutput<f64>,
) {
    let tol = xent::Tolerance::default();
    tol.compare_cross_entropy(got, want, &tol)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
}

/// A buffer of `ctx`'s device holding `contents`, with `usage`.
pub fn buffer(ctx: &Context, contents: &[u8], usage: wgpu::BufferUsages) -> wgpu::Buffer {
    ctx.device()
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("test"),
            contents,
            usage,
        })
}

/// A storage buffer holding `v` that can be read back and written.
pub fn storage(ctx: &Context, v: &[f32]) -> wgpu::Buffer {
    buffer(
        ctx,
        bytemuck::cast_slice(v),
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
    )
}

/// The f32 contents of `buffer` (which needs `COPY_SRC`), read back after
/// everything submitted so far.
pub fn read_f32(ctx: &xent::Context, buffer: &wgpu::Buffer) -> Vec<f32> {
    bytemuck::pod_collect_to_vec(&read_bytes(ctx, buffer))
}

/// The bytes of `buffer` (which needs `COPY_SRC`), read back after
/// everything submitted so far.
pub fn read_bytes(ctx: &xent::Context, buffer: &wgpu::Buffer) -> Vec<u8> {
    let staging = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("test readback"),
        size: buffer.size(),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    enc.copy_buffer_to_buffer(buffer, 0, &staging, 0, buffer.size());
    ctx.queue().submit([enc.finish()]);
    staging
        .slice(..)
        .map_async(wgpu::MapMode::Read, |r| r.unwrap());
    ctx.device()
        .poll(wgpu::PollType::wait_indefinitely())
        .unwrap();
    let v = staging.get_mapped_range(..).unwrap().to_vec();
    staging.unmap();
    v
}

/// Normalises each row of `x` in place into log-probabilities or probabilities.
pub fn to_kind(x: &mut [f32], dims: &[usize], kind: xent::InputKind) {
    let y = match kind {
        xent::InputKind::Logits => return,
        xent::InputKind::LogProbs => xent::cpu::log_softmax(x, dims).unwrap(),
        xent::InputKind::Probs => xent::cpu::softmax(x, dims).unwrap(),
    };
    for (a, b) in x.iter_mut().zip(y) {
        *a = b as f32;
    }
}
