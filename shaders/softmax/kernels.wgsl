// Softmax and log-softmax along the class axis of (outer, classes, inner),
// forward and backward (vector-Jacobian products).
//
// A "row" is one (n, s) pair; its classes lie `inner` elements apart.
//   softmax_wide / backward_wide      a workgroup per row (software adapters:
//                                     long rows, inner = 1);
//   softmax_narrow / backward_narrow  an invocation per row (short rows,
//                                     channel-first maps of few classes);
//   softmax_team / backward_team      GPUs, inner = 1 (teams.wgsl): a team
//   (softmax_team4 / backward_team4   of TEAM neighbouring invocations per
//    in vec4s, C % 4 = 0)             row (shaders/lib/teams.wgsl), its row
//                                     held in registers when it fits;
//   softmax_map_team /                GPUs, maps too long for an invocation
//   backward_map_team                 per pixel (teams.wgsl): a team per
//                                     pixel, neighbouring pixels side by side;
//   softmax_partial, softmax_split /  rows too long for one workgroup's
//   backward_partial, backward_split  loops (see `LOOP_TRIPS_MAX` in
//                                     src/core/device.rs), or on GPUs rows
//                                     too long to hold and too few to fill
//                                     it: `splits` workgroups per row,
//                                     each over a span of classes; the first
//                                     pass leaves each span's partial in
//                                     `parts`, the second merges the row's
//                                     partials in span order and writes its span.
// Forward: each row is read twice (the (max, sum-exp) pass, then the output
// pass), except where a team or an invocation holds it, and the output
// written once. Backward, given the forward output y and the upstream
// gradient dy:
//   softmax:      dx = y * (dy - sum_c dy_c y_c)
//   log-softmax:  dx = dy - exp(y) * sum_c dy_c
// with the row sum reduced in a fixed order.

struct Params {
    outer: u32,
    classes: u32,
    inner: u32,
    rows: u32,
    // 0 = softmax, 1 = log-softmax
    mode: u32,
    // Split rows: workgroups per row and classes per workgroup.
    splits: u32,
    span: u32,
    _pad: u32,
}

const LOG_SOFTMAX: u32 = 1u;
const WIDE_WG: u32 = 64u;
const NARROW_WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
// The input x (binding 1), the output y (2) and, backward only, the
// upstream gradient dy (3; x then holds the forward output), stored in the
// call's precision, come from the storage the core declares
// (src/core/storage.rs), through x_load, dy_load and y_store; their vec4
// views (5, 6, 7: the same regions) through x_load4, dy_load4 and y_store4,
// whole words in every precision (a scalar bf16 store is two atomic bit
// operations). Every sum is f32.
// Split rows only: a partial per (row, span), (max, sum-exp) forward or
// (sum, unused) backward.
@group(0) @binding(4) var<storage, read_write> parts: array<vec2<f32>>;

fn element(row: u32, c: u32) -> u32 {
    return row_start(row, p.classes, p.inner) + c * p.inner;
}


// log-softmax as (v - m) - log s, not v - (m + log s), which loses the
// result to rounding when logits are large.
fn output(v: f32, ms: vec2<f32>, log_s: f32) -> f32 {
    if (p.mode == LOG_SOFTMAX) {
        return (v - ms.x) - log_s;
    }
    return exp(v - ms.x) / ms.y;
}

// The (max, sum-exp) of classes [c0, c1) of the row whose class 0 is at
// `base`, over the workgroup (every invocation gets it): each invocation's
// online pair, then a fixed tree.
fn span_stats(lid: u32, base: u32, c0: u32, c1: u32) -> vec2<f32> {
    var ms = vec2<f32>(LOWEST, 0.0);
    for (var c = c0 + lid; c < c1; c += WIDE_WG) {
        ms = ms_online(ms, x_load(base + c * p.inner));
    }
    return workgroup_ms(lid, ms);
}

@compute @workgroup_size(64)
fn softmax_wide(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = flat_workgroup(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = element(row, 0u);
    let total = span_stats(lid, base, 0u, p.classes);
    let log_s = log(total.y);
    for (var c = lid; c < p.classes; c += WIDE_WG) {
        let idx = base + c * p.inner;
        y_store(idx, output(x_load(idx), total, log_s));
    }
}

// With TEAM_HELD > 0 (GPUs: map pixels of at most TEAM_HELD classes), the
// invocation holds its row in registers between the passes: read once.
@compute @workgroup_size(64)
fn softmax_narrow(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = (flat_workgroup(wid, nwg)) * NARROW_WG + lid;
    if (row >= p.rows) {
        return;
    }
    let base = element(row, 0u);
    var ms = vec2<f32>(LOWEST, 0.0);
    var xs: array<f32, TEAM_HELD_MAX>;
    if (TEAM_HELD > 0u) {
        for (var c = 0u; c < TEAM_HELD; c++) {
            if (c < p.classes) {
                xs[c] = x_load(base + c * p.inner);
                ms = ms_online(ms, xs[c]);
            }
        }
    } else {
        for (var c = 0u; c < p.classes; c++) {
            ms = ms_online(ms, x_load(base + c * p.inner));
        }
    }
    let log_s = log(ms.y);
    if (TEAM_HELD > 0u) {
        for (var c = 0u; c < TEAM_HELD; c++) {
            if (c < p.classes) {
                y_store(base + c * p.inner, output(xs[c], ms, log_s));
            }
        }
    } else {
        for (var c = 0u; c < p.classes; c++) {
            let idx = base + c * p.inner;
            y_store(idx, output(x_load(idx), ms, log_s));
        }
    }
}

// ---------------------------------------------------------------- backward

// The row-sum term of the vector-Jacobian product for a class whose forward
// output is y and upstream gradient dy.
fn term_of(y: f32, dy: f32) -> f32 {
    if (p.mode == LOG_SOFTMAX) {
        return dy;
    }
    return dy * y;
}

// The gradient of that class, given the row sum.
fn value_of(y: f32, dy: f32, total: f32) -> f32 {
    if (p.mode == LOG_SOFTMAX) {
        return dy - exp(y) * total;
    }
    return y * (dy - total);
}

fn backward_term(idx: u32) -> f32 {
    return term_of(x_load(idx), dy_load(idx));
}

fn backward_value(idx: u32, total: f32) -> f32 {
    return value_of(x_load(idx), dy_load(idx), total);
}

// The backward's row-sum term over classes [c0, c1), as `span_stats`.
fn span_sum(lid: u32, base: u32, c0: u32, c1: u32) -> f32 {
    var acc = 0.0;
    for (var c = c0 + lid; c < c1; c += WIDE_WG) {
        acc += backward_term(base + c * p.inner);
    }
    return workgroup_sum(lid, vec2<f32>(acc, 0.0)).x;
}

@compute @workgroup_size(64)
fn backward_wide(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = flat_workgroup(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = element(row, 0u);
    let total = span_sum(lid, base, 0u, p.classes);
    for (var c = lid; c < p.classes; c += WIDE_WG) {
        let idx = base + c * p.inner;
        y_store(idx, backward_value(idx, total));
    }
}

// Held as softmax_narrow's, two values a class (TEAM_HELD_MAX / 2 at most).
@compute @workgroup_size(64)
fn backward_narrow(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = (flat_workgroup(wid, nwg)) * NARROW_WG + lid;
    if (row >= p.rows) {
        return;
    }
    let base = element(row, 0u);
    var total = 0.0;
    var ys: array<f32, TEAM_HELD_MAX / 2u>;
    var dys: array<f32, TEAM_HELD_MAX / 2u>;
    if (TEAM_HELD > 0u) {
        for (var c = 0u; c < TEAM_HELD; c++) {
            if (c < p.classes) {
                ys[c] = x_load(base + c * p.inner);
                dys[c] = dy_load(base + c * p.inner);
                total += term_of(ys[c], dys[c]);
            }
        }
    } else {
        for (var c = 0u; c < p.classes; c++) {
            total += backward_term(base + c * p.inner);
        }
    }
    if (TEAM_HELD > 0u) {
        for (var c = 0u; c < TEAM_HELD; c++) {
            if (c < p.classes) {
                y_store(base + c * p.inner, value_of(ys[c], dys[c], total));
            }
        }
    } else {
        for (var c = 0u; c < p.classes; c++) {
            let idx = base + c * p.inner;
            y_store(idx, backward_value(idx, total));
        }
    }
}

// ---------------------------------------------------------------- split rows

// Row and class span [x, y) of workgroup `g` of a split dispatch, and its
// partial's slot (`row * splits + k`).
fn split_of(g: u32) -> vec3<u32> {
    let row = g / p.splits;
    let k = g - row * p.splits;
    let c0 = k * p.span;
    return vec3<u32>(row, c0, min(c0 + p.span, p.classes));
}

@compute @workgroup_size(64)
fn softmax_partial(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = flat_workgroup(wid, nwg);
    let sp = split_of(g);
    if (sp.x >= p.rows) {
        return;
    }
    let total = span_stats(lid, element(sp.x, 0u), sp.y, sp.z);
    if (lid == 0u) {
        parts[g] = total;
    }
}

@compute @workgroup_size(64)
fn softmax_split(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = flat_workgroup(wid, nwg);
    let sp = split_of(g);
    if (sp.x >= p.rows) {
        return;
    }
    // Every workgroup of the row merges its partials in the same order.
    var total = parts[sp.x * p.splits];
    for (var k = 1u; k < p.splits; k++) {
        total = ms_merge(total, parts[sp.x * p.splits + k]);
    }
    let log_s = log(total.y);
    let base = element(sp.x, 0u);
    for (var c = sp.y + lid; c < sp.z; c += WIDE_WG) {
        let idx = base + c * p.inner;
        y_store(idx, output(x_load(idx), total, log_s));
    }
}

@compute @workgroup_size(64)
fn backward_partial(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = flat_workgroup(wid, nwg);
    let sp = split_of(g);
    if (sp.x >= p.rows) {
        return;
    }
    let total = span_sum(lid, element(sp.x, 0u), sp.y, sp.z);
    if (lid == 0u) {
        parts[g] = vec2<f32>(total, 0.0);
    }
}

@compute @workgroup_size(64)
fn backward_split(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = flat_workgroup(wid, nwg);
    let sp = split_of(g);
    if (sp.x >= p.rows) {
        return;
    }
    var total = 0.0;
    for (var k = 0u; k < p.splits; k++) {
        total += parts[sp.x * p.splits + k].x;
    }
    let base = element(sp.x, 0u);
    for (var c = sp.y + lid; c < sp.z; c += WIDE_WG) {
        let idx = base + c * p.inner;
        y_store(idx, backward_value(idx, total));
    }
}
