// The products' uniform and output (`MatmulParams` in
// src/ops/matmul/record.rs), shared by the scalar (product.wgsl) and the
// cooperative (coop.wgsl) kernels.

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    // 1: add the product to what `out` holds (chunks summed in order)
    accumulate: u32,
    a_offset: u32,
    a_sm: u32,
    a_sk: u32,
    b_offset: u32,
    b_sk: u32,
    b_sn: u32,
    c_offset: u32,
    c_sm: u32,
    // 1: the bias was added by an earlier slice of k (a product deeper than
    // one dispatch is several, each adding its slice in order)
    skip_bias: u32,
    // The emulated cooperative kernel's tile side (16) and elements of a
    // tile per invocation (8): its loops' bounds, from the uniform so that
    // GL's compilers keep them as loops (coop_emulated.wgsl).
    side: u32,
    share: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> mp: MatmulParams;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// out[row, col] (+)= v (+ the bias of col), where the dispatch adds its
// slice of k to the output, and with the bias where it is the first.
fn write_out(row: u32, col: u32, v: f32) {
    var x = v;
    if (HAS_BIAS && mp.skip_bias == 0u) {
        x += bias_load(col);
    }
    let idx = mp.c_offset + row * mp.c_sm + col;
    if (mp.accumulate != 0u) {
        x = out[idx] + x;
    }
    out[idx] = x;
}
