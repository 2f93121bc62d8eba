//! The products' uniform (`MatmulParams` in `shaders/matmul/params.wgsl`)
//! and what each dispatch sets in it.

use bytemuck::{Pod, Zeroable};

use super::buffers::{Operands, ProductBuffers};
use super::MatmulDims;

/// Mirrors `MatmulParams` in `shaders/matmul/params.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct MatmulParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub accumulate: u32,
    pub a_offset: u32,
    pub a_sm: u32,
    pub a_sk: u32,
    pub b_offset: u32,
    pub b_sk: u32,
    pub b_sn: u32,
    pub c_offset: u32,
    pub c_sm: u32,
    pub skip_bias: u32,
    /// The emulated cooperative kernel's tile side (16) and elements of a
    /// tile per invocation (8), the bounds of its loops: from the uniform,
    /// GL's compilers keep them as loops (unrolled, llvmpipe's GL took
    /// minutes to compile the module).
    pub side: u32,
    pub share: u32,
    /// Split k: each stack of blocks' slice of k, and the elements between
    /// stacks' outputs (`split.rs`).
    pub slice_k: u32,
    pub slice_out: u32,
    /// Gradient filtering (`FILTER`): the threshold, and 1 where it is
    /// over the mean's denominator (`filter.rs`).
    pub filter_eps: f32,
    pub filter_mean: u32,
}

impl MatmulParams {
    /// `m × n` outputs, nothing else set but the emulation's loop bounds.
    pub(crate) fn outputs(MatmulDims { m, n, .. }: MatmulDims) -> Self {
        Self {
            m: m as u32,
            n: n as u32,
            side: 16,
            share: 8,
            ..Zeroable::zeroed()
        }
    }

    /// A product's batch of slices over k `[k0, k1)`, each `slice_k` of k
    /// (a stack of blocks each): its operands from `k0` on; the output unset.
    pub(crate) fn batch(
        dims: MatmulDims,
        ops: &Operands<'_>,
        (k0, k1): (usize, usize),
        slice_k: usize,
    ) -> Self {
        let (a_sm, a_sk) = ops.a.strides();
        let (b_sk, b_sn) = ops.b.strides();
        Self {
            k: (k1 - k0) as u32,
            a_offset: (ops.a.view.offset + k0 as u64 * a_sk) as u32,
            a_sm: a_sm as u32,
            a_sk: a_sk as u32,
            b_offset: (ops.b.view.offset + k0 as u64 * b_sk) as u32,
            b_sk: b_sk as u32,
            b_sn: b_sn as u32,
            slice_k: slice_k as u32,
            ..Self::outputs(dims)
        }
    }

    /// Into the caller's output `b.out`: its offset and rows.
    pub(crate) fn to_out(self, b: &ProductBuffers<'_>) -> Self {
        Self {
            c_offset: b.out_offset as u32,
            c_sm: b.out_stride as u32,
            ..self
        }
    }
}
