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
    // Split k: a dispatch's workgroups are `slices` stacks of the output's
    // blocks along y, stack z adding k [z * slice_k, (z + 1) * slice_k) of
    // the dispatch's k into the output `slice_out` elements past stack
    // z - 1's (one slice, 0 apart, without a split). sum_slices reads `k`
    // as the partial sums it adds.
    slice_k: u32,
    slice_out: u32,
    // Gradient filtering (product.wgsl's FILTER): the threshold, and 1
    // where it is over the mean's denominator.
    filter_eps: f32,
    filter_mean: u32,
}

@group(0) @binding(0) var<uniform> mp: MatmulParams;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// The workgroup's slice of k: its length (`mp.slice_k` but the last
// slice's rest), where A's, B's and the output's elements start (set by
// enter_slice).
var<private> slice_len: u32;
var<private> a_base: u32;
var<private> b_base: u32;
var<private> c_base: u32;

// Enters the slice of workgroup row `wy` in a grid of blocks `block_rows`
// tall (`slices` stacks of ceil(m / block_rows) rows); returns the
// workgroup's row of blocks within its stack.
fn enter_slice(wy: u32, block_rows: u32) -> u32 {
    let stack = (mp.m + block_rows - 1u) / block_rows;
    let z = wy / stack;
    let k0 = z * mp.slice_k;
    slice_len = min(mp.k - min(k0, mp.k), mp.slice_k);
    a_base = mp.a_offset + k0 * mp.a_sk;
    b_base = mp.b_offset + k0 * mp.b_sk;
    c_base = mp.c_offset + z * mp.slice_out;
    return wy % stack;
}

// What out[idx] (column col) becomes from v: out[idx] + (v + the bias of
// col), the bias where the dispatch is a product's first, out[idx] where
// it accumulates.
fn onto_out(idx: u32, col: u32, v: f32) -> f32 {
    var x = v;
    if (HAS_BIAS && mp.skip_bias == 0u) {
        x += bias_load(col);
    }
    if (mp.accumulate != 0u) {
        x = out[idx] + x;
    }
    return x;
}

// out[row, col] (+)= v (+ the bias of col), where the dispatch adds its
// slice of k to the output, and with the bias where it is the first.
fn write_out(row: u32, col: u32, v: f32) {
    let idx = c_base + row * mp.c_sm + col;
    out[idx] = onto_out(idx, col, v);
}
