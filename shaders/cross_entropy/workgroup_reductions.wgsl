// The merge of the cross-entropy module's row partials through workgroup
// memory: a fixed tree over WIDE_WG invocations, for devices without
// SUBGROUP (and with XENT_SUBGROUPS=0). The module takes it with
// `workgroup_trees.wgsl` (its `workgroup_sum`); `subgroup_reductions.wgsl`
// defines both functions by shuffles in their place.

var<workgroup> wg_part: array<Partial, WIDE_WG>;

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
