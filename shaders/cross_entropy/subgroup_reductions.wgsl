// Subgroup reductions of the cross-entropy module, in place of
// `workgroup_reductions.wgsl` in the module `source` (src/ops/cross_entropy/pipelines.rs) assembles for
// devices with SUBGROUP, where WIDE_WG is the adapter's smallest subgroup size, so each
// workgroup lies within one subgroup. A butterfly of subgroupShuffleXor over
// log2(WIDE_WG) steps and no barriers. The order is fixed, and every lane
// ends with the same bits: at each step both lanes of a pair merge with the
// lower lane's value as the first operand (so a fused multiply-add, which
// would round a.s*e + b.s*f and b.s*f + a.s*e differently, cannot split
// them), and the sums add two numbers, which is commutative in IEEE.

fn shuffle_partial(a: Partial, mask: u32) -> Partial {
    var r = a;
    r.m = subgroupShuffleXor(a.m, mask);
    r.s = subgroupShuffleXor(a.s, mask);
    if (WRITE_ENTROPY) {
        r.t = subgroupShuffleXor(a.t, mask);
    }
    if (track_argmax()) {
        r.arg = subgroupShuffleXor(a.arg, mask);
        r.xkey = subgroupShuffleXor(a.xkey, mask);
    }
    if (TARGET_KIND == TARGET_PROBS) {
        r.q = subgroupShuffleXor(a.q, mask);
        r.tkey = subgroupShuffleXor(a.tkey, mask);
        r.targ = subgroupShuffleXor(a.targ, mask);
    }
    return r;
}

// Every invocation gets the merge of the workgroup's partials.
fn workgroup_merge(lid: u32, part: Partial) -> Partial {
    var r = part;
    for (var mask = 1u; mask < WIDE_WG; mask <<= 1u) {
        let other = shuffle_partial(r, mask);
        if ((lid & mask) == 0u) {
            r = merge(r, other);
        } else {
            r = merge(other, r);
        }
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
