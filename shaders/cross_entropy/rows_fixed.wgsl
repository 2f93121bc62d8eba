// Part of the cross-entropy module (see common.wgsl and `source` in
// src/ops/cross_entropy/pipelines.rs).
//
// ---------------------------------------------------------------- fixed class counts
//
// Short rows whose class count is fixed when the pipeline is built
// (`FIXED_N`, an override the host sets per class count): every loop has a
// constant trip count, so the compiler can unroll it and keep the row in
// registers between the passes (llvmpipe does while a loop's body is short:
// see QuadPlan). The input is read from memory once, not twice. The target
// logit is picked up in pass 1 by a select per element (no dynamic index
// into the row, which would put it back in memory).

// Quads per row in rows_narrow4_fixed, classes in rows_pixels4_fixed.
override FIXED_N: u32 = 1u;
// The most either kernel holds (`FIXED_*_MAX` in src/ops/cross_entropy/strategy.rs).
const MAX_FIXED: u32 = 32u;

// Pass 2 of the fixed kernels, vectorised over a vec4's four lanes: four
// pixels (four plans) in rows_pixels4_fixed, four classes of one row (its
// plan in every lane) in rows_narrow4_fixed. The loop over the row writes
// every element as if it were not its row's target (`quad_grad`); each
// target's element is then written again with grad_value. That keeps the
// loop short: llvmpipe unrolls these constant-trip-count loops, keeping `xs`
// in registers, only while their bodies are small, and a loop it keeps
// indexes `xs` in memory. One vec4 compare-and-select more per element was
// enough to keep the map's loop rolled (the bisection is in BENCHMARKS.md).
struct QuadPlan {
    m: vec4<f32>,
    // logits: exp(x - m) * k, k = a (q + 2 z r lse) / s
    k: vec4<f32>,
    // a eps / C: the smoothing's share of the one-hot term, times w_c
    spread: vec4<f32>,
    // rows of kind 0 take the gradient above, the others `special`
    // (0 for ignored rows, NaN for a class index out of range)
    plain: vec4<bool>,
    special: vec4<f32>,
}

fn quad_plan(p0: RowPlan, p1: RowPlan, p2: RowPlan, p3: RowPlan) -> QuadPlan {
    let kind = vec4<u32>(p0.kind, p1.kind, p2.kind, p3.kind);
    let a = vec4<f32>(p0.a, p1.a, p2.a, p3.a);
    let inv_s = vec4<f32>(p0.inv_s, p1.inv_s, p2.inv_s, p3.inv_s);
    var q = vec4<f32>(p0.q, p1.q, p2.q, p3.q);
    if (Z_LOSS) {
        let r = vec4<f32>(p0.r, p1.r, p2.r, p3.r);
        let lse = vec4<f32>(p0.lse, p1.lse, p2.lse, p3.lse);
        q += r * 2.0 * p.z_loss * lse;
    }
    return QuadPlan(
        vec4<f32>(p0.m, p1.m, p2.m, p3.m),
        a * q * inv_s,
        a * (p.smoothing / f32(p.all_classes)),
        kind == vec4<u32>(0u),
        select(vec4<f32>(0.0), vec4<f32>(p.nan), kind == vec4<u32>(2u)),
    );
}

// grad_value of inputs x (class weights w) that are not their row's target
// (class-index targets only).
fn quad_grad(g: QuadPlan, w: vec4<f32>, x: vec4<f32>) -> vec4<f32> {
    var r: vec4<f32>;
    if (INPUT_KIND == INPUT_LOGITS) {
        r = exp(x - g.m) * g.k;
        if (SMOOTHING) {
            r -= g.spread * w;
        }
        if (SOFTCAP || TEMPERATURE) {
            r *= vec4<f32>(cap_slope(x.x), cap_slope(x.y), cap_slope(x.z), cap_slope(x.w));
        }
    } else {
        // Structural zeros without smoothing, as grad_value.
        r = select(-(g.spread * w), vec4<f32>(0.0), !SMOOTHING);
        if (INPUT_KIND == INPUT_PROBS) {
            // 0 / 0 = NaN at a zero probability, as grad_value.
            r = vec4<f32>(
                div_subnormal(r.x, x.x),
                div_subnormal(r.y, x.y),
                div_subnormal(r.z, x.z),
                div_subnormal(r.w, x.w),
            );
        }
    }
    return select(g.special, r, g.plain);
}

// After quad_grad: the target's element of the row (or pixel) whose class 0
// is at `idx`, from its input x_t.
fn store_target(plan: RowPlan, idx: u32, x_t: f32) {
    if (plan.kind == 0u) {
        let t = plan.target_class;
        let i = idx + t * p.inner;
        grad_store_at4(i, grad_value(plan, t, i, x_t));
    }
}

// rows_narrow4 with FIXED_N = classes / 4: a tile of rows per workgroup.
@compute @workgroup_size(64)
fn rows_narrow4_fixed(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = p.row_offset + flat_workgroup(wid, nwg) * NARROW_WG;
    let row = first + lid;
    var loss = 0.0;
    if (row < p.row_end) {
        loss = narrow4_fixed_row(row);
    }
    narrow_tiles(lid, first, loss);
}

// One row of rows_narrow4_fixed; its loss term.
fn narrow4_fixed_row(row: u32) -> f32 {
    let base = chunk_base(row);
    let base4 = base / 4u;
    var xs: array<vec4<f32>, MAX_FIXED>;
    var total = empty_partial();
    // The target's logit is picked up here, while the row is read.
    let tc = row_target(row);
    let t = vec4<u32>(bitcast<u32>(tc));
    var hit = vec4<f32>(0.0);
    // The max first, then the sum (see rows_pixels4_fixed).
    var m4 = vec4<f32>(LOWEST);
    for (var j = 0u; j < FIXED_N; j++) {
        let v = load_input4(base4 + j);
        xs[j] = v;
        m4 = max(m4, v);
        if (TARGET_KIND != TARGET_PROBS) {
            hit += select(vec4<f32>(0.0), v, quad_classes(4u * j) == t);
        }
        if (track_argmax() || TARGET_KIND == TARGET_PROBS) {
            let c = 4u * j;
            total = gather_extra(total, c, base + c, v.x);
            total = gather_extra(total, c + 1u, base + c + 1u, v.y);
            total = gather_extra(total, c + 2u, base + c + 2u, v.z);
            total = gather_extra(total, c + 3u, base + c + 3u, v.w);
        }
    }
    let m = max(max(m4.x, m4.y), max(m4.z, m4.w));
    var e = vec4<f32>(0.0);
    var tsum = 0.0;
    for (var j = 0u; j < FIXED_N; j++) {
        let d = xs[j] - vec4<f32>(m);
        let ej = exp(d);
        e += ej;
        if (WRITE_ENTROPY) {
            tsum += entropy_terms4(ej, d);
        }
    }
    total.m = m;
    total.s = (e.x + e.y) + (e.z + e.w);
    total.t = tsum;
    let plan = plan_from(row, total, tc, call_stats());
    let x_t = (hit.x + hit.y) + (hit.z + hit.w);
    var acc = 0.0;
    if (TARGET_KIND == TARGET_PROBS) {
        // The gradient (if any) and the loss terms of each quad.
        for (var j = 0u; j < FIXED_N; j++) {
            acc += quad_pass2(plan, base4 + j, 4u * j, xs[j]).x;
        }
    } else {
        if (WRITE_GRAD) {
            let g = quad_plan(plan, plan, plan, plan);
            for (var j = 0u; j < FIXED_N; j++) {
                var w = vec4<f32>(1.0);
                if (HAS_WEIGHTS && SMOOTHING) {
                    let c = 4u * j;
                    w = vec4<f32>(weights[c], weights[c + 1u], weights[c + 2u], weights[c + 3u]);
                }
                grad_store4(base4 + j, quad_grad(g, w, xs[j]));
            }
            store_target(plan, base, x_t);
        }
        if (SMOOTHING) {
            for (var j = 0u; j < FIXED_N; j++) {
                acc += loss_quad(plan, 4u * j, base + 4u * j, xs[j]);
            }
        }
    }
    return finish_row(plan, row, x_t, total, acc);
}

// rows_pixels4 with FIXED_N = classes: four tiles of pixels per workgroup.
@compute @workgroup_size(64)
fn rows_pixels4_fixed(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = p.row_offset + flat_workgroup(wid, nwg) * NARROW_WG * 4u;
    let row0 = first + 4u * lid;
    var loss = vec4<f32>(0.0);
    if (row0 < p.row_end) {
        loss = pixels4_fixed_rows(row0);
    }
    pixel_tiles(lid, first, loss);
}

// Four pixels of rows_pixels4_fixed; their loss terms.
fn pixels4_fixed_rows(row0: u32) -> vec4<f32> {
    let base = chunk_base(row0);
    let stride = p.inner;
    var xs: array<vec4<f32>, MAX_FIXED>;
    var t0 = empty_partial();
    var t1 = empty_partial();
    var t2 = empty_partial();
    var t3 = empty_partial();
    // The targets' logits are picked up here, while the pixels are read.
    let t4 = vec4<i32>(row_target(row0), row_target(row0 + 1u), row_target(row0 + 2u), row_target(row0 + 3u));
    let tq = bitcast<vec4<u32>>(t4);
    var x_t = vec4<f32>(0.0);
    // With the row in registers, the max first and then the sum: one exp
    // per element and no rescaling.
    var m = vec4<f32>(LOWEST);
    for (var c = 0u; c < FIXED_N; c++) {
        let idx = base + c * stride;
        let v = load_input4(idx / 4u);
        xs[c] = v;
        m = max(m, v);
        if (TARGET_KIND != TARGET_PROBS) {
            x_t += select(vec4<f32>(0.0), v, vec4<u32>(c) == tq);
        }
        if (track_argmax() || TARGET_KIND == TARGET_PROBS) {
            t0 = gather_extra(t0, c, idx, v.x);
            t1 = gather_extra(t1, c, idx + 1u, v.y);
            t2 = gather_extra(t2, c, idx + 2u, v.z);
            t3 = gather_extra(t3, c, idx + 3u, v.w);
        }
    }
    var sum = vec4<f32>(0.0);
    var t = vec4<f32>(0.0);
    for (var c = 0u; c < FIXED_N; c++) {
        let d = xs[c] - m;
        let e = exp(d);
        sum += e;
        if (WRITE_ENTROPY) {
            t += entropy_lanes(e, d);
        }
    }
    t0.t = t.x;
    t1.t = t.y;
    t2.t = t.z;
    t3.t = t.w;
    t0.m = m.x;
    t1.m = m.y;
    t2.m = m.z;
    t3.m = m.w;
    t0.s = sum.x;
    t1.s = sum.y;
    t2.s = sum.z;
    t3.s = sum.w;
    let stats = call_stats();
    let p0 = plan_from(row0, t0, t4.x, stats);
    let p1 = plan_from(row0 + 1u, t1, t4.y, stats);
    let p2 = plan_from(row0 + 2u, t2, t4.z, stats);
    let p3 = plan_from(row0 + 3u, t3, t4.w, stats);
    var acc = vec4<f32>(0.0);
    if (TARGET_KIND == TARGET_PROBS) {
        // The gradient (if any) and the loss terms of each class plane.
        for (var c = 0u; c < FIXED_N; c++) {
            acc += pixel_quad(p0, p1, p2, p3, c, base + c * stride, xs[c]);
        }
    } else {
        if (WRITE_GRAD) {
            let g = quad_plan(p0, p1, p2, p3);
            for (var c = 0u; c < FIXED_N; c++) {
                let idx = base + c * stride;
                grad_store4(idx / 4u, quad_grad(g, vec4<f32>(class_weight(c)), xs[c]));
            }
            store_target(p0, base, x_t.x);
            store_target(p1, base + 1u, x_t.y);
            store_target(p2, base + 2u, x_t.z);
            store_target(p3, base + 3u, x_t.w);
        }
        if (SMOOTHING) {
            for (var c = 0u; c < FIXED_N; c++) {
                acc += pixel_loss(p0, p1, p2, p3, c, base + c * stride, xs[c]);
            }
        }
    }
    return vec4<f32>(
        finish_row(p0, row0, x_t.x, t0, acc.x),
        finish_row(p1, row0 + 1u, x_t.y, t1, acc.y),
        finish_row(p2, row0 + 2u, x_t.z, t2, acc.z),
        finish_row(p3, row0 + 3u, x_t.w, t3, acc.w),
    );
}
