// Subgroup reductions: replaces the "workgroup reductions" block of
// cross_entropy.wgsl in the module `context.rs` builds for devices with
// SUBGROUP, where WIDE_WG is the adapter's smallest subgroup size, so each
// workgroup is one subgroup. A butterfly of subgroupShuffleXor over log2(WIDE_WG)
// steps and no barriers. The order is fixed, and every lane ends with the
// same bits: each step merges a pair of lanes whose values are already equal
// within their halves, with a merge that is commutative bit for bit.

fn shuffle_partial(a: Partial, mask: u32) -> Partial {
    var r = a;
    r.m = subgroupShuffleXor(a.m, mask);
    r.s = subgroupShuffleXor(a.s, mask);
    if (COUNT_CORRECT) {
        r.arg = subgroupShuffleXor(a.arg, mask);
        r.tmax_x = subgroupShuffleXor(a.tmax_x, mask);
    }
    if (TARGET_KIND == TARGET_PROBS) {
        r.q = subgroupShuffleXor(a.q, mask);
        r.tmax = subgroupShuffleXor(a.tmax, mask);
        r.targ = subgroupShuffleXor(a.targ, mask);
    }
    return r;
}

// Every invocation gets the merge of the workgroup's partials.
fn workgroup_merge(lid: u32, part: Partial) -> Partial {
    var r = part;
    for (var mask = 1u; mask < WIDE_WG; mask <<= 1u) {
        r = merge(r, shuffle_partial(r, mask));
    }
    return r;
}

// Every invocation gets the workgroup's two sums.
fn workgroup_sum(lid: u32, v: vec2<f32>) -> vec2<f32> {
    var r = v;
    for (var mask = 1u; mask < WIDE_WG; mask <<= 1u) {
        r += subgroupShuffleXor(r, mask);
    }
    return r;
}
