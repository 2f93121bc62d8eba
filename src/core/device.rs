//! What the kernels' plans know of a device: its class (which strategy
//! tables apply), the workgroup size of the row-wide kernels, and the loop
//! bound every kernel keeps.

/// Which of the two strategy tables a device's plans come from: by its
/// device type, or forced ([`Context::with_device_class`](crate::Context::with_device_class),
/// `XENT_DEVICE_CLASS`) so that a GPU's plans can be run, checked and
/// counted on a software adapter.
///
/// ```
/// use xent::DeviceClass;
/// assert_eq!("gpu".parse::<DeviceClass>()?, DeviceClass::Gpu);
/// assert_eq!(DeviceClass::Software.name(), "software");
/// assert!("tpu".parse::<DeviceClass>().is_err());
/// # Ok::<(), xent::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceClass {
    /// `DeviceType::DiscreteGpu | IntegratedGpu`: the GPU table (coalesced
    /// team kernels, splits by `GPU_LANES_FULL`).
    Gpu,
    /// Every other device type (lavapipe and llvmpipe report `Cpu`): the
    /// table measured best on the software adapters.
    Software,
}

/// What the strategy table knows of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeviceProfile {
    pub class: DeviceClass,
    /// Invocations per workgroup of the wide and split kernels
    /// (the subgroup size, else `WIDE_WG_CPU` or `WIDE_WG`).
    pub wide_wg: usize,
    /// Whether the row-wide kernels reduce by subgroup shuffles within a
    /// workgroup of `wide_wg` (one subgroup) rather than through workgroup
    /// memory.
    pub subgroups: bool,
}

impl DeviceProfile {
    /// The profile of `device`: its class (`forced`, else by its type), and
    /// the row-wide kernels' workgroup (its subgroup where
    /// [`subgroup_lanes`] allows, else `WIDE_WG_CPU` on software adapters
    /// and `WIDE_WG` elsewhere; a forced class's own).
    pub(crate) fn of(device: &wgpu::Device, forced: Option<DeviceClass>) -> Self {
        let info = device.adapter_info();
        let lanes = subgroup_lanes(device);
        let class = forced.unwrap_or(DeviceClass::of(&info));
        let software = match forced {
            Some(class) => class == DeviceClass::Software,
            None => info.device_type == wgpu::DeviceType::Cpu,
        };
        let wide_wg = lanes.unwrap_or(if software { WIDE_WG_CPU } else { WIDE_WG });
        DeviceProfile {
            class,
            wide_wg: wide_wg as usize,
            subgroups: lanes.is_some(),
        }
    }
}

impl DeviceClass {
    /// The class of an adapter, by its device type.
    pub(crate) fn of(info: &wgpu::AdapterInfo) -> Self {
        match info.device_type {
            wgpu::DeviceType::DiscreteGpu | wgpu::DeviceType::IntegratedGpu => DeviceClass::Gpu,
            _ => DeviceClass::Software,
        }
    }

    /// The class's name: `gpu` or `software`.
    pub fn name(self) -> &'static str {
        match self {
            DeviceClass::Gpu => "gpu",
            DeviceClass::Software => "software",
        }
    }
}

impl std::str::FromStr for DeviceClass {
    type Err = crate::error::Error;

    /// `gpu` or `software`; anything else is
    /// [`Error::InvalidOption`](crate::Error::InvalidOption).
    fn from_str(s: &str) -> crate::error::Result<Self> {
        match s {
            "gpu" => Ok(DeviceClass::Gpu),
            "software" => Ok(DeviceClass::Software),
            other => Err(crate::error::Error::InvalidOption {
                name: "device class",
                value: other.to_string(),
                expected: "gpu or software",
            }),
        }
    }
}

/// The most loop iterations any one invocation of a kernel may run, all its
/// loops together. Mesa's software adapters (llvmpipe, lavapipe) end every
/// loop of a shader invocation after 65 535 iterations in all
/// (`LP_MAX_TGSI_LOOP_ITERATIONS`), silently; a quarter of that leaves room
/// for the loops a model here does not count exactly (the fixed trees of the
/// reductions). Every strategy's count is bounded by this on every device:
/// past it, rows are split over more invocations (`RowStrategy::Split`,
/// `SoftmaxStrategy::Split`), and what cannot be split is
/// [`Error::Unsupported`](crate::Error::Unsupported) before anything runs.
pub(crate) const LOOP_TRIPS_MAX: usize = 16_384;

/// Invocations per row of the wide kernels without subgroups: one SIMD
/// batch (8 lanes of 256 bits) on software adapters, where a workgroup of 8
/// beat one of 16 once rows were walked as two streams (4096 × 4096 on
/// lavapipe without subgroups: 36 → 31 ms; BENCHMARKS.md); 16 elsewhere.
pub(crate) const WIDE_WG_CPU: u32 = 8;
pub(crate) const WIDE_WG: u32 = 16;

/// The subgroup size the wide kernels use as their workgroup size, where the
/// device has SUBGROUP and its smallest subgroup is a power of two from 8 to
/// 64: a workgroup of that many invocations lies within one subgroup. `None`
/// (the workgroup-memory reductions) otherwise, on Metal (whose reported
/// minimum of 4 is far below the 32 lanes Apple GPUs run, so rows would get
/// 4 invocations), or when `XENT_SUBGROUPS=0`.
fn subgroup_lanes(device: &wgpu::Device) -> Option<u32> {
    let info = device.adapter_info();
    if std::env::var("XENT_SUBGROUPS").is_ok_and(|v| v == "0")
        || !device.features().contains(wgpu::Features::SUBGROUP)
        || info.backend == wgpu::Backend::Metal
    {
        return None;
    }
    let n = info.subgroup_min_size;
    (n.is_power_of_two() && (8..=64).contains(&n)).then_some(n)
}
