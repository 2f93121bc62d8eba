// Fixed-order trees over a workgroup of WIDE_WG invocations through
// workgroup memory, on vec2 values: two sums at once, and the online
// (max, sum-exp) merge of `online_softmax.wgsl`. Every invocation gets the
// total. Call from uniform control flow, once per value read: a second call
// may overwrite what a slow invocation has not read yet.
//
// Needs from the module: WIDE_WG (a power of two; const or override) and
// `ms_merge` (online_softmax.wgsl).

var<workgroup> tree_sum: array<vec2<f32>, WIDE_WG>;
var<workgroup> tree_ms: array<vec2<f32>, WIDE_WG>;

fn workgroup_sum(lid: u32, v: vec2<f32>) -> vec2<f32> {
    tree_sum[lid] = v;
    workgroupBarrier();
    for (var off = WIDE_WG / 2u; off > 0u; off >>= 1u) {
        if (lid < off) {
            tree_sum[lid] += tree_sum[lid + off];
        }
        workgroupBarrier();
    }
    return tree_sum[0];
}

fn workgroup_ms(lid: u32, ms: vec2<f32>) -> vec2<f32> {
    tree_ms[lid] = ms;
    workgroupBarrier();
    for (var off = WIDE_WG / 2u; off > 0u; off >>= 1u) {
        if (lid < off) {
            tree_ms[lid] = ms_merge(tree_ms[lid], tree_ms[lid + off]);
        }
        workgroupBarrier();
    }
    return tree_ms[0];
}
