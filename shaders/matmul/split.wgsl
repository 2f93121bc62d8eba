// A split k's in-order sum (src/ops/matmul/split.rs): a batch of slices'
// partial sums, each a dense m x n block `slice_out` elements after the
// last in `lhs` (f32), added into the output in slice order, the first
// with the bias and the output as a product's one dispatch adds them
// (onto_out, as write_out): out = ((out + (s0 + bias)) + s1) + ..., the bits of the
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
    let col = e % mp.n;
    let idx = mp.c_offset + (e / mp.n) * mp.c_sm + col;
    var x = onto_out(idx, col, lhs_load(e));
    for (var z = 1u; z < mp.k; z++) {
        x += lhs_load(z * mp.slice_out + e);
    }
    out[idx] = x;
}
