//! Binding and dispatch plumbing every op shares: uniforms, bind groups over
//! whole buffers or ranges, the chunks of a tensor larger than one binding,
//! dispatch grids past the per-dimension limit, and the checks of a caller's
//! buffers.

use super::scratch::buffer_with;
use super::Context;
use crate::core::shape::Layout;
use crate::error::{Error, Result};

/// A region of a buffer held by value (a clone of the buffer's handle):
/// what an op keeps of a caller's `wgpu::BufferSlice`, or of a buffer of
/// its own bound from its start, past the borrow.
#[derive(Clone, Debug)]
pub(crate) struct Region {
    pub buffer: wgpu::Buffer,
    pub offset: u64,
    pub size: u64,
}

impl Region {
    /// The region `slice` names.
    pub(crate) fn of(slice: wgpu::BufferSlice<'_>) -> Self {
        Self {
            buffer: slice.buffer().clone(),
            offset: slice.offset(),
            size: slice.size(),
        }
    }
    /// All of `buffer`.
    pub(crate) fn whole(buffer: &wgpu::Buffer) -> Self {
        Self {
            buffer: buffer.clone(),
            offset: 0,
            size: buffer.size(),
        }
    }
    /// The region as wgpu's slice.
    pub(crate) fn slice(&self) -> wgpu::BufferSlice<'_> {
        self.buffer.slice(self.offset..self.offset + self.size)
    }
}

impl Context {
    /// A uniform buffer holding `bytes`; [`Error::DeviceLost`](crate::Error::DeviceLost) on a lost device.
    pub(crate) fn uniform(&self, label: &str, bytes: &[u8]) -> Result<wgpu::Buffer> {
        buffer_with(&self.device, label, bytes, wgpu::BufferUsages::UNIFORM)
    }
    /// A bind group of byte ranges `(slot, buffer, (offset, size))`.
    pub(crate) fn bind_ranges(
        &self,
        pipeline: &wgpu::ComputePipeline,
        entries: &[(u32, &wgpu::Buffer, (u64, u64))],
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry<'_>> = entries
            .iter()
            .map(|&(binding, buffer, (offset, size))| wgpu::BindGroupEntry {
                binding,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer,
                    offset,
                    size: wgpu::BufferSize::new(size),
                }),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("xent bind group"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        })
    }
    /// Ranges of the outer axis `[n0, n1)` whose slice of an input-sized
    /// tensor fits one storage binding even when its binding starts up to one
    /// offset alignment early (`chunk_range`). One chunk when the whole tensor
    /// fits. `elem` is the largest element size bound per chunk: the input's,
    /// or 4 with probability targets (f32 whatever the input's precision).
    /// Each chunk leaves room for one offset alignment and one vec4 (the
    /// binding starts up to an alignment early and may end on a whole vec4).
    pub(crate) fn chunks(&self, layout: &Layout, elem: u64) -> Result<Vec<(usize, usize)>> {
        // A chunk's elements are indexed with u32s in the kernels: below
        // 2^32 bytes, they are below 2^31 elements of 2 bytes or more.
        let max = self
            .device
            .limits()
            .max_storage_buffer_binding_size
            .min(u64::from(u32::MAX));
        let slab = (layout.classes * layout.inner) as u64 * elem;
        if (slab * layout.outer as u64).next_multiple_of(16) <= max {
            return Ok(vec![(0, layout.outer)]);
        }
        let room = self.offset_alignment() + 16;
        let per = max.saturating_sub(room) / slab;
        if per == 0 {
            return Err(Error::InvalidShape {
                shape: layout.dims.clone(),
                reason: format!(
                    "one slice along the class axis ({slab} bytes, plus {room} for alignment) does \
                     not fit the device's largest storage binding of {max} bytes; larger tensors \
                     are split along the first axis only"
                ),
            });
        }
        let per = per as usize;
        Ok((0..layout.outer)
            .step_by(per)
            .map(|n0| (n0, (n0 + per).min(layout.outer)))
            .collect())
    }
    /// The device's storage-buffer offset alignment (at least 16 bytes, a vec4).
    pub(crate) fn offset_alignment(&self) -> u64 {
        u64::from(self.device.limits().min_storage_buffer_offset_alignment).max(16)
    }
    /// The binding of elements `[e0, e1)` of `elem` bytes each of a region:
    /// `(offset, size, element shift)` relative to the region's start, where
    /// the offset is `e0`'s byte position rounded down to the offset
    /// alignment (the region's start is aligned: checked, so the offset in
    /// the buffer is too), the size covers `e1` rounded up to a word, and
    /// element `e0` is `shift` elements into the binding. Regions of
    /// different offsets share one shift.
    pub(crate) fn chunk_range(&self, e0: u64, e1: u64, elem: u64) -> (u64, u64, u64) {
        let align = self.offset_alignment();
        let offset = e0 * elem / align * align;
        let size = (e1 * elem).next_multiple_of(4) - offset;
        (offset, size, (e0 * elem - offset) / elem)
    }
    /// `region` bound from its start: clamped to the largest binding and
    /// to whole units of `unit` bytes (4: words, 16: vec4s). A caller's
    /// region may be larger than the device binds; the kernels never index
    /// past what the shape needs (checked).
    pub(crate) fn whole_range(&self, region: wgpu::BufferSlice<'_>, unit: u64) -> (u64, u64) {
        let max_binding = self.device.limits().max_storage_buffer_binding_size;
        (
            region.offset(),
            region.size().min(max_binding) & !(unit - 1),
        )
    }
    /// Each region bound from its start, in words ([`Context::whole_range`](crate::Context::whole_range)).
    pub(crate) fn bind(
        &self,
        pipeline: &wgpu::ComputePipeline,
        entries: &[(u32, wgpu::BufferSlice<'_>)],
    ) -> wgpu::BindGroup {
        let entries: Vec<_> = entries
            .iter()
            .map(|&(binding, region)| (binding, region.buffer(), self.whole_range(region, 4)))
            .collect();
        self.bind_ranges(pipeline, &entries)
    }
    /// Spreads `groups` workgroups over x and y so neither exceeds the
    /// device's per-dimension limit; kernels rebuild the index as x + y·nx.
    pub(crate) fn grid(&self, groups: usize) -> Result<(u32, u32)> {
        let max = self.device.limits().max_compute_workgroups_per_dimension as usize;
        let x = groups.min(max);
        let y = groups.div_ceil(x);
        if y > max {
            return Err(Error::BadBuffer {
                what: "logits",
                reason: format!("{groups} workgroups exceed the device's {max} x {max} grid"),
            });
        }
        Ok((x as u32, y as u32))
    }
    /// A caller's region: STORAGE usage, at least `elems` 4-byte elements,
    /// and within the device's largest storage binding.
    pub(crate) fn check_buffer(
        &self,
        what: &'static str,
        region: wgpu::BufferSlice<'_>,
        elems: u64,
    ) -> Result<()> {
        self.check_size(what, region, elems)?;
        let need = elems * 4;
        let max = self.device.limits().max_storage_buffer_binding_size;
        if need > max {
            return Err(Error::BadBuffer {
                what,
                reason: format!(
                    "the shape needs {need} bytes, more than the device's largest storage binding of {max} bytes"
                ),
            });
        }
        Ok(())
    }
    /// A caller's region: STORAGE usage and at least `elems` 4-byte elements.
    pub(crate) fn check_size(
        &self,
        what: &'static str,
        region: wgpu::BufferSlice<'_>,
        elems: u64,
    ) -> Result<()> {
        self.check_bytes(what, region, elems * 4)
    }
    /// A caller's region: STORAGE usage, an offset the device can bind
    /// ([`Error::BadOffset`]), at least `need` bytes, not mapped.
    pub(crate) fn check_bytes(
        &self,
        what: &'static str,
        region: wgpu::BufferSlice<'_>,
        need: u64,
    ) -> Result<()> {
        let buffer = region.buffer();
        if !buffer.usage().contains(wgpu::BufferUsages::STORAGE) {
            return Err(Error::BadBuffer {
                what,
                reason: format!("usage {:?} lacks STORAGE", buffer.usage()),
            });
        }
        let alignment = self.offset_alignment();
        if region.offset() % alignment != 0 {
            return Err(Error::BadOffset {
                what,
                offset: region.offset(),
                alignment,
            });
        }
        if region.size() < need {
            let whole = if region.size() == buffer.size() {
                String::new()
            } else {
                format!(
                    " (a region at offset {} of a {}-byte buffer)",
                    region.offset(),
                    buffer.size()
                )
            };
            return Err(Error::BadBuffer {
                what,
                reason: format!("{} bytes{whole}, but the shape needs {need}", region.size()),
            });
        }
        if is_mapped(buffer) {
            return Err(Error::BadBuffer {
                what,
                reason: "the buffer is mapped: unmap it before recording (a submission that \
                         uses a mapped buffer fails)"
                    .into(),
            });
        }
        Ok(())
    }
}

/// Whether `buffer` is mapped, as far as wgpu lets xent see (it has no map
/// state): a view of its first word can be had. A map still pending, or one
/// whose first word is held in a view already, is not seen.
fn is_mapped(buffer: &wgpu::Buffer) -> bool {
    buffer.size() >= 4 && buffer.slice(0..4).get_mapped_range().is_ok()
}

pub(crate) fn no_aliasing(buffers: &[(&'static str, wgpu::BufferSlice<'_>)]) -> Result<()> {
    written_apart(buffers, &[])
}

/// Each of `written` lies in a buffer apart from every other region given
/// (the regions in `read` may share buffers among themselves: reading one
/// buffer twice is sound): [`Error::BadBuffer`] naming the written one
/// otherwise. Disjoint regions of one buffer count as the same buffer:
/// wgpu tracks a dispatch's use of a buffer as a whole, so a buffer read and
/// written in one dispatch is a usage conflict whatever the ranges.
pub(crate) fn written_apart(
    written: &[(&'static str, wgpu::BufferSlice<'_>)],
    read: &[(&'static str, wgpu::BufferSlice<'_>)],
) -> Result<()> {
    for (i, &(name, w)) in written.iter().enumerate() {
        for &(other, o) in written[i + 1..].iter().chain(read) {
            if w.buffer() == o.buffer() {
                return Err(Error::BadBuffer {
                    what: name,
                    reason: format!(
                        "it lies in the same buffer as `{other}` (a buffer written by a call \
                         holds no other of its regions)"
                    ),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod wgsl {
    //! Reading WGSL structs with naga, for the tests that hold each Rust
    //! mirror of a uniform to its WGSL.

    /// The size and the (name, offset) of each member of WGSL struct `name`.
    pub(crate) fn wgsl_struct(source: &str, name: &str) -> (usize, Vec<(String, usize)>) {
        use wgpu::naga;
        let module = naga::front::wgsl::parse_str(source).unwrap();
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        let (_, ty) = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no struct {name}"));
        let naga::TypeInner::Struct { members, span } = &ty.inner else {
            panic!("{name} is not a struct")
        };
        let members = members
            .iter()
            .map(|m| (m.name.clone().unwrap_or_default(), m.offset as usize))
            .collect();
        (*span as usize, members)
    }

    /// The value of WGSL `const name: u32`.
    pub(crate) fn wgsl_u32(source: &str, name: &str) -> u32 {
        use wgpu::naga;
        let module = naga::front::wgsl::parse_str(source).unwrap();
        let (_, c) = module
            .constants
            .iter()
            .find(|(_, c)| c.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no const {name}"));
        match module.global_expressions[c.init] {
            naga::Expression::Literal(naga::Literal::U32(v)) => v,
            ref e => panic!("{name} is not a u32 literal: {e:?}"),
        }
    }

    /// (name, offset) of each field of a Rust struct, in order.
    macro_rules! wgsl_fields {
        ($t:ty: $($f:ident),* $(,)?) => {
            vec![$((stringify!($f).to_string(), std::mem::offset_of!($t, $f))),*]
        };
    }
    pub(crate) use wgsl_fields;
}
