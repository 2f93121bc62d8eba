//! Scratch buffers reused across calls, and buffers made through a mapping
//! at creation (so a lost device is an error, not a panic).

use crate::error::{gpu_error, one_line, Error, GpuScope, Result};

/// Scratch buffers reused across calls. Passes recorded by separate calls run
/// in submission order on the one queue, so reuse never races.
pub(crate) struct Scratch {
    /// [denominator, sum of class weights, 0, 0] then a correct-flag per row; grown on demand.
    pub aux: Option<wgpu::Buffer>,
    /// Per-row losses for `mean` and `sum`; grown on demand.
    pub row_loss: Option<wgpu::Buffer>,
    /// The fused linear cross-entropy's window of logits; grown on demand.
    pub window: Option<wgpu::Buffer>,
    /// Split k's partial sums of products; grown on demand.
    pub partials: Option<wgpu::Buffer>,
    /// Tiny buffers bound in place of absent optional ones.
    pub dummies: Dummies,
}

/// Bound in place of absent buffers: one read-only (weights) and a distinct
/// one per writable slot, since a bind group may not alias writable bindings.
#[derive(Clone)]
pub(crate) struct Dummies {
    pub read: wgpu::Buffer,
    pub grad: wgpu::Buffer,
    pub loss: wgpu::Buffer,
    pub lse: wgpu::Buffer,
    pub correct: wgpu::Buffer,
}

/// A buffer of `usage` holding `bytes`, zero-padded to whole vec4s (at least
/// one), written through its mapping at creation (no staging copy).
///
/// # Errors
/// [`Error::Gpu`](crate::Error::Gpu) when wgpu rejects the buffer (larger than the device's
/// `max_buffer_size`, out of memory); [`Error::DeviceLost`](crate::Error::DeviceLost) when the new
/// buffer cannot be mapped and wgpu reported no error: on a lost device wgpu
/// 30 creates every object invalid and reports nothing to error scopes.
pub(crate) fn buffer_with(
    device: &wgpu::Device,
    label: &str,
    bytes: &[u8],
    usage: wgpu::BufferUsages,
) -> Result<wgpu::Buffer> {
    let size = (bytes.len() as u64).next_multiple_of(16).max(16);
    let scope = GpuScope::push(device);
    let buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size,
        usage,
        mapped_at_creation: true,
    });
    let mapped = match buffer.get_mapped_range_mut(..) {
        Ok(mut view) => {
            view.slice(..bytes.len()).copy_from_slice(bytes);
            drop(view);
            buffer.unmap();
            Ok(())
        }
        // An invalid buffer; not unmapped, which would be one more error.
        Err(e) => Err(e),
    };
    let what = || format!("creating the {size}-byte buffer `{label}`");
    match (scope.caught(), mapped) {
        (Some(e), _) => Err(gpu_error(&what(), &e)),
        (None, Err(e)) => Err(Error::DeviceLost(format!("{}: {}", what(), one_line(&e)))),
        (None, Ok(())) => Ok(buffer),
    }
}

/// `Ok` while `device` works, [`Error::DeviceLost`](crate::Error::DeviceLost) once it is lost (see
/// [`buffer_with`]: the probe is a 16-byte buffer mapped at creation).
pub(crate) fn check_alive(device: &wgpu::Device) -> Result<()> {
    buffer_with(
        device,
        "xent device check",
        &[],
        wgpu::BufferUsages::COPY_DST,
    )
    .map(drop)
}

impl Scratch {
    pub(crate) fn new(device: &wgpu::Device) -> Self {
        let small = |label: &str| storage(device, label, 16);
        Self {
            aux: None,
            row_loss: None,
            window: None,
            partials: None,
            dummies: Dummies {
                read: small("xent absent weights"),
                grad: small("xent absent grad"),
                loss: small("xent absent loss"),
                lse: small("xent absent lse"),
                correct: small("xent absent correct"),
            },
        }
    }

    /// The aux buffer, of at least `bytes`, reused while large enough.
    pub fn aux(&mut self, device: &wgpu::Device, bytes: u64) -> Result<wgpu::Buffer> {
        grown(&mut self.aux, device, "xent aux", bytes)
    }

    /// The fused linear cross-entropy's logits window, of at least `bytes`.
    pub fn window(&mut self, device: &wgpu::Device, bytes: u64) -> Result<wgpu::Buffer> {
        grown(&mut self.window, device, "xent logits window", bytes)
    }

    /// Split k's partial sums, of at least `bytes`.
    pub fn partials(&mut self, device: &wgpu::Device, bytes: u64) -> Result<wgpu::Buffer> {
        grown(
            &mut self.partials,
            device,
            "xent split-k partial sums",
            bytes,
        )
    }

    /// Bytes of the scratch buffers held now (not the 16-byte placeholders).
    pub fn held_bytes(&self) -> u64 {
        [&self.aux, &self.row_loss, &self.window, &self.partials]
            .iter()
            .filter_map(|b| b.as_ref().map(wgpu::Buffer::size))
            .sum()
    }

    /// A per-row loss buffer of at least `bytes`, reused while large enough.
    pub fn row_loss(&mut self, device: &wgpu::Device, bytes: u64) -> Result<wgpu::Buffer> {
        grown(&mut self.row_loss, device, "xent row losses", bytes)
    }
}

fn storage(device: &wgpu::Device, label: &str, size: u64) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    })
}

/// The buffer in `slot`, replaced by a larger one when it holds fewer than
/// `bytes`. A buffer wgpu refused (out of memory) is not kept.
fn grown(
    slot: &mut Option<wgpu::Buffer>,
    device: &wgpu::Device,
    label: &str,
    bytes: u64,
) -> Result<wgpu::Buffer> {
    match slot {
        Some(b) if b.size() >= bytes => Ok(b.clone()),
        _ => {
            let scope = GpuScope::push(device);
            let b = storage(device, label, bytes.max(16));
            scope.pop(&format!("creating the {}-byte buffer `{label}`", b.size()))?;
            *slot = Some(b.clone());
            Ok(b)
        }
    }
}
