// Part of the cross-entropy module (see common.wgsl and `source` in
// src/ops/cross_entropy/pipelines.rs).
//
// ---------------------------------------------------------------- vocabulary shards
//
// A call whose classes are split into contiguous ranges [c0, c1), one per
// shard (p.class_offset = c0, p.classes = c1 - c0, p.all_classes = C). Each
// shard's input holds only its classes; the targets (and sample weights) are
// whole; class weights are the shard's slice.
//   partial  split_partial (split.wgsl) over the shard's classes, then
//            vocab_sums (smoothing or probability targets only) and
//            vocab_record: one record per row -> shard_out; an empty
//            range runs vocab_empty alone (the merge's identity);
//   merge    vocab_merge: the shards' records, gathered shard after shard,
//            merged in shard order -> shard_out;
//   finish   target_stats with SHARDED (the mean's denominator from the
//            merged records), vocab_grad (the shard's gradient), vocab_loss
//            (the row's whole loss from its merged record), reduce_loss.
//
// A record is RECORD_WORDS little-endian 32-bit words per row (the layout
// `VOCAB_RECORD_WORDS` documents in src/ops/vocab/mod.rs):
//   0 m      the range's largest (capped) input, LOWEST for none
//   1 s      sum of exp(x - m) over the range
//   2 x_t    the input at the row's class-index target when the range holds it, else 0
//   3 r      the target's class weight when the range holds it, else 0
//   4 a      sum of w_c q_c (logp'_c - m) over the range, where logp' is the
//            input (logits, log-probabilities) or its log (probabilities) and
//            m is 0 for the latter two; q_c = 1 for class-index targets
//   5 b      sum of w_c q_c over the range
//   6 arg    the argmax (a class of the whole call; NO_POSITION for none)
//   7 xkey   its value's order key (`order_key` in pass1.wgsl; 0 for none)
//   8 targ   the probability target's argmax, as arg (none for class-index targets)
//   9 tkey   its value's order key (0 for none)
//   10 count the range's class count (0: an empty range, which merges as nothing)
//   11 csum  the sum of the range's classes c0 + ... + (c1 - 1), wrapping
//            mod 2^32 (with count: which classes the records cover)
//   12 t     sum of exp(x - m) (x - m) over the range (the entropy's:
//            every partial runs with WRITE_ENTROPY)
// Every word is always written: 4 and 5 are 0 without smoothing or
// probability targets; the argmaxes are kept whether or not the finish
// counts them.
// Merged: m = max, s = the (max, sum-exp) merge, t moved to the merged
// maximum as `merge` does, x_t, r, b summed, a = sum of (a_k + b_k (m_k - m))
// (logits; a plain sum otherwise), the argmaxes the first index of the
// largest key.

const RECORD_WORDS: u32 = 13u;
// Status word 3 of a finish whose merged records do not cover each class once
// (`Status::records_uncovered`; word 3 is 0 or 1 for the other calls).
const RECORDS_UNCOVERED: u32 = 2u;

// A shard's merged record, or its partial.
struct Record {
    m: f32,
    s: f32,
    x_t: f32,
    r: f32,
    a: f32,
    b: f32,
    arg: u32,
    xkey: u32,
    targ: u32,
    tkey: u32,
    count: u32,
    csum: u32,
    t: f32,
}

fn load_record(base: u32) -> Record {
    return Record(
        bitcast<f32>(shard_in[base]),
        bitcast<f32>(shard_in[base + 1u]),
        bitcast<f32>(shard_in[base + 2u]),
        bitcast<f32>(shard_in[base + 3u]),
        bitcast<f32>(shard_in[base + 4u]),
        bitcast<f32>(shard_in[base + 5u]),
        shard_in[base + 6u],
        shard_in[base + 7u],
        shard_in[base + 8u],
        shard_in[base + 9u],
        shard_in[base + 10u],
        shard_in[base + 11u],
        bitcast<f32>(shard_in[base + 12u]),
    );
}

fn store_record(row: u32, r: Record) {
    let base = row * RECORD_WORDS;
    shard_out[base] = bitcast<u32>(r.m);
    shard_out[base + 1u] = bitcast<u32>(r.s);
    shard_out[base + 2u] = bitcast<u32>(r.x_t);
    shard_out[base + 3u] = bitcast<u32>(r.r);
    shard_out[base + 4u] = bitcast<u32>(r.a);
    shard_out[base + 5u] = bitcast<u32>(r.b);
    shard_out[base + 6u] = r.arg;
    shard_out[base + 7u] = r.xkey;
    shard_out[base + 8u] = r.targ;
    shard_out[base + 9u] = r.tkey;
    shard_out[base + 10u] = r.count;
    shard_out[base + 11u] = r.csum;
    shard_out[base + 12u] = bitcast<u32>(r.t);
}

// The merged record's target weight r of row i (target_stats with SHARDED).
fn merged_target_weight(i: u32) -> f32 {
    return bitcast<f32>(shard_in[i * RECORD_WORDS + 3u]);
}

// A class of the shard as a class of the whole call, NO_POSITION kept.
fn global_class(c: u32) -> u32 {
    return select(c + p.class_offset, NO_POSITION, c == NO_POSITION);
}

// The term a record sums for an input x at the range's maximum m:
// logp' - m (see the layout above).
fn anchored(x: f32, m: f32) -> f32 {
    if (INPUT_KIND == INPUT_LOGITS) {
        return x - m;
    }
    if (INPUT_KIND == INPUT_LOG_PROBS) {
        return x;
    }
    return log_subnormal(x);
}

// b_k (m_k - m): a shard's anchored sum moved to the merged maximum; 0 when
// nothing is summed or the maxima agree (LOWEST - LOWEST, -inf - -inf).
fn shifted(b: f32, m_k: f32, m: f32) -> f32 {
    if (INPUT_KIND != INPUT_LOGITS || b == 0.0 || m_k == m) {
        return 0.0;
    }
    return b * (m_k - m);
}

// Slot of span k's (a, b) in aux, after split.wgsl's partials and sums.
fn vocab_slot(row: u32, k: u32) -> u32 {
    return AUX_ROWS + p.flags + p.rows * p.splits * (PART_WORDS + 1u) + 2u * (row * p.splits + k);
}

// Smoothing or probability targets: each span's (a, b) at the range's
// maximum, which every span's workgroup merges from the spans' partials.
@compute @workgroup_size(WIDE_WG)
fn vocab_sums(
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
    var m = 0.0;
    if (INPUT_KIND == INPUT_LOGITS) {
        m = merged_row(row).m;
    }
    // The span's two halves side by side, as scan_span.
    let half = (select(0u, c1 - c0, c1 > c0) + 1u) / 2u;
    var acc = vec2<f32>(0.0);
    for (var c = c0 + lid; c < c0 + half; c += WIDE_WG) {
        let c2 = min(c + half, c1 - 1u);
        acc += vocab_term(c, base + c * p.inner, m);
        if (c + half < c1) {
            acc += vocab_term(c2, base + c2 * p.inner, m);
        }
    }
    let sums = workgroup_sum(lid, acc);
    if (lid == 0u) {
        aux[vocab_slot(row, k)] = bitcast<u32>(sums.x);
        aux[vocab_slot(row, k) + 1u] = bitcast<u32>(sums.y);
    }
}

// One class's (w q (logp' - m), w q).
fn vocab_term(c: u32, idx: u32, m: f32) -> vec2<f32> {
    var wq = class_weight(c);
    if (TARGET_KIND == TARGET_PROBS) {
        wq *= soft_q(idx);
    }
    return vec2<f32>(wq * anchored(load_input(idx), m), wq);
}

// An invocation per row: the row's spans merged in span order into its record.
@compute @workgroup_size(64)
fn vocab_record(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = p.row_offset + narrow_index(wid, nwg, lid);
    if (row >= p.row_end) {
        return;
    }
    let total = merged_row(row);
    var rec: Record;
    rec.m = total.m;
    rec.s = total.s;
    rec.x_t = split_target_logit(row);
    rec.r = 0.0;
    if (TARGET_KIND != TARGET_PROBS) {
        let t = class_target(row) - i32(p.class_offset);
        if (t >= 0 && u32(t) < p.classes) {
            rec.r = class_weight(u32(t));
        }
    }
    rec.a = 0.0;
    rec.b = 0.0;
    if (SMOOTHING || TARGET_KIND == TARGET_PROBS) {
        for (var k = 0u; k < p.splits; k++) {
            rec.a += bitcast<f32>(aux[vocab_slot(row, k)]);
            rec.b += bitcast<f32>(aux[vocab_slot(row, k) + 1u]);
        }
    }
    rec.arg = global_class(total.arg);
    rec.xkey = total.xkey;
    rec.targ = global_class(total.targ);
    rec.tkey = total.tkey;
    rec.t = total.t;
    rec.count = p.classes;
    rec.csum = class_index_sum(p.class_offset, p.class_offset + p.classes);
    store_record(row, rec);
}

// An invocation per row of p.rows: an empty range's records, the merge's
// identity (m LOWEST, the sums 0, the argmaxes none at key 0, count 0), so
// that MAX and SUM all-reduces may take them with the others as well.
@compute @workgroup_size(64)
fn vocab_empty(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = narrow_index(wid, nwg, lid);
    if (row >= p.rows) {
        return;
    }
    store_record(row, Record(LOWEST, 0.0, 0.0, 0.0, 0.0, 0.0, NO_POSITION, 0u, NO_POSITION, 0u, 0u, 0u, 0.0));
}

// c0 + (c0 + 1) + ... + (c1 - 1), wrapping mod 2^32: the halving falls on
// whichever of (c1 - c0) and (c0 + c1 - 1) is even.
fn class_index_sum(c0: u32, c1: u32) -> u32 {
    let n = c1 - c0;
    let ends = c0 + c1 - 1u;
    if (n == 0u) {
        return 0u;
    }
    if ((n & 1u) == 0u) {
        return (n / 2u) * ends;
    }
    return n * (ends / 2u);
}

// Two records merged, `x` from the shard before `y`.
fn merge_records(x: Record, y: Record) -> Record {
    if (y.count == 0u) {
        return x;
    }
    if (x.count == 0u) {
        return y;
    }
    var r: Record;
    let ms = ms_merge(vec2<f32>(x.m, x.s), vec2<f32>(y.m, y.s));
    r.m = ms.x;
    r.s = ms.y;
    r.x_t = x.x_t + y.x_t;
    r.r = x.r + y.r;
    r.a = (x.a + shifted(x.b, x.m, r.m)) + (y.a + shifted(y.b, y.m, r.m));
    r.b = x.b + y.b;
    let argmax = first_largest(x.xkey, x.arg, y.xkey, y.arg);
    r.xkey = argmax.x;
    r.arg = argmax.y;
    let targ = first_largest(x.tkey, x.targ, y.tkey, y.targ);
    r.tkey = targ.x;
    r.targ = targ.y;
    r.count = x.count + y.count;
    r.csum = x.csum + y.csum;
    r.t = merged_t(x.t, x.s, x.m, y.t, y.s, y.m, r.m);
    return r;
}

// An invocation per row: p.shards records (shard k's at k * p.rows), in shard order.
@compute @workgroup_size(64)
fn vocab_merge(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = narrow_index(wid, nwg, lid);
    if (row >= p.rows) {
        return;
    }
    var total = load_record(row * RECORD_WORDS);
    for (var k = 1u; k < p.shards; k++) {
        total = merge_records(total, load_record((k * p.rows + row) * RECORD_WORDS));
    }
    store_record(row, total);
}

// The row's plan from its merged record: the target's class local to the
// shard (wrapping: a target outside the range matches none of its classes).
fn plan_merged(row: u32, rec: Record) -> RowPlan {
    let stats = call_stats();
    var plan: RowPlan;
    plan.kind = 0u;
    plan.target_class = NO_POSITION;
    plan.r = 1.0;
    plan.q = rec.b;
    if (TARGET_KIND != TARGET_PROBS) {
        let t = class_target(row);
        if (t == p.ignore_index) {
            plan.kind = 1u;
        } else if (t < 0 || u32(t) >= p.all_classes) {
            plan.kind = 2u;
        } else {
            plan.target_class = u32(t) - p.class_offset;
        }
        plan.r = rec.r;
        plan.q = (1.0 - p.smoothing) * rec.r + p.smoothing / f32(p.all_classes) * rec.b;
    }
    plan.a = stats.scale * sample_weight(row);
    plan.m = rec.m;
    plan.inv_s = 1.0 / rec.s;
    plan.log_s = log(rec.s);
    plan.lse = rec.m + log(rec.s);
    return plan;
}

fn merged_record(row: u32) -> Record {
    return load_record(row * RECORD_WORDS);
}

// The shard's gradient from the merged records: a workgroup per (row, span).
@compute @workgroup_size(WIDE_WG)
fn vocab_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let sp = span_of(wid, nwg);
    if (sp.row >= p.row_end) {
        return;
    }
    let plan = plan_merged(sp.row, merged_record(sp.row));
    // The loss terms grad_span also returns are the record's a and b.
    _ = grad_span(plan, lid, chunk_base(sp.row), sp.c0, sp.c1);
}

// An invocation per row: the row's whole loss (and log-sum-exp, argmax
// flag) from its merged record, as every shard computes it.
@compute @workgroup_size(64)
fn vocab_loss(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = p.row_offset + narrow_index(wid, nwg, lid);
    if (row >= p.row_end) {
        return;
    }
    let rec = merged_record(row);
    // Records that do not cover the call's classes once each (a shard
    // missing from the gather, there twice, or in another's place) make
    // every number of the row wrong: the status says so (every such row
    // writes the same word, so the result does not depend on which ran
    // last; target_stats cleared it before).
    if (rec.count != p.all_classes || rec.csum != class_index_sum(0u, p.all_classes)) {
        status[3] = RECORDS_UNCOVERED;
    }
    let plan = plan_merged(row, rec);
    // sum_c w_c q_c logp_c = a - b log s (logits), a otherwise.
    var class_sum = rec.a;
    if (INPUT_KIND == INPUT_LOGITS) {
        class_sum -= rec.b * plan.log_s;
    }
    // finish_row compares the argmax with the plan's local target class:
    // both shifted alike.
    var total = empty_partial();
    total.s = rec.s;
    total.t = rec.t;
    total.arg = rec.arg - p.class_offset;
    total.targ = rec.targ - p.class_offset;
    finish_row(plan, row, rec.x_t, total, class_sum);
}
