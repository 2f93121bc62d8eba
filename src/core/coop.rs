//! Cooperative matrices (tensor cores): whether a device offers what the
//! cooperative product kernel (`shaders/matmul/coop_native.wgsl`) is written
//! for, and the one place xent opts in to wgpu's experimental features.

/// The sizes of the kernel's matrices: 16 × 16 × 16.
const SIDE: u32 = 16;
/// The kernel's workgroup, which must be one subgroup: the matrices are
/// subgroup-scoped, and a workgroup of several would compute each tile
/// once per subgroup.
pub(crate) const COOP_SUBGROUP: u32 = 32;

/// Whether `properties` (an adapter's
/// `cooperative_matrix_properties()`) list f16 16 × 16 × 16 products
/// accumulated in f32, and `info` says every subgroup has 32 invocations.
///
/// ```
/// use wgpu::{CooperativeMatrixProperties as P, CooperativeScalarType as T};
/// let f16 = P { m_size: 16, n_size: 16, k_size: 16, ab_type: T::F16, cr_type: T::F32,
///     saturating_accumulation: false };
/// let f32_8 = P { m_size: 8, n_size: 8, k_size: 8, ab_type: T::F32, ..f16 };
/// assert!(xent::offers_cooperative_products(&[f32_8, f16], 32, 32));
/// assert!(!xent::offers_cooperative_products(&[f32_8], 32, 32));
/// assert!(!xent::offers_cooperative_products(&[f16], 32, 64)); // subgroups of 32 or 64
/// ```
pub fn offers_cooperative_products(
    properties: &[wgpu::CooperativeMatrixProperties],
    subgroup_min_size: u32,
    subgroup_max_size: u32,
) -> bool {
    let config = properties.iter().any(|p| {
        (p.m_size, p.n_size, p.k_size) == (SIDE, SIDE, SIDE)
            && p.ab_type == wgpu::CooperativeScalarType::F16
            && p.cr_type == wgpu::CooperativeScalarType::F32
    });
    config && subgroup_min_size == COOP_SUBGROUP && subgroup_max_size == COOP_SUBGROUP
}

/// The device features the kernel needs: the matrices, and f16 (its tiles
/// are f16 in workgroup memory).
pub(crate) const COOP_FEATURES: wgpu::Features =
    wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX.union(wgpu::Features::SHADER_F16);

/// Whether `adapter` offers the features and the configuration.
pub(crate) fn adapter_offers(adapter: &wgpu::Adapter) -> bool {
    let info = adapter.get_info();
    adapter.features().contains(COOP_FEATURES)
        && offers_cooperative_products(
            &adapter.cooperative_matrix_properties(),
            info.subgroup_min_size,
            info.subgroup_max_size,
        )
}

/// wgpu's opt-in to its experimental features, given only where
/// `cooperative` (the adapter offers what the kernel uses).
///
/// Why this is sound to request: wgpu marks these features experimental
/// because its implementation may have bugs, undefined behaviour among
/// them, reachable from safe calls. xent reaches the feature through one
/// pipeline, `matmul_coop` of `coop_native.wgsl`, built only on such a
/// device and only when a product asks for it by name
/// (`ProductKernel::Coop`). Every other pipeline uses no
/// experimental feature. The module avoids the bugs known in naga 30
/// (arguments of `coopStoreT` computed inline are emitted after the store;
/// without a variable of a matrix type the SPIR-V lacks its extension):
/// its store arguments are `let`-bound and its accumulators are variables,
/// and `cargo test` validates the module and lowers it to SPIR-V on every
/// machine. Its cooperative loads and stores touch workgroup memory only,
/// at offsets whose whole 16 × 16 reach lies inside their arrays (naga
/// clamps only a load's first index). Its results are held to the f64 CPU
/// twin by `benches/device.sh` on sampled rows, and its emulation, the same
/// source with plain WGSL for the matrix operations, by the property tests.
/// Only contexts xent opens itself ask for it ([`Context::from_env`],
/// [`Context::from_backends`]); their device, which [`Context::device`]
/// hands out, then has the feature, and a caller's own pipeline that
/// enables `wgpu_cooperative_matrix` on it is the caller's choice to argue.
/// [`headless_device`](crate::headless_device) never asks for it.
///
/// [`Context::from_env`]: crate::Context::from_env
/// [`Context::from_backends`]: crate::Context::from_backends
/// [`Context::device`]: crate::Context::device
pub(crate) fn experimental_features(cooperative: bool) -> wgpu::ExperimentalFeatures {
    if cooperative {
        // SAFETY: argued above: one validated pipeline, within its arrays.
        unsafe { wgpu::ExperimentalFeatures::enabled() }
    } else {
        wgpu::ExperimentalFeatures::disabled()
    }
}
