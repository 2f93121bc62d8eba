// A split k's in-order sum (src/ops/matmul/split.rs): a batch of slices'
// partial sums, each a dense m x n block `slice_out` elements after the
// last in `lhs` (f32), added into the output in slice order, the first
// with the bias and the output as a product's one dispatch adds them
// (write_out): out = ((out + (s0 + bias)) + s1) + ..., the bits of the
// slices run one after another. `k` is the batch's slices; one
// invocation per output element, k - 1 trips (the host bounds k).
@compute @workgroup_size(64)
fn sum_slices(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (e >= mp.m * mp.n) {
        return;
    }
    let row = e / mp.n;
    let col = e % mp.n;
    var x = lhs_load(e);
    if (HAS_BIAS && mp.skip_bias == 0u) {
        x += bias_load(col);
    }
    let idx = mp.c_offset + row * mp.c_sm + col;
    if (mp.accumulate != 0u) {
        x = out[idx] + x;
    }
    for (var z = 1u; z < mp.k; z++) {
        x += lhs_load(z * mp.slice_out + e);
    }
    out[idx] = x;
}
