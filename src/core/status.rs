//! The status buffer an op reports bad input in: its size, the words it
//! holds, and the trait every op's typed status decodes them with.

/// Size in bytes of a status buffer: four little-endian 32-bit words, whose
/// meaning is the op's ([`CrossEntropyStatus`](crate::CrossEntropyStatus),
/// [`ElementwiseStatus`](crate::ElementwiseStatus)).
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// let ctx = xent::Context::from_env()?;
/// let status = ctx.device().create_buffer(&wgpu::BufferDescriptor { label: Some("status"),
///     size: xent::STATUS_SIZE, usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
///     mapped_at_creation: false });
/// # let _ = status;
/// # Ok(()) }
/// ```
pub const STATUS_SIZE: u64 = 16;

/// What an op found wrong with its input, as decoded from the
/// [`STATUS_SIZE`] bytes of the status buffer it wrote: each op has its own
/// type, whose fields mean one thing. Decode bytes you copied into your own
/// staging buffer with `from_bytes`, or read a status buffer with
/// [`Context::read_status`](crate::Context::read_status).
///
/// ```
/// use xent::{CrossEntropyStatus, OpStatus};
/// let s = CrossEntropyStatus::from_bytes(&[0u8; 16]);
/// assert_eq!(s, CrossEntropyStatus::default());
/// ```
pub trait OpStatus: Sized {
    /// Decodes the [`STATUS_SIZE`] bytes of a status buffer (missing bytes
    /// read as zeros).
    fn from_bytes(bytes: &[u8]) -> Self;
}

/// The four words of a status buffer's bytes, missing ones zero.
pub(crate) fn words(bytes: &[u8]) -> [u32; 4] {
    std::array::from_fn(|i| {
        bytes
            .get(4 * i..4 * i + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    })
}
