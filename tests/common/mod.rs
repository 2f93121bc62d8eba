//! Shared test support: one GPU context per test binary.
//!
//! With `XENT_REQUIRE_ADAPTER=1` (CI sets it) a missing adapter fails the
//! test; without it the test prints a loud notice and returns.
#![allow(dead_code)]

use std::sync::OnceLock;

use xent::Context;

static CONTEXT: OnceLock<Result<Context, String>> = OnceLock::new();

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
}

/// A context on the environment's adapter whose device binds at most
/// `max_binding` bytes per storage buffer: tensors larger than that must be
/// processed in chunks. `None` (after the same notice as [`ctx`]) without an adapter.
pub fn small_binding_ctx(max_binding: u64) -> Option<Context> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    if wgpu::Backends::from_env().is_none() {
        desc.backends = wgpu::Backends::all();
    }
    let instance = wgpu::Instance::new(desc);
    let adapter = match pollster::block_on(instance.request_adapter(&Default::default())) {
        Ok(a) => a,
        Err(e) if require_adapter() => {
            panic!("XENT_REQUIRE_ADAPTER is set and no adapter is usable: {e}")
        }
        Err(e) => {
            eprintln!("!!! SKIPPED: no GPU adapter ({e}); set XENT_REQUIRE_ADAPTER=1 to make this a failure");
            return None;
        }
    };
    let limits = wgpu::Limits {
        max_storage_buffer_binding_size: max_binding,
        ..adapter.limits()
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("small-binding test device"),
        required_limits: limits,
        ..Default::default()
    }))
    .expect("device with a small binding limit");
    Some(Context::new(device, queue).expect("context"))
}
