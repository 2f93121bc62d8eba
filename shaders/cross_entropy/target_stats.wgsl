// Part of the cross-entropy module (see common.wgsl and `source` in
// src/ops/cross_entropy/pipelines.rs).
//
// ---------------------------------------------------------------- target_stats
//
// The mean's denominator and the bad-target check, in two dispatches:
//   target_partials  p.groups workgroups, each over a contiguous block of
//                    rows -> its partial in aux (4 words);
//   target_stats     one workgroup: merges the partials in group order,
//                    writes aux[0..2] and the status buffer.
// With one block (p.groups == 1) target_stats reads the rows itself and
// target_partials is not dispatched. (One workgroup over every row would
// leave a GPU's other compute units idle for the walk; on lavapipe the
// blocks measured about even: BENCHMARKS.md.)

// Rows [x, y) of workgroup g of the partial kernels: blocks of
// ceil(rows / groups) rounded up to a multiple of 4, so x is a multiple of 4
// (or p.rows for a block past the end, which the host's choice of groups
// never makes).
fn group_rows(g: u32) -> vec2<u32> {
    let block = ((p.rows + p.groups - 1u) / p.groups + 3u) & ~3u;
    let r0 = min(g * block, p.rows);
    return vec2<u32>(r0, min(r0 + block, p.rows));
}

// Where block g's partial lies in aux (4 words).
fn block_slot(g: u32) -> u32 {
    return p.partials + STATS_WORDS * g;
}

// This invocation's share of the blocks' partials, in block order.
fn block_partials(lid: u32) -> BlockStats {
    return fold_blocks(lid, p.partials, p.groups);
}

// One invocation's share of block g.
fn target_block(lid: u32, g: u32) -> BlockStats {
    let rows = group_rows(g);
    var s = BlockStats(0.0, 0u, 0u, NO_POSITION);
    if (TARGET_KIND == TARGET_PROBS) {
        // PyTorch: a mean over probability targets divides by the number of rows.
        if (rows.x + lid < rows.y) {
            s.count = (rows.y - rows.x - lid + STATS_WG - 1u) / STATS_WG;
        }
    } else {
        for (var i = rows.x + lid; i < rows.y; i += STATS_WG) {
            s = add_row(s, i, class_target(i), true);
        }
    }
    return s;
}

// Class-index targets, four rows at a time (rows 4q .. 4q + 3, all < p.rows).
fn quad_targets(q: u32) -> vec4<i32> {
    if (TARGET_KIND == TARGET_U8) {
        let w = targets[q];
        return vec4<i32>((vec4<u32>(w) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xffu));
    }
    return bitcast<vec4<i32>>(targets4[q]);
}

// Adds row i, class-index target t, to s if `valid`: an ignored row adds
// nothing, one out of range counts as bad. Branch-free: llvmpipe runs both
// sides of a branch under a lane mask, loads included.
fn add_row(s: BlockStats, i: u32, t: i32, valid: bool) -> BlockStats {
    let kept = valid & (t != p.ignore_index);
    let bad = kept & ((t < 0) | (u32(t) >= p.all_classes));
    let ok = kept & !bad;
    var w = 0.0;
    if (HAS_WEIGHTS || HAS_SAMPLE_WEIGHTS) {
        // Indices clamped into range; rows that are not ok add 0.
        let row = min(i, p.rows - 1u);
        var wt: f32;
        if (SHARDED) {
            wt = merged_target_weight(row);
        } else {
            wt = class_weight(min(u32(t), p.classes - 1u));
        }
        w = select(0.0, wt * sample_weight(row), ok);
    }
    return BlockStats(
        s.sum + w,
        s.count + select(0u, 1u, ok),
        s.bad + select(0u, 1u, bad),
        select(s.first, min(s.first, i), bad),
    );
}

// add_row for rows i (targets t), lane by lane.
fn add_quad(s: BlockStats, i: vec4<u32>, t: vec4<i32>, valid: vec4<bool>) -> BlockStats {
    let sx = add_row(s, i.x, t.x, valid.x);
    let sy = add_row(sx, i.y, t.y, valid.y);
    let sz = add_row(sy, i.z, t.z, valid.z);
    return add_row(sz, i.w, t.w, valid.w);
}

// target_block for class-index targets, four rows per load
// (target_partials, whose blocks start at multiples of 4 rows). The loop
// has no branch: llvmpipe runs both sides of a branch under a lane mask, so
// a branch for the last rows would cost its loads on every quad. Those rows
// (fewer than 4, in the last block) come after the loop.
fn target_block4(lid: u32, g: u32) -> BlockStats {
    let rows = group_rows(g);
    var s = BlockStats(0.0, 0u, 0u, NO_POSITION);
    let full = min(rows.y, p.rows & ~3u) / 4u;
    let lanes = vec4<u32>(0u, 1u, 2u, 3u);
    for (var q = rows.x / 4u + lid; q < full; q += STATS_WG) {
        s = add_quad(s, vec4<u32>(4u * q) + lanes, quad_targets(q), vec4<bool>(true));
    }
    if (lid == 0u && rows.x < rows.y && 4u * full < rows.y) {
        let i = vec4<u32>(4u * full) + lanes;
        let last = p.rows - 1u;
        let t = vec4<i32>(
            class_target(min(i.x, last)),
            class_target(min(i.y, last)),
            class_target(min(i.z, last)),
            class_target(min(i.w, last)),
        );
        s = add_quad(s, i, t, i < vec4<u32>(rows.y));
    }
    return s;
}

@compute @workgroup_size(STATS_WG)
fn target_partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    var s: BlockStats;
    if (TARGET_KIND == TARGET_PROBS) {
        s = target_block(lid, wid.x);
    } else {
        s = target_block4(lid, wid.x);
    }
    let total = workgroup_stats(lid, s);
    if (lid == 0u) {
        store_stats(block_slot(wid.x), total);
    }
}

@compute @workgroup_size(STATS_WG)
fn target_stats(@builtin(local_invocation_index) lid: u32) {
    // One block: no target_partials dispatch, the rows are read here.
    var s: BlockStats;
    if (p.groups == 1u) {
        s = target_block(lid, 0u);
    } else {
        s = block_partials(lid);
    }
    let total = workgroup_stats(lid, s);
    // The class weights' sum, over the same tree (in st_sum).
    var weights = f32(p.classes);
    if (HAS_WEIGHTS) {
        var wsum = 0.0;
        for (var c = lid; c < p.classes; c += STATS_WG) {
            wsum += class_weight(c);
        }
        weights = workgroup_stats(lid, BlockStats(wsum, 0u, 0u, 0u)).sum;
    }
    if (lid == 0u) {
        let weighted = HAS_WEIGHTS || HAS_SAMPLE_WEIGHTS;
        if (weighted && TARGET_KIND != TARGET_PROBS) {
            aux[0] = bitcast<u32>(total.sum);
        } else {
            // Counted in integers: exact up to 2^24 rows in the f32.
            aux[0] = bitcast<u32>(f32(total.count));
        }
        aux[1] = bitcast<u32>(weights);
        status[0] = total.bad;
        if (total.bad != 0u) {
            status[1] = total.first;
            status[2] = bitcast<u32>(class_target(total.first));
        } else {
            status[1] = 0u;
            status[2] = 0u;
        }
        status[3] = 0u;
    }
}
