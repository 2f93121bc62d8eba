// Workgroup reductions of the cross-entropy module through workgroup memory: fixed
// trees over WIDE_WG invocations, for devices without SUBGROUP (and with
// XENT_SUBGROUPS=0). `subgroup_reductions.wgsl` defines the same two
// functions by shuffles; the module takes exactly one of them.

var<workgroup> wg_part: array<Partial, WIDE_WG>;
var<workgroup> wg_sum: array<vec2<f32>, WIDE_WG>;

// Fixed-order tree merge of the workgroup's (max, sum-exp) partials; every
// invocation gets the total. Call from uniform control flow.
fn workgroup_merge(lid: u32, part: Partial) -> Partial {
    wg_part[lid] = part;
    workgroupBarrier();
    for (var off = WIDE_WG / 2u; off > 0u; off >>= 1u) {
        if (lid < off) {
            wg_part[lid] = merge(wg_part[lid], wg_part[lid + off]);
        }
        workgroupBarrier();
    }
    return wg_part[0];
}

// Fixed-order tree sum over the workgroup (two sums at once); every
// invocation gets the totals.
fn workgroup_sum(lid: u32, v: vec2<f32>) -> vec2<f32> {
    wg_sum[lid] = v;
    workgroupBarrier();
    for (var off = WIDE_WG / 2u; off > 0u; off >>= 1u) {
        if (lid < off) {
            wg_sum[lid] += wg_sum[lid + off];
        }
        workgroupBarrier();
    }
    return wg_sum[0];
}
