//! The types of matrix products: a matrix in a caller's buffer, a call's
//! options and buffers, the kernel choice, and the product the kernels take.

use super::split::SplitK;
use crate::core::Context;
use crate::core::Precision;
use crate::error::{Error, Result};

/// A matrix stored in a caller's buffer: rows `stride` elements apart from
/// element `offset` on. Whether the product reads it as it is or as its
/// transpose is the call's option ([`MatmulOptions`]): `W` of shape
/// `(V, H)`, read transposed, is the `H × V` operand `Wᵀ` of `h·Wᵀ`.
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// let ctx = xent::Context::from_env()?;
/// let buffer = |size| ctx.device().create_buffer(&wgpu::BufferDescriptor {
///     label: None, size, usage: wgpu::BufferUsages::STORAGE, mapped_at_creation: false });
/// // Rows 2..4 of a (4, 8) f32 matrix, every other column: offset 16, stride 16.
/// let store = buffer(128);
/// let view = xent::MatrixView { offset: 16, stride: 16, ..xent::MatrixView::dense(store.slice(..), xent::Precision::F32, 8) };
/// # let _ = view;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct MatrixView<'a> {
    /// The region holding it (`buffer.slice(..)` for a whole buffer):
    /// `STORAGE` usage, from the context's device, starting at a multiple
    /// of the device's `min_storage_buffer_offset_alignment` (and of 16).
    pub buffer: wgpu::BufferSlice<'a>,
    /// The elements' type (f16 needs `SHADER_F16`; bf16 two to a `u32`).
    pub precision: Precision,
    /// Index, in elements from the region's start, of the first stored
    /// element (any index: it need not be aligned).
    pub offset: u64,
    /// Elements between the starts of neighbouring stored rows.
    pub stride: u64,
}

impl<'a> MatrixView<'a> {
    /// A dense row-major matrix of rows `cols` elements long from the region's start.
    ///
    /// ```
    /// # fn main() -> Result<(), xent::Error> {
    /// let ctx = xent::Context::from_env()?;
    /// let b = ctx.device().create_buffer(&wgpu::BufferDescriptor {
    ///     label: None, size: 64, usage: wgpu::BufferUsages::STORAGE, mapped_at_creation: false });
    /// let w = xent::MatrixView::dense(b.slice(..), xent::Precision::F32, 4);
    /// assert!(w.offset == 0 && w.stride == 4);
    /// # Ok(()) }
    /// ```
    pub fn dense(buffer: wgpu::BufferSlice<'a>, precision: Precision, cols: usize) -> Self {
        Self {
            buffer,
            precision,
            offset: 0,
            stride: cols as u64,
        }
    }
}

/// The options of a product at both API levels ([`Context::matmul`],
/// [`Context::record_matmul`]): whether each operand is read transposed
/// (as BLAS's `transa` and `transb`), the kernel, and the cut of k.
///
/// ```
/// let opts = xent::MatmulOptions { transpose_b: true, ..Default::default() };
/// assert_eq!(opts.kernel, xent::ProductKernel::Auto);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatmulOptions {
    /// `A` is read as the transpose of what its view holds (`k × m` stored).
    pub transpose_a: bool,
    /// `B` is read as the transpose of what its view holds (`n × k` stored).
    pub transpose_b: bool,
    /// The kernel; [`ProductKernel::Auto`] chooses by the device.
    pub kernel: ProductKernel,
    /// How k is cut into slices and how many run at once
    /// ([`SplitK::Auto`]: by the device and the product's shape).
    pub split_k: SplitK,
}

/// An operand as a product reads it: its view, and whether transposed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operand<'a> {
    pub view: MatrixView<'a>,
    pub transposed: bool,
}

impl<'a> Operand<'a> {
    /// `view` read as it is.
    pub(crate) fn plain(view: MatrixView<'a>) -> Self {
        Self {
            view,
            transposed: false,
        }
    }

    /// `view` read as its transpose.
    pub(crate) fn transposed(view: MatrixView<'a>) -> Self {
        Self {
            view,
            transposed: true,
        }
    }

    /// (element index strides along the operand's rows, along its columns).
    pub(crate) fn strides(&self) -> (u64, u64) {
        if self.transposed {
            (1, self.view.stride)
        } else {
            (self.view.stride, 1)
        }
    }

    /// Checks that the `rows × cols` operand lies in the buffer, within one
    /// binding and u32 indices; returns the bytes it needs.
    pub(crate) fn check(
        &self,
        ctx: &Context,
        what: &'static str,
        rows: usize,
        cols: usize,
    ) -> Result<u64> {
        let v = &self.view;
        let (stored_rows, stored_cols) = if self.transposed {
            (cols, rows)
        } else {
            (rows, cols)
        };
        if (v.stride as usize) < stored_cols {
            return Err(Error::BadBuffer {
                what,
                reason: format!(
                    "stride {} is shorter than a stored row of {stored_cols} elements",
                    v.stride
                ),
            });
        }
        v.precision.supported_on(&ctx.device, "f16 operands")?;
        let too_far = || Error::BadBuffer {
            what,
            reason: format!(
                "offset {} and stride {} put the operand past 2^64 bytes",
                v.offset, v.stride
            ),
        };
        let end = if stored_rows == 0 || stored_cols == 0 {
            v.offset
        } else {
            (stored_rows as u64 - 1)
                .checked_mul(v.stride)
                .and_then(|e| e.checked_add(v.offset))
                .and_then(|e| e.checked_add(stored_cols as u64))
                .ok_or_else(too_far)?
        };
        let bytes = end
            .checked_mul(v.precision.size())
            .and_then(|b| b.checked_next_multiple_of(4))
            .ok_or_else(too_far)?;
        ctx.check_bytes(what, v.buffer, bytes)?;
        let max = ctx.device.limits().max_storage_buffer_binding_size;
        if bytes > max || end > u64::from(u32::MAX) {
            return Err(Error::BadBuffer {
                what,
                reason: format!(
                    "the operand reaches byte {bytes}, past the device's largest storage binding \
                     of {max} bytes (or 2^32 elements)"
                ),
            });
        }
        Ok(bytes)
    }

    /// Whether every run of 4 along the contiguous axis that starts at a
    /// multiple of 4 is aligned (the vec4 loads).
    pub(crate) fn aligned(&self) -> bool {
        let v = &self.view;
        v.offset.is_multiple_of(4)
            && v.stride.is_multiple_of(4)
            && v.buffer.size() >= self.quad_bytes()
    }

    /// Bytes of a run of 4 elements: the stride of the vec4 view.
    pub(crate) fn quad_bytes(&self) -> u64 {
        4 * self.view.precision.size()
    }
}

/// Which kernel computes a product. Both give results within the
/// documented tolerance of the CPU twin, and each is bit-identical run to
/// run (their sums run in different orders, so they differ in the last bits).
///
/// ```
/// assert_eq!(xent::ProductKernel::default(), xent::ProductKernel::Auto);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProductKernel {
    /// `Tiled` on GPUs, `Blocks` on the software adapters.
    #[default]
    Auto,
    /// 64 × 64 output tiles through workgroup memory, 256 invocations with
    /// a 4 × 4 block each, k in steps of 16: operands read once per tile,
    /// coalesced (GPUs).
    Tiled,
    /// Each invocation an 8 × 8 block of the output, its operands read
    /// straight from memory in runs of 4 along their contiguous axes: 16
    /// loads per 256 multiply-adds, no workgroup memory (the software
    /// adapters, where every load costs as much as many multiply-adds and a
    /// workgroup-memory read is a gather per lane).
    Blocks,
    /// Cooperative matrices (tensor cores), where
    /// [`Context::cooperative_matrices`](crate::Context::cooperative_matrices)
    /// says the device has them: 64 × 64 output blocks of 16 × 16 tiles,
    /// one subgroup of 32 per block, k in steps of 16 staged as f16 in
    /// workgroup memory. Each step's tiles of A and of B are scaled by a
    /// power of two that puts their largest magnitude in [2^15, 2^16): f16
    /// operands are held exactly; with 2^e the largest power of two of a
    /// bf16 tile (64 rows or columns by 16 of k), its values are exact down
    /// to 2^(e-32) and rounded to multiples of 2^(e-39) below (f16's
    /// subnormal step). Each elementwise product is exact in f32; the
    /// tiles' sums are scaled back and added in f32 in k order. An f32
    /// operand is split into two f16 halves (hi, and lo for the rest; its
    /// tiles scaled one binade lower) and each step adds hi·hi, then
    /// hi·lo + lo·hi: two products for one f32 operand, three for two,
    /// each term within 2⁻²⁰·|a|·|b| of a·b besides the scaling's floor:
    /// what lies more than 2⁻¹⁶ below its tile's largest power of two 2^e
    /// keeps fewer bits, rounded to multiples of 2^(e−38), and below
    /// 2^(e−39) is 0 (a gradient of 10⁻²⁶ in a tile with one of 1). An
    /// infinity or NaN meets the other operand's hi alone: inf·b is inf
    /// where b's hi is not 0, NaN where b lies below the floor. The fused
    /// op's twin allows for the floor where its options name this kernel.
    /// Asked for by name only: `Auto` does not choose it until it has run
    /// on hardware (`benches/device.sh` checks it against the CPU twin).
    Coop,
    /// `Coop`'s kernel with the matrix operations written in plain WGSL:
    /// the same tiling, scaling and indexing on every adapter, slowly (the
    /// emulation's loops bound a dispatch to 96 of k, 48 or 32 with f32
    /// operands). What the tests run.
    CoopEmulated,
}

impl ProductKernel {
    /// Its name in `--product-kernel`.
    ///
    /// ```
    /// assert_eq!(xent::ProductKernel::CoopEmulated.name(), "coop-emulated");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            ProductKernel::Auto => "auto",
            ProductKernel::Tiled => "tiled",
            ProductKernel::Blocks => "blocks",
            ProductKernel::Coop => "coop",
            ProductKernel::CoopEmulated => "coop-emulated",
        }
    }
}

/// The buffers of one [`Context::record_matmul`] call, all the caller's and
/// from the context's device: the operands' views, the bias, and the
/// output's region and rows.
///
/// ```
/// # fn main() -> Result<(), xent::Error> {
/// let ctx = xent::Context::from_env()?;
/// let buffer = |size| ctx.device().create_buffer(&wgpu::BufferDescriptor {
///     label: None, size, usage: wgpu::BufferUsages::STORAGE, mapped_at_creation: false });
/// let (a, b, out) = (buffer(24), buffer(48), buffer(32)); // (2, 3)·(3, 4) → (2, 4)
/// let buffers = xent::ProductBuffers {
///     a: xent::MatrixView::dense(a.slice(..), xent::Precision::F32, 3),
///     b: xent::MatrixView::dense(b.slice(..), xent::Precision::F32, 4),
///     bias: None, out: out.slice(..), out_offset: 0, out_stride: 4, accumulate: false,
/// };
/// let mut encoder = ctx.device().create_command_encoder(&Default::default());
/// ctx.record_matmul(&mut encoder, &xent::MatmulDims { m: 2, n: 4, k: 3 }, &Default::default(), &buffers)?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ProductBuffers<'a> {
    /// `A`, `m × k`.
    pub a: MatrixView<'a>,
    /// `B`, `k × n`.
    pub b: MatrixView<'a>,
    /// `n` elements in `b`'s precision added to every output row; `None` for none.
    pub bias: Option<wgpu::BufferSlice<'a>>,
    /// f32 output: row `i` from element `out_offset + i·out_stride` of the
    /// region, in a buffer apart from the inputs'.
    pub out: wgpu::BufferSlice<'a>,
    pub out_offset: u64,
    pub out_stride: u64,
    /// Add the product to what `out` holds (`out + A·B`, in that order).
    pub accumulate: bool,
}

/// A product's operands as the kernels read them: each view with whether
/// the options read it transposed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operands<'a> {
    pub a: Operand<'a>,
    pub b: Operand<'a>,
}

impl<'a> Operands<'a> {
    /// The operands of `buffers` as `opts` reads them.
    pub(crate) fn new(opts: &MatmulOptions, buffers: &ProductBuffers<'a>) -> Self {
        Self {
            a: Operand {
                view: buffers.a,
                transposed: opts.transpose_a,
            },
            b: Operand {
                view: buffers.b,
                transposed: opts.transpose_b,
            },
        }
    }
}
