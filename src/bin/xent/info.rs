//! `xent info`: the adapters found, with the limits and features that matter to xent.

use crate::Failure;

pub fn run() -> Result<(), Failure> {
    let backend = std::env::var("WGPU_BACKEND").unwrap_or_else(|_| "unset: all backends".into());
    let adapters = xent::enumerate_adapters();
    if adapters.is_empty() {
        return Err(xent::Error::NoAdapter {
            request: format!("xent info, WGPU_BACKEND={backend}"),
        }
        .into());
    }
    say!(
        "{} adapter(s) found (WGPU_BACKEND {backend})",
        adapters.len()
    );
    for (n, adapter) in adapters.iter().enumerate() {
        let i = adapter.get_info();
        let l = adapter.limits();
        let f = adapter.features();
        let yes = |flag| if f.contains(flag) { "yes" } else { "no" };
        say!("[{n}] {}", i.name);
        say!("    backend: {:?}", i.backend);
        say!("    device type: {:?}", i.device_type);
        let driver = [i.driver.trim(), i.driver_info.trim()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        say!("    driver: {driver}");
        say!(
            "    max_storage_buffer_binding_size (largest storage binding): {}",
            bytes(l.max_storage_buffer_binding_size)
        );
        say!(
            "    max_buffer_size (largest buffer): {}",
            bytes(l.max_buffer_size)
        );
        say!(
            "    max_compute_workgroups_per_dimension: {}",
            l.max_compute_workgroups_per_dimension
        );
        say!(
            "    max_compute_workgroup_size_x: {}",
            l.max_compute_workgroup_size_x
        );
        say!(
            "    max_compute_invocations_per_workgroup: {}",
            l.max_compute_invocations_per_workgroup
        );
        say!(
            "    max_storage_buffers_per_shader_stage: {}",
            l.max_storage_buffers_per_shader_stage
        );
        say!(
            "    features: subgroups (SUBGROUP) {}, f16 (SHADER_F16) {}, timestamps (TIMESTAMP_QUERY) {}",
            yes(wgpu::Features::SUBGROUP),
            yes(wgpu::Features::SHADER_F16),
            yes(wgpu::Features::TIMESTAMP_QUERY)
        );
        if f.contains(wgpu::Features::SUBGROUP) {
            say!(
                "    subgroup sizes: {} to {} (xent's wide kernels use a workgroup of the smallest, reduced by shuffles)",
                i.subgroup_min_size,
                i.subgroup_max_size
            );
        }
        let cooperative = f
            .contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX | wgpu::Features::SHADER_F16)
            && xent::offers_cooperative_products(
                &adapter.cooperative_matrix_properties(),
                i.subgroup_min_size,
                i.subgroup_max_size,
            );
        say!(
            "    cooperative matrices for --product-kernel coop (f16 16x16x16 into f32, subgroups of 32): {}",
            if cooperative { "yes" } else { "no" }
        );
    }
    Ok(())
}

/// `n` bytes, with MiB or GiB alongside.
fn bytes(n: u64) -> String {
    const MIB: u64 = 1 << 20;
    if n >= 1 << 30 {
        format!("{n} bytes ({:.1} GiB)", n as f64 / (1u64 << 30) as f64)
    } else if n >= MIB {
        format!("{n} bytes ({:.1} MiB)", n as f64 / MIB as f64)
    } else {
        format!("{n} bytes")
    }
}
