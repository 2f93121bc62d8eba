//! The context: a device, its queue, and xent's pipelines, built on first use.

use std::sync::Mutex;

use super::adapter::{adapter_for, open_device, Opened};
use super::device::{DeviceClass, DeviceProfile};
use super::pipelines::Pipelines;
use super::scratch::{check_alive, Scratch};
use crate::core::verify::Tolerance;
use crate::error::{Error, GpuScope, Result};

/// Holds the device, the queue, and xent's pipelines (each built when a call
/// first uses it, then cached).
///
/// Get one from your own device and queue with [`Context::new`](crate::Context::new) (xent then
/// never creates a device of its own), or headless from the environment with
/// [`Context::from_env`](crate::Context::from_env). A `Context` is `Send + Sync`: share it by reference
/// or in an `Arc`.
///
/// See also [`Context::record_cross_entropy`](crate::Context::record_cross_entropy) (record into your encoder) and
/// [`Context::cross_entropy`](crate::Context::cross_entropy) (slices in, `Vec`s out).
///
/// ```
/// let ctx = xent::Context::from_env()?; // or Context::new(your_device, your_queue)
/// println!("{}", ctx.adapter_info().name);
/// # Ok::<(), xent::Error>(())
/// ```
pub struct Context {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) pipelines: Pipelines,
    pub(crate) scratch: Mutex<Scratch>,
    /// Host-API calls on one context run one at a time. wgpu's GL backend
    /// panics when a thread waits more than a few seconds for its GL context,
    /// which many concurrent blocking calls on a software adapter can cause.
    pub(crate) host_lock: Mutex<()>,
    pub(crate) verify: Option<Tolerance>,
    /// A corruption of the host API's results, for mutation tests.
    pub(crate) fault: Option<crate::core::verify::Fault>,
    /// What the plans know of the device: its class, the row-wide
    /// kernels' workgroup, subgroups.
    pub(crate) profile: DeviceProfile,
    /// `XENT_STRATEGY` as read when the context was made (unset or empty:
    /// `None`): the cross-entropy strategy of every call whose options say
    /// `Auto`, parsed by the call.
    pub(crate) strategy_env: Option<String>,
    /// The device multiplies f16 16 × 16 × 16 into f32 in cooperative
    /// matrices (`src/core/coop.rs`).
    pub(crate) cooperative: bool,
}

impl Context {
    /// Wraps the caller's device and queue; xent's pipelines are built on
    /// first use.
    ///
    /// xent records into and submits to this device only; it never creates one.
    /// Every buffer and encoder later passed to this context must come from
    /// this same device (see [`CrossEntropyBuffers`](crate::CrossEntropyBuffers)).
    ///
    /// `XENT_STRATEGY=<name>` (see [`Strategy`](crate::Strategy)) forces a
    /// kernel strategy on every cross-entropy call whose options say `Auto`;
    /// `XENT_DEVICE_CLASS=gpu|software` plans every call as for that class of
    /// device (see [`Context::with_device_class`]).
    ///
    /// # Errors
    /// [`Error::DeviceLimit`](crate::Error::DeviceLimit) naming the first
    /// limit below [`required_limits`](crate::required_limits), with the
    /// value needed and the device's;
    /// [`Error::Gpu`](crate::Error::Gpu) if making the scratch fails;
    /// [`Error::DeviceLost`](crate::Error::DeviceLost) if the device is lost.
    /// (A shader the device refuses is an `Error::Gpu` of the first call
    /// that uses it. An `XENT_DEVICE_CLASS` that names no class is an
    /// [`Error::InvalidOption`](crate::Error::InvalidOption) here. An
    /// `XENT_STRATEGY` that names no strategy is an
    /// [`Error::InvalidOption`](crate::Error::InvalidOption) of each
    /// cross-entropy call.)
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (device, queue) = xent::headless_device()?;
    /// // `device` and `queue` are yours, from your own adapter.
    /// let ctx = xent::Context::new(device, queue)?;
    /// # Ok(()) }
    /// ```
    pub fn new(device: wgpu::Device, queue: wgpu::Queue) -> Result<Self> {
        // Unset or empty: none. The op that reads it parses it.
        let strategy_env = match std::env::var("XENT_STRATEGY") {
            Ok(name) if name.is_empty() => None,
            Ok(name) => Some(name),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(name)) => Some(name.to_string_lossy().into_owned()),
        };
        super::requirements::check(&device.limits())?;
        check_alive(&device)?;
        let scope = GpuScope::push(&device);
        let scratch = Scratch::new(&device);
        scope.pop("making xent's scratch")?;
        let forced =
            match std::env::var("XENT_DEVICE_CLASS") {
                Ok(name) if !name.is_empty() => Some(name.parse::<DeviceClass>().map_err(
                    |_| Error::InvalidOption {
                        name: "XENT_DEVICE_CLASS",
                        value: name,
                        expected: "gpu or software",
                    },
                )?),
                _ => None,
            };
        let profile = DeviceProfile::of(&device, forced);
        Ok(Self {
            device,
            queue,
            pipelines: Pipelines::new(),
            scratch: Mutex::new(scratch),
            host_lock: Mutex::new(()),
            verify: None,
            fault: None,
            profile,
            strategy_env,
            cooperative: false,
        })
    }

    /// A headless context on the adapter the environment picks.
    ///
    /// Honours `WGPU_BACKEND` (e.g. `vulkan`, `gl`), `WGPU_ADAPTER_NAME` (a
    /// case-insensitive substring of the adapter's name) and `WGPU_POWER_PREF`
    /// (`low`, `high`, `none`). The device gets the adapter's own limits.
    ///
    /// # Errors
    /// [`Error::NoAdapter`](crate::Error::NoAdapter), naming what was asked for and how to get a
    /// software adapter; [`Error::DeviceRequest`](crate::Error::DeviceRequest) if the adapter refuses.
    ///
    /// ```
    /// let ctx = xent::Context::from_env()?;
    /// println!("{}", ctx.adapter_summary());
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn from_env() -> Result<Self> {
        Self::opened(open_device(adapter_for(wgpu::Backends::from_env())?, true)?)
    }

    /// A context on a device xent opened, with its cooperative matrices.
    fn opened(d: Opened) -> Result<Self> {
        Ok(Self {
            cooperative: d.cooperative,
            ..Self::new(d.device, d.queue)?
        })
    }

    /// A headless context on the given backends, whatever `WGPU_BACKEND`
    /// says (`WGPU_ADAPTER_NAME` and `WGPU_POWER_PREF` still apply).
    ///
    /// # Errors
    /// As [`Context::from_env`](crate::Context::from_env).
    ///
    /// ```
    /// match xent::Context::from_backends(wgpu::Backends::VULKAN) {
    ///     Ok(ctx) => assert_eq!(ctx.adapter_info().backend, wgpu::Backend::Vulkan),
    ///     Err(xent::Error::NoAdapter { .. }) => {} // no Vulkan adapter here
    ///     Err(e) => panic!("{e}"),
    /// }
    /// ```
    pub fn from_backends(backends: wgpu::Backends) -> Result<Self> {
        Self::opened(open_device(adapter_for(Some(backends))?, true)?)
    }

    /// Turns on verify mode for the host API: each GPU result is compared with
    /// the CPU path under `tolerance`, and a mismatch is an [`Error::Mismatch`](crate::Error::Mismatch).
    ///
    /// ```
    /// let ctx = xent::Context::from_env()?.with_verify(xent::Tolerance::default());
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn with_verify(mut self, tolerance: Tolerance) -> Self {
        self.verify = Some(tolerance);
        self
    }

    /// Corrupts the host API's GPU results (gradients and softmax outputs)
    /// with `fault` after reading them back, before verify mode compares
    /// them: for mutation tests of verify mode and of the CLI's check only.
    #[doc(hidden)]
    pub fn with_fault(mut self, fault: crate::core::verify::Fault) -> Self {
        self.fault = Some(fault);
        self
    }

    /// The device xent records for.
    ///
    /// ```
    /// let ctx = xent::Context::from_env()?;
    /// let encoder = ctx.device().create_command_encoder(&Default::default());
    /// # let _ = encoder;
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The queue the host API submits to.
    ///
    /// ```
    /// let ctx = xent::Context::from_env()?;
    /// let encoder = ctx.device().create_command_encoder(&Default::default());
    /// ctx.queue().submit([encoder.finish()]);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// The adapter behind the device.
    ///
    /// ```
    /// let ctx = xent::Context::from_env()?;
    /// assert!(!ctx.adapter_info().name.is_empty());
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn adapter_info(&self) -> wgpu::AdapterInfo {
        self.device.adapter_info()
    }

    /// Whether the wide kernels reduce rows by subgroup shuffles (the device
    /// has SUBGROUP, its smallest subgroup is 8 to 64 lanes, it is not Metal, and
    /// `XENT_SUBGROUPS=0` was not set when the context was made) rather than
    /// through workgroup memory. Both give results within the documented
    /// tolerance of the CPU path, and each is bit-identical run to run.
    ///
    /// ```
    /// let ctx = xent::Context::from_env()?;
    /// if ctx.subgroup_reductions() {
    ///     assert!(ctx.device().features().contains(wgpu::Features::SUBGROUP));
    /// }
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn subgroup_reductions(&self) -> bool {
        self.profile.subgroups
    }

    /// The class of device the plans are made for: the adapter's own (by
    /// its device type), unless forced.
    ///
    /// ```
    /// let ctx = xent::Context::from_env()?;
    /// let class = ctx.device_class();
    /// assert!(matches!(class, xent::DeviceClass::Gpu | xent::DeviceClass::Software));
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn device_class(&self) -> DeviceClass {
        self.profile.class
    }

    /// Whether the device offers the cooperative matrices (tensor cores)
    /// that [`ProductKernel::Coop`](crate::ProductKernel::Coop) runs on: f16
    /// 16 × 16 × 16 accumulated in f32, subgroups of 32
    /// ([`offers_cooperative_products`](crate::offers_cooperative_products)).
    /// A context from [`Context::from_env`] asks for them where the adapter
    /// offers them; one from [`Context::new`] is told by
    /// [`Context::with_cooperative_matrices`].
    ///
    /// ```
    /// let ctx = xent::Context::from_env()?;
    /// let offered = ctx.device().features().contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);
    /// assert!(offered || !ctx.cooperative_matrices());
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn cooperative_matrices(&self) -> bool {
        self.cooperative
    }

    /// The context told what its device's adapter lists
    /// (`adapter.cooperative_matrix_properties()`): `ProductKernel::Coop`
    /// runs where the device was opened with
    /// `wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX` (and wgpu's
    /// experimental opt-in) and `SHADER_F16`, and `properties` hold the
    /// configuration xent's kernel uses.
    ///
    /// ```
    /// let ctx = xent::Context::from_env()?;
    /// // No configuration listed: the products stay on the scalar kernels.
    /// assert!(!ctx.with_cooperative_matrices(&[]).cooperative_matrices());
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn with_cooperative_matrices(
        mut self,
        properties: &[wgpu::CooperativeMatrixProperties],
    ) -> Self {
        let info = self.device.adapter_info();
        self.cooperative = self
            .device
            .features()
            .contains(crate::core::coop::COOP_FEATURES)
            && crate::offers_cooperative_products(
                properties,
                info.subgroup_min_size,
                info.subgroup_max_size,
            );
        self
    }

    /// The context with its calls planned as for a device of `class`: the
    /// strategy table, the row-wide kernels' workgroup without subgroups,
    /// the product kernels. Every plan runs on any adapter and gives the
    /// same results within the tolerance; forcing `Gpu` on a software
    /// adapter is how the GPU's plans are checked and their bytes counted
    /// in CI (`xent bench --device-class gpu`), not a way to go faster.
    ///
    /// ```
    /// let ctx = xent::Context::from_env()?.with_device_class(xent::DeviceClass::Gpu);
    /// assert_eq!(ctx.device_class(), xent::DeviceClass::Gpu);
    /// // ln(e^0.5 + e^2 + e^-1) - 2 = 0.2413
    /// let out = ctx.cross_entropy(&[0.5f32, 2.0, -1.0], &[1, 3], &[1i64], None,
    ///     &Default::default(), &Default::default())?;
    /// assert!((out.loss[0] - 0.2413).abs() < 1e-4);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn with_device_class(mut self, class: DeviceClass) -> Self {
        self.profile = DeviceProfile::of(&self.device, Some(class));
        self
    }

    /// Bytes of device scratch the context holds now between calls: the
    /// cross-entropy's per-row scratch, the fused linear
    /// cross-entropy's window of logits and the products' split-k partial
    /// sums ([`SplitK`](crate::SplitK)), each grown to the largest call so
    /// far (the 16-byte placeholders of absent buffers not counted).
    ///
    /// ```
    /// let ctx = xent::Context::from_env()?;
    /// assert_eq!(ctx.scratch_bytes(), 0);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn scratch_bytes(&self) -> u64 {
        let s = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        s.held_bytes()
    }

    /// One line naming the adapter, its backend and driver.
    ///
    /// ```
    /// let ctx = xent::Context::from_env()?;
    /// assert!(!ctx.adapter_summary().is_empty());
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn adapter_summary(&self) -> String {
        let info = self.adapter_info();
        format!(
            "{} ({:?}, {:?}, driver {} {})",
            info.name, info.backend, info.device_type, info.driver, info.driver_info
        )
    }
}
