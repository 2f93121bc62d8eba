//! What a device needs for xent, said up front: the limits every op fits,
//! and the features xent uses where a device has them.

use crate::error::{Error, Result};

/// The limits to request for a device that runs every xent op: wgpu's
/// downlevel defaults (`wgpu::Limits::downlevel_defaults()`, what most GPUs
/// of the last decade and the software adapters offer) with WebGPU's
/// default of 8 storage buffers per shader stage, which the kernels with
/// the most bindings use. WebGPU's defaults (`wgpu::Limits::default()`)
/// meet every one of them.
///
/// [`Context::new`](crate::Context::new) refuses a device below them in
/// what the kernels need as they are: bind groups and bindings, storage and
/// uniform buffers per stage, the uniform's size, workgroup size and
/// workgroup memory, offset alignments. Below them in sizes (the largest
/// buffer, the largest storage binding, workgroups per grid dimension) a
/// device still works: tensors past one binding are processed a binding at
/// a time, grids spill into a second dimension, and a tensor past the
/// largest buffer is a typed error of its call.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
/// # let Ok(adapter) = pollster::block_on(instance.request_adapter(&Default::default())) else { return Ok(()) };
/// let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
///     required_limits: xent::required_limits(),
///     required_features: adapter.features() & xent::optional_features(),
///     ..Default::default()
/// }))?;
/// let ctx = xent::Context::new(device, queue)?;
/// # Ok(()) }
/// ```
pub fn required_limits() -> wgpu::Limits {
    wgpu::Limits {
        max_storage_buffers_per_shader_stage: 8,
        ..wgpu::Limits::downlevel_defaults()
    }
}

/// Features xent uses where the device has them, and needs none of:
/// `SHADER_F16` (f16 storage, [`Precision::F16`](crate::Precision::F16);
/// without it such calls are an [`Error::Unsupported`]), `SUBGROUP` (row
/// reductions by shuffles on the row-wide kernels), `TIMESTAMP_QUERY` (the
/// benchmarks' GPU times).
///
/// ```
/// assert!(xent::optional_features().contains(wgpu::Features::SHADER_F16));
/// ```
pub fn optional_features() -> wgpu::Features {
    wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY
}

/// [`Error::DeviceLimit`] naming the first limit the kernels need as they
/// are (see [`required_limits`]) that the device's `limits` fall short of.
pub(crate) fn check(limits: &wgpu::Limits) -> Result<()> {
    let need = required_limits();
    // (name, needed, the device's, whether more is better)
    macro_rules! limits {
        ($($name:ident $more:literal),* $(,)?) => {
            [$((stringify!($name), u64::from(need.$name), u64::from(limits.$name), $more)),*]
        };
    }
    let fixed = limits![
        max_bind_groups true,
        max_bindings_per_bind_group true,
        max_storage_buffers_per_shader_stage true,
        max_uniform_buffers_per_shader_stage true,
        max_uniform_buffer_binding_size true,
        max_compute_workgroup_storage_size true,
        max_compute_invocations_per_workgroup true,
        max_compute_workgroup_size_x true,
        min_storage_buffer_offset_alignment false,
        min_uniform_buffer_offset_alignment false,
    ];
    let short = fixed
        .into_iter()
        .find(|&(_, needed, actual, more_is_better)| {
            if more_is_better {
                actual < needed
            } else {
                actual > needed
            }
        });
    match short {
        Some((limit, needed, actual, _)) => Err(Error::DeviceLimit {
            limit,
            needed,
            actual,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webgpu_defaults_meet_the_requirements_and_downlevel_ones_do_not() {
        check(&wgpu::Limits::default()).unwrap();
        check(&required_limits()).unwrap();
        let err = check(&wgpu::Limits::downlevel_defaults()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::DeviceLimit {
                    limit: "max_storage_buffers_per_shader_stage",
                    needed: 8,
                    actual: 4
                }
            ),
            "{err}"
        );
        // Sizes below the request still work (chunks, spilled grids).
        let small = wgpu::Limits {
            max_storage_buffer_binding_size: 1 << 16,
            max_buffer_size: 1 << 20,
            max_compute_workgroups_per_dimension: 160,
            ..required_limits()
        };
        check(&small).unwrap();
        // An alignment coarser than required is a shortfall too.
        let coarse = wgpu::Limits {
            min_storage_buffer_offset_alignment: 512,
            ..wgpu::Limits::default()
        };
        let err = check(&coarse).unwrap_err();
        assert!(
            err.to_string()
                .contains("min_storage_buffer_offset_alignment"),
            "{err}"
        );
    }
}
