// Part of the cross-entropy module (see common.wgsl and `source` in
// src/ops/cross_entropy/pipelines.rs).
//
// ---------------------------------------------------------------- pass 1

// What pass 1 gathers over a row: the online (max, sum-exp) of the input,
// with WRITE_ENTROPY t = sum of e^(x - m) (x - m), its argmax, and for
// probability targets sum_c w_c q_c and the target's argmax.
struct Partial {
    m: f32,
    s: f32,
    t: f32,
    // argmax of the input and its value's order key (kept apart from m,
    // which may be LOWEST)
    arg: u32,
    xkey: u32,
    q: f32,
    tkey: u32,
    targ: u32,
}

// The argmaxes start below every value with no position: the first element
// is taken even when it is -inf.
fn empty_partial() -> Partial {
    return Partial(LOWEST, 0.0, 0.0, NO_POSITION, 0u, 0.0, 0u, NO_POSITION);
}

// Whether pass 1 keeps the input's argmax (a flag or a predicted class).
fn track_argmax() -> bool {
    return COUNT_CORRECT || WRITE_ARGMAX;
}

// An f32 as a u32 that orders as torch.argmax orders values: every NaN
// above +inf (and equal to each other, so the first wins), -0 equal to +0,
// and nothing at 0 (the empty partial's key). An integer compare, so it
// holds whatever a device does with NaNs and subnormals in float compares.
fn order_key(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    let mag = b & 0x7fffffffu;
    if (mag > 0x7f800000u) {
        return 0xffffffffu;
    }
    if (mag == 0u) {
        return 0x80000000u;
    }
    return select(b | 0x80000000u, ~b, b != mag);
}

// Whether (key a, index ia) wins over (key b, index ib): larger, or equal and first.
fn key_wins(a: u32, ia: u32, b: u32, ib: u32) -> bool {
    return a > b || (a == b && ia < ib);
}

// The winner of two (key, index) argmaxes, as (key, index): every merge's.
fn first_largest(a: u32, ia: u32, b: u32, ib: u32) -> vec2<u32> {
    return select(vec2<u32>(b, ib), vec2<u32>(a, ia), key_wins(a, ia, b, ib));
}

// t of a partial whose maximum moves by d = m_old - m_new <= 0 (scale = e^d):
// e^(x - m') (x - m') = e^d e^(x - m) ((x - m) + d) summed. 0 when the
// partial is empty or vanishes at the new maximum (d = -inf would give
// -inf * 0 = NaN).
fn entropy_shift(t: f32, s: f32, d: f32, scale: f32) -> f32 {
    return select(scale * (t + d * s), 0.0, scale == 0.0);
}

// t of two partials (t, s, m each) merged at their merged maximum m.
fn merged_t(ta: f32, sa: f32, ma: f32, tb: f32, sb: f32, mb: f32, m: f32) -> f32 {
    return entropy_shift(ta, sa, ma - m, exp(ma - m)) + entropy_shift(tb, sb, mb - m, exp(mb - m));
}

// One element's e^(x - m) (x - m) from e = e^(x - m) and d = x - m; 0 where
// e is (a -inf logit would give 0 * -inf).
fn entropy_term(e: f32, d: f32) -> f32 {
    return select(e * d, 0.0, e == 0.0);
}

// entropy_term of four elements, each in its lane.
fn entropy_lanes(e: vec4<f32>, d: vec4<f32>) -> vec4<f32> {
    return select(e * d, vec4<f32>(0.0), e == vec4<f32>(0.0));
}

fn entropy_terms4(e: vec4<f32>, d: vec4<f32>) -> f32 {
    let t = entropy_lanes(e, d);
    return (t.x + t.y) + (t.z + t.w);
}

fn soft_q(idx: u32) -> f32 {
    let y = bitcast<f32>(targets[idx + p.target_delta]);
    return y * (1.0 - p.smoothing) + p.smoothing / f32(p.all_classes);
}

// Argmax (first index on ties, as torch.argmax) and the probability-target
// terms of one element; the (max, sum-exp) pair is updated by the callers.
fn gather_extra(acc: Partial, c: u32, idx: u32, x: f32) -> Partial {
    var r = acc;
    if (track_argmax()) {
        let key = order_key(x);
        if (key_wins(key, c, r.xkey, r.arg)) {
            r.xkey = key;
            r.arg = c;
        }
    }
    if (TARGET_KIND == TARGET_PROBS) {
        r.q += class_weight(c) * soft_q(idx);
        let key = order_key(bitcast<f32>(targets[idx + p.target_delta]));
        if (key_wins(key, c, r.tkey, r.targ)) {
            r.tkey = key;
            r.targ = c;
        }
    }
    return r;
}

// One element into the partial, branch-free: m' = max(m, x), s' = s e^(m-m') + e^(x-m')
// (and t as entropy_shift says).
// (A form that rescales only when the maximum grows, one exp per element
// instead of two, measured no faster on lavapipe: see BENCHMARKS.md.)
fn update(acc: Partial, c: u32, idx: u32, x: f32) -> Partial {
    var r = gather_extra(acc, c, idx, x);
    let m = max(r.m, x);
    let scale = exp(r.m - m);
    let e = exp(x - m);
    if (WRITE_ENTROPY) {
        r.t = entropy_shift(r.t, r.s, r.m - m, scale) + entropy_term(e, x - m);
    }
    r.s = r.s * scale + e;
    r.m = m;
    return r;
}

// Four elements at once: one rescale for the four (5 exps instead of 8).
fn update4(acc: Partial, c: vec4<u32>, idx: vec4<u32>, x: vec4<f32>) -> Partial {
    var r = acc;
    if (track_argmax() || TARGET_KIND == TARGET_PROBS) {
        r = gather_extra(r, c.x, idx.x, x.x);
        r = gather_extra(r, c.y, idx.y, x.y);
        r = gather_extra(r, c.z, idx.z, x.z);
        r = gather_extra(r, c.w, idx.w, x.w);
    }
    let m = max(r.m, max(max(x.x, x.y), max(x.z, x.w)));
    let e = exp(x - vec4<f32>(m));
    let scale = exp(r.m - m);
    if (WRITE_ENTROPY) {
        r.t = entropy_shift(r.t, r.s, r.m - m, scale) + entropy_terms4(e, x - vec4<f32>(m));
    }
    r.s = r.s * scale + ((e.x + e.y) + (e.z + e.w));
    r.m = m;
    return r;
}

fn gather(acc: Partial, c: u32, idx: u32) -> Partial {
    return update(acc, c, idx, load_input(idx));
}

fn gather4(acc: Partial, c: vec4<u32>, idx: vec4<u32>) -> Partial {
    let x = vec4<f32>(load_input(idx.x), load_input(idx.y), load_input(idx.z), load_input(idx.w));
    return update4(acc, c, idx, x);
}

// Pass 2 of one element x (class c, flat index idx): writes its gradient and
// returns (its loss term, x if c is the target class else 0).
fn scalar_pass2(plan: RowPlan, c: u32, idx: u32, x: f32) -> vec2<f32> {
    if (WRITE_GRAD) {
        grad_store(idx, grad_value(plan, c, idx, x));
    }
    return vec2<f32>(loss_term(plan, c, idx, x), select(0.0, x, c == plan.target_class));
}

// m = max(m1, m2), s = s1 e^(m1-m) + s2 e^(m2-m), t likewise; argmaxes keep the first index.
fn merge(a: Partial, b: Partial) -> Partial {
    var r: Partial;
    let ms = ms_merge(vec2<f32>(a.m, a.s), vec2<f32>(b.m, b.s));
    r.m = ms.x;
    r.s = ms.y;
    r.t = 0.0;
    if (WRITE_ENTROPY) {
        r.t = merged_t(a.t, a.s, a.m, b.t, b.s, b.m, r.m);
    }
    let x = first_largest(a.xkey, a.arg, b.xkey, b.arg);
    r.xkey = x.x;
    r.arg = x.y;
    r.q = a.q + b.q;
    let y = first_largest(a.tkey, a.targ, b.tkey, b.targ);
    r.tkey = y.x;
    r.targ = y.y;
    return r;
}
