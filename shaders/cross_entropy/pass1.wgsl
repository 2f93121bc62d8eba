// Part of the cross-entropy module (see common.wgsl and `source` in
// src/ops/cross_entropy/pipelines.rs).
//
// ---------------------------------------------------------------- pass 1

// What pass 1 gathers over a row: the online (max, sum-exp) of the input,
// its argmax, and for probability targets sum_c w_c q_c and the target's argmax.
struct Partial {
    m: f32,
    s: f32,
    // argmax of the input and its value (kept apart from m, which may be LOWEST)
    arg: u32,
    tmax_x: f32,
    q: f32,
    tmax: f32,
    targ: u32,
}

// The argmaxes start at -inf with no position: the first element that is
// not NaN is taken even when it is -inf (NaN never wins), as in `cpu`.
fn empty_partial() -> Partial {
    return Partial(LOWEST, 0.0, NO_POSITION, p.neg_inf, 0.0, p.neg_inf, NO_POSITION);
}

fn soft_q(idx: u32) -> f32 {
    let y = bitcast<f32>(targets[idx + p.target_delta]);
    return y * (1.0 - p.smoothing) + p.smoothing / f32(p.all_classes);
}

// Argmax (first index on ties, as torch.argmax) and the probability-target
// terms of one element; the (max, sum-exp) pair is updated by the callers.
fn gather_extra(acc: Partial, c: u32, idx: u32, x: f32) -> Partial {
    var r = acc;
    if (COUNT_CORRECT && (x > r.tmax_x || (x == r.tmax_x && c < r.arg))) {
        r.tmax_x = x;
        r.arg = c;
    }
    if (TARGET_KIND == TARGET_PROBS) {
        r.q += class_weight(c) * soft_q(idx);
        let y = bitcast<f32>(targets[idx + p.target_delta]);
        if (y > r.tmax || (y == r.tmax && c < r.targ)) {
            r.tmax = y;
            r.targ = c;
        }
    }
    return r;
}

// One element into the partial, branch-free: m' = max(m, x), s' = s e^(m-m') + e^(x-m').
// (A form that rescales only when the maximum grows, one exp per element
// instead of two, measured no faster on lavapipe: see BENCHMARKS.md.)
fn update(acc: Partial, c: u32, idx: u32, x: f32) -> Partial {
    var r = gather_extra(acc, c, idx, x);
    let m = max(r.m, x);
    r.s = r.s * exp(r.m - m) + exp(x - m);
    r.m = m;
    return r;
}

// Four elements at once: one rescale for the four (5 exps instead of 8).
fn update4(acc: Partial, c: vec4<u32>, idx: vec4<u32>, x: vec4<f32>) -> Partial {
    var r = acc;
    if (COUNT_CORRECT || TARGET_KIND == TARGET_PROBS) {
        r = gather_extra(r, c.x, idx.x, x.x);
        r = gather_extra(r, c.y, idx.y, x.y);
        r = gather_extra(r, c.z, idx.z, x.z);
        r = gather_extra(r, c.w, idx.w, x.w);
    }
    let m = max(r.m, max(max(x.x, x.y), max(x.z, x.w)));
    let e = exp(x - vec4<f32>(m));
    r.s = r.s * exp(r.m - m) + ((e.x + e.y) + (e.z + e.w));
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

// m = max(m1, m2), s = s1 e^(m1-m) + s2 e^(m2-m); argmaxes keep the first index.
fn merge(a: Partial, b: Partial) -> Partial {
    var r: Partial;
    let ms = ms_merge(vec2<f32>(a.m, a.s), vec2<f32>(b.m, b.s));
    r.m = ms.x;
    r.s = ms.y;
    r.arg = select(b.arg, a.arg, a.tmax_x > b.tmax_x || (a.tmax_x == b.tmax_x && a.arg < b.arg));
    r.tmax_x = max(a.tmax_x, b.tmax_x);
    r.q = a.q + b.q;
    r.tmax = max(a.tmax, b.tmax);
    r.targ = select(b.targ, a.targ, a.tmax > b.tmax || (a.tmax == b.tmax && a.targ < b.targ));
    return r;
}
