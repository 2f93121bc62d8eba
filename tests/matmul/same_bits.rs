//! Same inputs, same bits: a product does not depend on its operands'
//! alignment (vec4 or scalar loads) nor on where its regions start.

use crate::common::placed::{placed, read_region, region, Place, EXACT, OFFSET, PADDED};
use crate::common::{ctx, Rng};
use xent::Precision;

/// `out = A·B` recorded with A and B stored from element `offset` of
/// their regions (the rest zero), every buffer placed as `place` says: the
/// output's bits.
fn product_at(
    ctx: &xent::Context,
    (a, b): (&[f32], &[f32]),
    (m, k, n): (usize, usize, usize),
    (offset, place): (usize, Place),
    kernel: xent::ProductKernel,
) -> Vec<u8> {
    let at = |v: &[f32]| {
        let mut padded = vec![0.0f32; offset];
        padded.extend_from_slice(v);
        placed(ctx, bytemuck::cast_slice(&padded), place)
    };
    let (a_buf, b_buf) = (at(a), at(b));
    let out = placed(ctx, &vec![0; 4 * m * n], place);
    let view = |buffer, cols| xent::MatrixView {
        offset: offset as u64,
        ..xent::MatrixView::dense(buffer, Precision::F32, cols)
    };
    let buffers = xent::ProductBuffers {
        a: view(region(&a_buf, place), k),
        b: view(region(&b_buf, place), n),
        bias: None,
        out: region(&out, place),
        out_offset: 0,
        out_stride: n as u64,
        accumulate: false,
    };
    let opts = xent::MatmulOptions {
        kernel,
        ..Default::default()
    };
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    ctx.record_matmul(&mut encoder, &xent::MatmulDims { m, k, n }, &opts, &buffers)
        .unwrap();
    ctx.queue().submit([encoder.finish()]);
    read_region(ctx, &out, place, 4 * m * n)
}

#[test]
fn product_bits_do_not_depend_on_the_operands_alignment_or_region() {
    // Offset 0 reads runs of 4 as vec4s, offset 1 element by element: the
    // same values in the same order of k, so the same bits.
    let Some(ctx) = ctx() else { return };
    // Rows of k = 72 and n = 48 elements: runs of 4 aligned at offset 0.
    let (m, k, n) = (37, 72, 48);
    let mut rng = Rng(3);
    let a: Vec<f32> = (0..m * k).map(|_| rng.uniform(-2.0, 2.0)).collect();
    let b: Vec<f32> = (0..k * n).map(|_| rng.uniform(-2.0, 2.0)).collect();
    for kernel in [
        xent::ProductKernel::Tiled,
        xent::ProductKernel::Blocks,
        xent::ProductKernel::CoopEmulated,
    ] {
        let run = |at| product_at(ctx, (&a, &b), (m, k, n), at, kernel);
        let aligned = run((0, EXACT));
        for at in [(1, EXACT), (0, PADDED), (0, OFFSET), (1, OFFSET)] {
            assert!(aligned == run(at), "{kernel:?} {at:?}: products differ");
        }
    }
}
