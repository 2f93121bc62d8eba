//! Moving data between the host and the device for the host API: uploads
//! through a mapping at creation, readbacks through staging buffers, the
//! status buffer.

use super::scratch::{buffer_with, check_alive};
use super::status::{OpStatus, STATUS_SIZE};
use super::Context;
use crate::error::{Error, GpuScope, Result};

pub(crate) const STORAGE_IN: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE;
pub(crate) const STORAGE_OUT: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC);

impl Context {
    /// An input buffer with `bytes`, padded with zeros to whole vec4s (so
    /// every kernel may read the input in vec4s), written straight into the
    /// mapped buffer (no intermediate copy).
    pub(crate) fn upload(&self, label: &str, bytes: &[u8]) -> Result<wgpu::Buffer> {
        self.upload_as(label, bytes, STORAGE_IN)
    }

    /// An output buffer of `elems` 4-byte values (at least one) that the
    /// host API reads back.
    pub(crate) fn output(&self, label: &str, elems: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (elems as u64 * 4).max(4),
            usage: STORAGE_OUT,
            mapped_at_creation: false,
        })
    }

    pub(crate) fn upload_as(
        &self,
        label: &str,
        bytes: &[u8],
        usage: wgpu::BufferUsages,
    ) -> Result<wgpu::Buffer> {
        buffer_with(&self.device, label, bytes, usage)
    }

    /// [`Error::InvalidShape`](crate::Error::InvalidShape) when a buffer the host API would make for
    /// `dims` exceeds the device's largest buffer (`max_buffer_size`), rather
    /// than a validation error from wgpu.
    pub(crate) fn check_buffer_sizes(&self, dims: &[usize], sizes: &[(&str, u64)]) -> Result<()> {
        let max = self.device.limits().max_buffer_size;
        for &(what, bytes) in sizes {
            // Uploads are padded to whole vec4s.
            let need = bytes.next_multiple_of(16);
            if need > max {
                return Err(Error::InvalidShape {
                    shape: dims.to_vec(),
                    reason: format!(
                        "the {what} needs a {need}-byte buffer, more than the device's largest \
                         buffer (max_buffer_size) of {max} bytes"
                    ),
                });
            }
        }
        Ok(())
    }
}

impl Context {
    /// Reads a status region an op wrote (submits a copy and waits) as
    /// that op's status type `S` ([`CrossEntropyStatus`](crate::CrossEntropyStatus)
    /// for cross-entropy, the fused op and the vocabulary finishes;
    /// [`ElementwiseStatus`](crate::ElementwiseStatus) for the elementwise
    /// losses). The buffer needs `COPY_SRC` usage. In a one-submit loop,
    /// copy the status into your own staging buffer instead and decode its
    /// bytes with [`OpStatus::from_bytes`](crate::OpStatus::from_bytes).
    ///
    /// # Errors
    /// [`Error::BadBuffer`](crate::Error::BadBuffer) for a region too small, at an offset not a
    /// multiple of 4, or without `COPY_SRC`; [`Error::Gpu`](crate::Error::Gpu) (e.g. a buffer of
    /// another device); [`Error::DeviceLost`](crate::Error::DeviceLost).
    ///
    /// ```
    /// # fn demo(ctx: &xent::Context, status: &wgpu::Buffer) -> Result<(), xent::Error> {
    /// let s: xent::CrossEntropyStatus = ctx.read_status(status.slice(..))?;
    /// s.check(&xent::Layout::from_dims(&[3, 5])?, -100)?;
    /// # Ok(()) }
    /// ```
    pub fn read_status<S: OpStatus>(&self, status: wgpu::BufferSlice<'_>) -> Result<S> {
        let buffer = status.buffer();
        if status.size() < STATUS_SIZE
            || !status.offset().is_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT)
            || !buffer.usage().contains(wgpu::BufferUsages::COPY_SRC)
        {
            return Err(Error::BadBuffer {
                what: "status",
                reason: format!(
                    "{} bytes at offset {} with usage {:?}; need {STATUS_SIZE} bytes at a \
                     multiple of 4, and COPY_SRC",
                    status.size(),
                    status.offset(),
                    buffer.usage()
                ),
            });
        }
        let _guard = self.host_lock.lock().unwrap_or_else(|e| e.into_inner());
        check_alive(&self.device)?;
        let scope = GpuScope::push(&self.device);
        let copy = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("xent status copy"),
            size: STATUS_SIZE,
            usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer, status.offset(), &copy, 0, STATUS_SIZE);
        let bytes = self.download(encoder, &[&copy]);
        scope.pop("reading a status buffer")?;
        let bytes = bytes?;
        Ok(S::from_bytes(bytes.first().map_or(&[][..], |b| b)))
    }

    /// Finishes `encoder` with copies of `buffers` into mappable staging
    /// buffers, submits, waits, and returns their bytes in order.
    pub(crate) fn download(
        &self,
        mut encoder: wgpu::CommandEncoder,
        buffers: &[&wgpu::Buffer],
    ) -> Result<Vec<Vec<u8>>> {
        let staging: Vec<wgpu::Buffer> = buffers
            .iter()
            .map(|b| {
                let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("xent readback"),
                    size: b.size(),
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                encoder.copy_buffer_to_buffer(b, 0, &staging, 0, b.size());
                staging
            })
            .collect();
        self.queue.submit([encoder.finish()]);
        let receivers: Vec<_> = staging
            .iter()
            .map(|s| {
                let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
                s.slice(..).map_async(wgpu::MapMode::Read, move |r| {
                    let _ = tx.send(r);
                });
                rx
            })
            .collect();
        // wgpu 30's `Device::poll` panics, rather than returning an error,
        // when the driver reports the device lost (or out of memory) while
        // waiting; here that is an error like any other.
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.device.poll(wgpu::PollType::wait_indefinitely())
        }));
        match polled {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(Error::Gpu(format!("waiting for the GPU: {e}"))),
            Err(panic) => {
                check_alive(&self.device)?;
                let message = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("no message");
                return Err(crate::error::gpu_error(
                    "waiting for the GPU (wgpu panicked)",
                    &message,
                ));
            }
        }
        staging
            .iter()
            .zip(receivers)
            .map(|(s, rx)| match pollster::block_on(rx.receive()) {
                Some(Ok(())) => {
                    let bytes = s
                        .get_mapped_range(..)
                        .map(|v| v.to_vec())
                        .map_err(|e| Error::Gpu(format!("reading back: {e}")))?;
                    s.unmap();
                    Ok(bytes)
                }
                Some(Err(e)) => Err(Error::Gpu(format!("mapping a readback buffer: {e}"))),
                None => Err(Error::Gpu("a readback buffer was never mapped".into())),
            })
            .collect()
    }
}

pub(crate) fn to_f32(bytes: &[u8], elems: usize) -> Vec<f32> {
    let mut v: Vec<f32> = bytes
        .chunks_exact(4)
        .take(elems)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    // A failed readback (already reported by the error scope) leaves NaN, never zeros.
    v.resize(elems, f32::NAN);
    v
}
