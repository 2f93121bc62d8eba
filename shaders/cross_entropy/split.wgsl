// Part of the cross-entropy module (see common.wgsl and `source` in
// src/ops/cross_entropy/pipelines.rs).
//
// ---------------------------------------------------------------- split rows
//
// Few long rows (e.g. 16 x 128 256): `splits` workgroups per row, each over a
// contiguous span of classes, so the whole device is busy.
//   split_partial  each span's (max, sum-exp) partial (and the target logit,
//                  read before anything is overwritten) -> aux;
//   split_rows     merges the row's partials in span order (every workgroup of
//                  the row computes the same merge), writes its span's
//                  gradient and its span's class sum of the loss -> aux;
//   split_finish   an invocation per row: merges again, adds the span sums in
//                  span order, writes the row's loss.
// aux after the per-row outputs (if any): PART_WORDS words per (row, span)
// partial, then one word per (row, span) class sum.

const PART_WORDS: u32 = 9u;

fn part_slot(row: u32, k: u32) -> u32 {
    return AUX_ROWS + p.flags + (row * p.splits + k) * PART_WORDS;
}

fn sum_slot(row: u32, k: u32) -> u32 {
    return AUX_ROWS + p.flags + p.rows * p.splits * PART_WORDS + row * p.splits + k;
}

fn store_partial(slot: u32, r: Partial, x_t: f32) {
    aux[slot] = bitcast<u32>(r.m);
    aux[slot + 1u] = bitcast<u32>(r.s);
    aux[slot + 2u] = r.arg;
    aux[slot + 3u] = r.xkey;
    aux[slot + 4u] = bitcast<u32>(r.q);
    aux[slot + 5u] = r.tkey;
    aux[slot + 6u] = r.targ;
    aux[slot + 7u] = bitcast<u32>(x_t);
    aux[slot + 8u] = bitcast<u32>(r.t);
}

fn load_partial(slot: u32) -> Partial {
    return Partial(
        bitcast<f32>(aux[slot]),
        bitcast<f32>(aux[slot + 1u]),
        bitcast<f32>(aux[slot + 8u]),
        aux[slot + 2u],
        aux[slot + 3u],
        bitcast<f32>(aux[slot + 4u]),
        aux[slot + 5u],
        aux[slot + 6u],
    );
}

// The row's partials merged in span order, and its target logit.
fn merged_row(row: u32) -> Partial {
    var total = load_partial(part_slot(row, 0u));
    for (var k = 1u; k < p.splits; k++) {
        total = merge(total, load_partial(part_slot(row, k)));
    }
    return total;
}

// The row, span index and classes [c0, c1) of a split workgroup (a row past
// p.row_end: nothing to do). The vocabulary shards' kernels walk the same spans.
struct Span {
    row: u32,
    k: u32,
    c0: u32,
    c1: u32,
}

fn span_of(wid: vec3<u32>, nwg: vec3<u32>) -> Span {
    let g = flat_workgroup(wid, nwg);
    let k = g % p.splits;
    let c0 = k * p.span;
    return Span(p.row_offset + g / p.splits, k, c0, min(c0 + p.span, p.classes));
}

fn split_target_logit(row: u32) -> f32 {
    var x_t = 0.0;
    for (var k = 0u; k < p.splits; k++) {
        x_t += bitcast<f32>(aux[part_slot(row, k) + 7u]);
    }
    return x_t;
}


@compute @workgroup_size(WIDE_WG)
fn split_partial(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let sp = span_of(wid, nwg);
    let row = sp.row;
    let k = sp.k;
    let c0 = sp.c0;
    let c1 = sp.c1;
    if (row >= p.row_end) {
        return;
    }
    let base = chunk_base(row);
    let total = workgroup_merge(lid, scan_span(lid, base, c0, c1));
    if (lid == 0u) {
        // The span holding the target records its logit; the others record 0.
        var x_t = 0.0;
        if (TARGET_KIND != TARGET_PROBS) {
            // (Of a vocabulary shard: its target class, local to the shard.)
            let t = class_target(row) - i32(p.class_offset);
            if (t >= 0 && u32(t) >= c0 && u32(t) < c1) {
                x_t = load_input(base + u32(t) * p.inner);
            }
        }
        store_partial(part_slot(row, k), total, x_t);
    }
}

@compute @workgroup_size(WIDE_WG)
fn split_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let sp = span_of(wid, nwg);
    let row = sp.row;
    let k = sp.k;
    let c0 = sp.c0;
    let c1 = sp.c1;
    if (row >= p.row_end) {
        return;
    }
    let base = chunk_base(row);
    let plan = plan_row(row, merged_row(row));
    let class_sum = workgroup_sum(lid, grad_span(plan, lid, base, c0, c1)).x;
    if (lid == 0u) {
        aux[sum_slot(row, k)] = bitcast<u32>(class_sum);
    }
}

@compute @workgroup_size(64)
fn split_finish(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = p.row_offset + narrow_index(wid, nwg, lid);
    if (row >= p.row_end) {
        return;
    }
    let total = merged_row(row);
    let plan = plan_row(row, total);
    var class_sum = 0.0;
    for (var k = 0u; k < p.splits; k++) {
        class_sum += bitcast<f32>(aux[sum_slot(row, k)]);
    }
    finish_row(plan, row, split_target_logit(row), total, class_sum);
}
