//! Adapter and device selection from the environment.

use crate::error::{Error, Result};

/// Opens a headless device and queue the way [`Context::from_env`](crate::Context::from_env) does, on
/// a `wgpu::Instance` of its own.
///
/// **Buffers for a context must come from the context's device.** Each call
/// opens a new device on a new instance, and wgpu's ids are per instance: a
/// buffer made on one `headless_device()` and passed to a context on another
/// is silently bound as whichever buffer of the context's device has the
/// same id (wrong results, no error), or wgpu panics on an id the context's
/// instance never issued. To build your own pipelines beside
/// xent's, prefer [`Context::from_env`](crate::Context::from_env) and then [`Context::device`](crate::Context::device) and
/// [`Context::queue`](crate::Context::queue); use this function only to wrap its device in exactly
/// one context, and make every buffer and encoder from that device.
///
/// # Errors
/// As [`Context::from_env`](crate::Context::from_env).
///
/// ```
/// // Preferred: one context, and everything else from its device.
/// let ctx = xent::Context::from_env()?;
/// let buffer = ctx.device().create_buffer(&wgpu::BufferDescriptor {
///     label: None, size: 16, usage: wgpu::BufferUsages::STORAGE, mapped_at_creation: false });
///
/// // Or: this device, wrapped once; buffers from `device` (not from another call).
/// let (device, queue) = xent::headless_device()?;
/// let ctx = xent::Context::new(device.clone(), queue.clone())?;
/// # Ok::<(), xent::Error>(())
/// ```
pub fn headless_device() -> Result<(wgpu::Device, wgpu::Queue)> {
    // Without wgpu's experimental features: a device for the caller's own use.
    open_device(adapter_for(wgpu::Backends::from_env())?, false).map(|d| (d.device, d.queue))
}

/// A device xent opened, and whether it multiplies in cooperative matrices.
pub(crate) struct Opened {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub cooperative: bool,
}

/// A device on `adapter` with its own limits and the optional features xent
/// uses; with `cooperative`, the cooperative matrices too where the adapter
/// offers the product kernel's (`src/core/coop.rs`).
pub(crate) fn open_device(adapter: wgpu::Adapter, cooperative: bool) -> Result<Opened> {
    let info = adapter.get_info();
    let cooperative = cooperative && super::coop::adapter_offers(&adapter);
    // Optional features xent uses where the adapter has them.
    let mut wanted =
        wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP;
    if cooperative {
        wanted |= wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
    }
    let desc = wgpu::DeviceDescriptor {
        label: Some("xent device"),
        required_features: adapter.features() & wanted,
        required_limits: adapter.limits(),
        experimental_features: super::coop::experimental_features(cooperative),
        ..Default::default()
    };
    let (device, queue) =
        pollster::block_on(adapter.request_device(&desc)).map_err(|e| Error::DeviceRequest {
            adapter: info.name.clone(),
            reason: e.to_string(),
        })?;
    Ok(Opened {
        device,
        queue,
        cooperative,
    })
}

/// Every adapter the environment's backends offer (all backends when
/// `WGPU_BACKEND` is unset).
///
/// ```
/// for adapter in xent::enumerate_adapters() {
///     println!("{} ({:?})", adapter.get_info().name, adapter.get_info().backend);
/// }
/// ```
pub fn enumerate_adapters() -> Vec<wgpu::Adapter> {
    let instance = instance_from_env();
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
}

fn instance_from_env() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    if wgpu::Backends::from_env().is_none() {
        desc.backends = wgpu::Backends::all();
    }
    wgpu::Instance::new(desc)
}

/// The adapter on `backends` (all of them, primary ones first, when `None`),
/// honouring `WGPU_ADAPTER_NAME` and `WGPU_POWER_PREF`.
pub(crate) fn adapter_for(backends: Option<wgpu::Backends>) -> Result<wgpu::Adapter> {
    let backend = backends.map_or_else(|| "any".to_string(), |b| format!("{b:?}"));
    let name = std::env::var("WGPU_ADAPTER_NAME").ok();
    let power_preference = wgpu::PowerPreference::from_env().unwrap_or_default();
    // Without WGPU_BACKEND, the primary backends (Vulkan, Metal, DX12) first;
    // GL, whose probing is slow and noisy on headless Linux, only after them.
    let attempts = match backends {
        Some(b) => vec![b],
        None => vec![wgpu::Backends::PRIMARY, wgpu::Backends::all()],
    };
    let mut found = Vec::new();
    for backends in attempts {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        desc.backends = backends;
        let instance = wgpu::Instance::new(desc);
        if let Some(wanted) = &name {
            let wanted_lc = wanted.to_lowercase();
            let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
            found = adapters.iter().map(|a| a.get_info().name).collect();
            if let Some(a) = adapters
                .into_iter()
                .find(|a| a.get_info().name.to_lowercase().contains(&wanted_lc))
            {
                return Ok(a);
            }
            continue;
        }
        let options = wgpu::RequestAdapterOptions {
            power_preference,
            force_fallback_adapter: false,
            compatible_surface: None,
            ..Default::default()
        };
        if let Ok(a) = pollster::block_on(instance.request_adapter(&options)) {
            return Ok(a);
        }
    }
    let found = if found.is_empty() {
        "none".to_string()
    } else {
        found.join(", ")
    };
    Err(Error::NoAdapter {
        request: match name {
            Some(wanted) => {
                format!("backends {backend}, WGPU_ADAPTER_NAME={wanted}; adapters found: {found}")
            }
            None => format!("backends {backend}, WGPU_POWER_PREF={power_preference:?}"),
        },
    })
}
