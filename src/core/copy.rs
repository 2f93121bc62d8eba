//! The bandwidth reference of the benchmarks: a vec4 copy kernel.

use super::shaders::COPY_WGSL;
use super::Context;
use crate::error::Result;

impl Context {
    /// Records a vec4 copy of `src` into `dst` (whole vec4s of `dst`): the
    /// bandwidth reference of `bench`. Buffers larger than one binding are
    /// copied a binding-sized piece at a time, in one pass.
    pub(crate) fn record_copy(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        src: &wgpu::Buffer,
        dst: &wgpu::Buffer,
        timestamp_writes: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) -> Result<()> {
        let align = self.offset_alignment();
        let copy = self.pipeline(("copy", 0), || COPY_WGSL.to_string(), "copy_vec4", &[])?;
        let piece = self.device.limits().max_storage_buffer_binding_size / align * align;
        let total = dst.size().min(src.size()) & !15;
        let mut pieces = Vec::new();
        let mut offset = 0;
        while offset < total {
            let size = (total - offset).min(piece);
            let group =
                self.bind_ranges(&copy, &[(0, src, (offset, size)), (1, dst, (offset, size))]);
            // Enough invocations to fill any device, few enough to amortise launches.
            pieces.push((group, (size / 16).div_ceil(64).min(4096) as u32));
            offset += size;
        }
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("xent copy"),
            timestamp_writes,
        });
        pass.set_pipeline(&copy);
        for (group, groups) in &pieces {
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(*groups, 1, 1);
        }
        Ok(())
    }
}
