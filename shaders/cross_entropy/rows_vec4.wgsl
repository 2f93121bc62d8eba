// Part of the cross-entropy module (see common.wgsl and `source` in
// src/ops/cross_entropy/pipelines.rs).
//
// ---------------------------------------------------------------- vec4 kernels
//
// The same rows read and written four floats at a time, for layouts where
// every vec4 belongs to one row (classes % 4 == 0, inner == 1) or to four
// neighbouring pixels of one class plane (inner % 4 == 0). Software adapters
// turn each per-invocation access into a loop over SIMD lanes, so a vec4
// access costs about what a scalar one does.
//
// Two streams: the long-row kernels (`rows_wide4`, `rows_wide_mixed`,
// `rows_wide`, `split_*`) walk the two halves of their row (or span) side by side, both
// loads issued before either is used. On a CPU adapter one workgroup's
// accesses are one core's memory stream, and two streams per core keep its
// prefetchers busy: a copy kernel walking a row as one stream ran at 2/3 of
// one walking two (BENCHMARKS.md). On a GPU it is two independent loads in
// flight.

fn input_at4(idx: u32) -> f32 {
    return load_input4(idx / 4u)[idx % 4u];
}

// Pass 2 over four consecutive classes c..c+3 at idx..idx+3.
fn grad_quad(plan: RowPlan, c: u32, idx: u32, v: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(
        grad_value(plan, c, idx, v.x),
        grad_value(plan, c + 1u, idx + 1u, v.y),
        grad_value(plan, c + 2u, idx + 2u, v.z),
        grad_value(plan, c + 3u, idx + 3u, v.w),
    );
}

fn loss_quad(plan: RowPlan, c: u32, idx: u32, v: vec4<f32>) -> f32 {
    if (!SMOOTHING && TARGET_KIND != TARGET_PROBS) {
        return 0.0;
    }
    return (loss_term(plan, c, idx, v.x) + loss_term(plan, c + 1u, idx + 1u, v.y))
        + (loss_term(plan, c + 2u, idx + 2u, v.z) + loss_term(plan, c + 3u, idx + 3u, v.w));
}

fn quad_classes(c: u32) -> vec4<u32> {
    return vec4<u32>(c) + vec4<u32>(0u, 1u, 2u, 3u);
}


// Pass 1 over `quads` whole vec4s from vec4 q0, holding classes head.. of
// the row whose class 0 is at `base` (inner == 1), the two halves side by
// side (two streams, see the top of this section), added to this
// invocation's partial `part0`.
fn quad_span_scan(part0: Partial, lid: u32, base: u32, q0: u32, head: u32, quads: u32) -> Partial {
    let half = (quads + 1u) / 2u;
    var part = part0;
    for (var j = lid; j < half; j += WIDE_WG) {
        let j2 = min(j + half, quads - 1u);
        let va = load_input4(q0 + j);
        let vb = load_input4(q0 + j2);
        part = quad_scan_step(part, base, head, j, j2, j + half < quads, va, vb);
    }
    return part;
}

// One iteration of the two-stream walk over whole vec4s: vec4s j and (when
// `both`) j2 of the span, holding classes head + 4j.. and head + 4j2..
// Shared by the vec4 and the scalar views (`rows_wide_quads`), so both
// give the same bits.
fn quad_scan_step(part: Partial, base: u32, head: u32, j: u32, j2: u32, both: bool, va: vec4<f32>, vb: vec4<f32>) -> Partial {
    let ca = quad_classes(head + 4u * j);
    var r = update4(part, ca, vec4<u32>(base) + ca, va);
    if (both) {
        let cb = quad_classes(head + 4u * j2);
        r = update4(r, cb, vec4<u32>(base) + cb, vb);
    }
    return r;
}

// Pass 2 over the same vec4s, walked as quad_span_scan: writes their
// gradient and adds to `acc0` this invocation's (sum of loss terms, input at
// the target class or 0).
fn quad_span_grad(acc0: vec2<f32>, plan: RowPlan, lid: u32, q0: u32, head: u32, quads: u32) -> vec2<f32> {
    let half = (quads + 1u) / 2u;
    var acc = acc0;
    for (var j = lid; j < half; j += WIDE_WG) {
        let j2 = min(j + half, quads - 1u);
        let va = load_input4(q0 + j);
        let vb = load_input4(q0 + j2);
        acc += quad_pass2(plan, q0 + j, head + 4u * j, va);
        if (j + half < quads) {
            acc += quad_pass2(plan, q0 + j2, head + 4u * j2, vb);
        }
    }
    return acc;
}

// Pass 2 of the whole vec4 j (flat index 4j) holding classes c..c+3: writes
// its gradient and returns (its loss term, the input at the target class or 0).
fn quad_pass2(plan: RowPlan, j: u32, c: u32, v: vec4<f32>) -> vec2<f32> {
    if (WRITE_GRAD) {
        grad_store4(j, grad_quad(plan, c, 4u * j, v));
    }
    return quad_sums(plan, j, c, v);
}

// (The loss term, the input at the target class or 0) of the whole vec4 j
// holding classes c..c+3.
fn quad_sums(plan: RowPlan, j: u32, c: u32, v: vec4<f32>) -> vec2<f32> {
    let hit = select(vec4<f32>(0.0), v, quad_classes(c) == vec4<u32>(plan.target_class));
    return vec2<f32>(loss_quad(plan, c, 4u * j, v), (hit.x + hit.y) + (hit.z + hit.w));
}

// A workgroup per row; rows of classes % 4 == 0 with inner == 1.
@compute @workgroup_size(WIDE_WG)
fn rows_wide4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = p.row_offset + flat_workgroup(wid, nwg);
    if (row >= p.row_end) {
        return;
    }
    let base = chunk_base(row);
    let quads = p.classes / 4u;
    let total = workgroup_merge(lid, quad_span_scan(empty_partial(), lid, base, base / 4u, 0u, quads));
    let plan = plan_row(row, total);
    // The target logit is picked up in pass 2, as in rows_wide.
    let acc = quad_span_grad(vec2<f32>(0.0), plan, lid, base / 4u, 0u, quads);
    let sums = workgroup_sum(lid, acc);
    if (lid == 0u) {
        finish_row(plan, row, sums.y, total, sums.x);
    }
}

// A workgroup per row; rows of any length (inner == 1), in place or not,
// through the vec4 views only (`input4` or, in place, `grad4`; `grad4`): the
// row's first (up to 3) elements before a vec4 boundary and its last (up to
// 3) after its last whole vec4 share their vec4s with the neighbouring rows.
// This kernel reads them out of those vec4s for the row's statistics and
// loss but writes only the whole vec4s inside the row; it leaves its plan in
// `aux`, and `mixed_seams` then writes each shared vec4 from the plans of
// the rows on either side. One writable view of the gradient (WebGPU forbids
// aliasing writable bindings), 8 storage bindings in all. The host binds
// the input and gradient in whole vec4s so that the last vec4 exists.
@compute @workgroup_size(WIDE_WG)
fn rows_wide_mixed(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = p.row_offset + flat_workgroup(wid, nwg);
    if (row >= p.row_end) {
        return;
    }
    let base = chunk_base(row);
    let at = mixed_row(base);
    let head = at.x;
    let quads = at.y;
    let tail = at.z;
    let q0 = at.w;
    var part = empty_partial();
    if (lid < head) {
        part = update(part, lid, base + lid, input_at4(base + lid));
    }
    part = quad_span_scan(part, lid, base, q0, head, quads);
    if (lid < p.classes - tail) {
        let c = tail + lid;
        part = update(part, c, base + c, input_at4(base + c));
    }
    let total = workgroup_merge(lid, part);
    let plan = plan_row(row, total);
    var acc = vec2<f32>(0.0);
    if (lid < head) {
        acc += mixed_shared(plan, lid, base + lid);
    }
    acc = quad_span_grad(acc, plan, lid, q0, head, quads);
    if (lid < p.classes - tail) {
        acc += mixed_shared(plan, tail + lid, base + tail + lid);
    }
    let sums = workgroup_sum(lid, acc);
    if (lid == 0u) {
        finish_row(plan, row, sums.y, total, sums.x);
        if (WRITE_GRAD) {
            store_plan(row, plan);
        }
    }
}

// Where the row whose class 0 is at `base` lies in vec4s, as (head, quads,
// tail, q0): classes [0, head) and [tail, classes) in vec4s shared with the
// neighbouring rows, [head, tail) in `quads` whole vec4s from vec4 q0.
fn mixed_row(base: u32) -> vec4<u32> {
    let head = min((4u - base % 4u) % 4u, p.classes);
    let quads = (p.classes - head) / 4u;
    return vec4<u32>(head, quads, head + 4u * quads, (base + head) / 4u);
}

// Pass 2 of an element of a shared vec4 (its gradient is `mixed_seams`'s):
// (its loss term, the input if it is the target class, else 0).
fn mixed_shared(plan: RowPlan, c: u32, idx: u32) -> vec2<f32> {
    let x = input_at4(idx);
    return vec2<f32>(loss_term(plan, c, idx, x), select(0.0, x, c == plan.target_class));
}

// Per-row plans of `rows_wide_mixed` in `aux`, after the per-row outputs
// (PLAN_WORDS words a row, global row index), for `mixed_seams`.
const PLAN_WORDS: u32 = 9u;

fn plan_slot(row: u32) -> u32 {
    return AUX_ROWS + p.flags + row * PLAN_WORDS;
}

fn store_plan(row: u32, plan: RowPlan) {
    let s = plan_slot(row);
    aux[s] = plan.kind;
    aux[s + 1u] = plan.target_class;
    aux[s + 2u] = bitcast<u32>(plan.a);
    aux[s + 3u] = bitcast<u32>(plan.q);
    aux[s + 4u] = bitcast<u32>(plan.r);
    aux[s + 5u] = bitcast<u32>(plan.lse);
    aux[s + 6u] = bitcast<u32>(plan.m);
    aux[s + 7u] = bitcast<u32>(plan.inv_s);
    aux[s + 8u] = bitcast<u32>(plan.log_s);
}

fn load_plan(row: u32) -> RowPlan {
    let s = plan_slot(row);
    return RowPlan(
        aux[s],
        aux[s + 1u],
        bitcast<f32>(aux[s + 2u]),
        bitcast<f32>(aux[s + 3u]),
        bitcast<f32>(aux[s + 4u]),
        bitcast<f32>(aux[s + 5u]),
        bitcast<f32>(aux[s + 6u]),
        bitcast<f32>(aux[s + 7u]),
        bitcast<f32>(aux[s + 8u]),
    );
}

// After `rows_wide_mixed` (gradient only), an invocation per row of the
// chunk: the vec4 that holds the row's first element, where the row starts
// inside it, shared with the previous row (whose plan a previous chunk's
// dispatch may have written); and for the tensor's last row, the vec4 that
// holds its last element, whose lanes past the tensor keep what they hold.
// In a row window (ROW_WINDOW) every chunk's last row is such a row: the
// next chunk replaces the window, so each chunk finishes its own rows.
// These vec4s were read by `rows_wide_mixed` but not written, so in place
// they still hold the input.
@compute @workgroup_size(64)
fn mixed_seams(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = p.row_offset + narrow_index(wid, nwg, lid);
    if (row >= p.row_end) {
        return;
    }
    let base = chunk_base(row);
    let plan = load_plan(row);
    if (base % 4u != 0u && row > 0u) {
        let j = base / 4u;
        let prev = load_plan(row - 1u);
        let v = load_input4(j);
        var g: vec4<f32>;
        for (var i = 0u; i < 4u; i++) {
            let idx = 4u * j + i;
            if (idx < base) {
                g[i] = grad_value(prev, p.classes - (base - idx), idx, v[i]);
            } else {
                g[i] = grad_value(plan, idx - base, idx, v[i]);
            }
        }
        grad_store4(j, g);
    }
    let end = base + p.classes;
    let last = select(p.rows, p.row_end, ROW_WINDOW);
    if (row + 1u == last && end % 4u != 0u) {
        let j = end / 4u;
        let v = load_input4(j);
        var g = grad_load4(j);
        for (var i = 0u; i < end % 4u; i++) {
            g[i] = grad_value(plan, 4u * j + i - base, 4u * j + i, v[i]);
        }
        grad_store4(j, g);
    }
}

// An invocation per row; rows of classes % 4 == 0 with inner == 1.
@compute @workgroup_size(64)
fn rows_narrow4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = p.row_offset + flat_workgroup(wid, nwg) * NARROW_WG;
    var loss = 0.0;
    if (first + lid < p.row_end) {
        loss = rows_narrow4_row(first + lid);
    }
    narrow_tiles(lid, first, loss);
}

// One row of rows_narrow4; its loss term.
fn rows_narrow4_row(row: u32) -> f32 {
    let base = chunk_base(row);
    let base4 = base / 4u;
    let quads = p.classes / 4u;
    var total = empty_partial();
    for (var j = 0u; j < quads; j++) {
        let cs = quad_classes(4u * j);
        total = update4(total, cs, vec4<u32>(base) + cs, load_input4(base4 + j));
    }
    let plan = plan_row(row, total);
    let x_t = input_at4(base + plan.target_class);
    var acc = 0.0;
    for (var j = 0u; j < quads; j++) {
        let v = load_input4(base4 + j);
        acc += loss_quad(plan, 4u * j, base + 4u * j, v);
        if (WRITE_GRAD) {
            grad_store4(base4 + j, grad_quad(plan, 4u * j, base + 4u * j, v));
        }
    }
    return finish_row(plan, row, x_t, total, acc);
}

// Pass 2 of class c for four neighbouring pixels (plans p0..p3, values v at
// idx..idx+3): writes their gradients and returns their loss terms.
fn pixel_quad(p0: RowPlan, p1: RowPlan, p2: RowPlan, p3: RowPlan, c: u32, idx: u32, v: vec4<f32>) -> vec4<f32> {
    if (WRITE_GRAD) {
        grad_store4(idx / 4u, vec4<f32>(
            grad_value(p0, c, idx, v.x),
            grad_value(p1, c, idx + 1u, v.y),
            grad_value(p2, c, idx + 2u, v.z),
            grad_value(p3, c, idx + 3u, v.w),
        ));
    }
    return pixel_loss(p0, p1, p2, p3, c, idx, v);
}

// The loss terms of class c for four neighbouring pixels.
fn pixel_loss(p0: RowPlan, p1: RowPlan, p2: RowPlan, p3: RowPlan, c: u32, idx: u32, v: vec4<f32>) -> vec4<f32> {
    if (SMOOTHING || TARGET_KIND == TARGET_PROBS) {
        return vec4<f32>(
            loss_term(p0, c, idx, v.x),
            loss_term(p1, c, idx + 1u, v.y),
            loss_term(p2, c, idx + 2u, v.z),
            loss_term(p3, c, idx + 3u, v.w),
        );
    }
    return vec4<f32>(0.0);
}

// Four neighbouring pixels per invocation (inner % 4 == 0): each class plane
// is read as vec4s, neighbouring invocations reading neighbouring vec4s.
@compute @workgroup_size(64)
fn rows_pixels4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = p.row_offset + flat_workgroup(wid, nwg) * NARROW_WG * 4u;
    var loss = vec4<f32>(0.0);
    if (first + 4u * lid < p.row_end) {
        loss = rows_pixels4_rows(first + 4u * lid);
    }
    pixel_tiles(lid, first, loss);
}

// Four pixels of rows_pixels4; their loss terms.
fn rows_pixels4_rows(row0: u32) -> vec4<f32> {
    let base = chunk_base(row0);
    let stride = p.inner;
    var t0 = empty_partial();
    var t1 = empty_partial();
    var t2 = empty_partial();
    var t3 = empty_partial();
    for (var c = 0u; c < p.classes; c++) {
        let idx = base + c * stride;
        let v = load_input4(idx / 4u);
        t0 = update(t0, c, idx, v.x);
        t1 = update(t1, c, idx + 1u, v.y);
        t2 = update(t2, c, idx + 2u, v.z);
        t3 = update(t3, c, idx + 3u, v.w);
    }
    let p0 = plan_row(row0, t0);
    let p1 = plan_row(row0 + 1u, t1);
    let p2 = plan_row(row0 + 2u, t2);
    let p3 = plan_row(row0 + 3u, t3);
    let x_t = vec4<f32>(
        input_at4(base + p0.target_class * stride),
        input_at4(base + 1u + p1.target_class * stride),
        input_at4(base + 2u + p2.target_class * stride),
        input_at4(base + 3u + p3.target_class * stride),
    );
    var acc = vec4<f32>(0.0);
    for (var c0 = 0u; c0 < p.classes; c0 += SUM_BLOCK) {
        var block = vec4<f32>(0.0);
        for (var c = c0; c < min(c0 + SUM_BLOCK, p.classes); c++) {
            let idx = base + c * stride;
            let v = load_input4(idx / 4u);
            block += pixel_quad(p0, p1, p2, p3, c, idx, v);
        }
        acc += block;
    }
    return vec4<f32>(
        finish_row(p0, row0, x_t.x, t0, acc.x),
        finish_row(p1, row0 + 1u, x_t.y, t1, acc.y),
        finish_row(p2, row0 + 2u, x_t.z, t2, acc.z),
        finish_row(p3, row0 + 3u, x_t.w, t3, acc.w),
    );
}
