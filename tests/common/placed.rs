//! Buffers placed at offsets: a tensor stored in a region that starts some
//! bytes into its buffer and reaches some bytes past the tensor, with filler
//! around it, for the tests that hold a call's bits to be the same whatever
//! the region (`same_bits` of each op).

use wgpu::util::DeviceExt;
use xent::Precision;

use super::{read_bytes, Rng};

/// `values` stored in `precision`, as bytes.
pub fn stored(values: &[f32], precision: Precision) -> Vec<u8> {
    match precision {
        Precision::F32 => bytemuck::cast_slice(values).to_vec(),
        Precision::F16 => values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
        _ => values
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect(),
    }
}

/// Where a call's tensors lie: each in a region starting `at` bytes into
/// its buffer (filler before it) and reaching `pad` bytes past the tensor's
/// bytes rounded up to a word (filler after it).
#[derive(Clone, Copy, Debug)]
pub struct Place {
    pub at: u64,
    pub pad: u64,
}

/// Exactly the tensor's words.
pub const EXACT: Place = Place { at: 0, pad: 0 };
/// 16 bytes more: where vec4 views reach past the last element.
pub const PADDED: Place = Place { at: 0, pad: 16 };
/// A region 256 bytes into its buffer: a multiple of every device's
/// storage offset alignment (256 at most).
pub const OFFSET: Place = Place { at: 256, pad: 0 };

/// A buffer holding `contents` placed as `place` says; filler is 0x5a.
pub fn placed(ctx: &xent::Context, contents: &[u8], place: Place) -> wgpu::Buffer {
    let mut bytes = vec![0x5a; place.at as usize];
    bytes.extend_from_slice(contents);
    let end = (bytes.len() as u64).next_multiple_of(4) + place.pad;
    bytes.resize(end as usize, 0x5a);
    ctx.device()
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("same bits"),
            contents: &bytes,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        })
}

/// The region of a buffer made by [`placed`].
pub fn region(buffer: &wgpu::Buffer, place: Place) -> wgpu::BufferSlice<'_> {
    buffer.slice(place.at..)
}

/// The first `len` bytes of the region.
pub fn read_region(
    ctx: &xent::Context,
    buffer: &wgpu::Buffer,
    place: Place,
    len: usize,
) -> Vec<u8> {
    let at = place.at as usize;
    read_bytes(ctx, buffer)[at..at + len].to_vec()
}

/// Logits in [-8, 8) of (rows, classes) `dims` and a class per row.
pub fn rows_and_classes(dims: &[usize], seed: u64) -> (Vec<f32>, Vec<i32>) {
    let mut rng = Rng(seed);
    let (rows, classes) = (dims[0], dims[1]);
    let x = (0..rows * classes)
        .map(|_| rng.uniform(-8.0, 8.0))
        .collect();
    let t = (0..rows).map(|_| rng.below(classes) as i32).collect();
    (x, t)
}
