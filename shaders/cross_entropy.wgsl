// Fused softmax cross-entropy with class-index targets: forward and backward.
//
// Layout: logits are (outer, classes, inner) in row-major order, the class axis
// in the middle. A "row" is one (n, s) pair: its classes lie `inner` elements
// apart. (N, C) is inner = 1; a segmentation map (N, C, H, W) is inner = H * W.
//
// Three entry points, recorded in this order by `record_cross_entropy`:
//   target_stats   one workgroup: the mean's denominator, the sum of class
//                  weights, and the target range check (status buffer).
//   rows_wide      a workgroup per row (long rows), or
//   rows_narrow    an invocation per row (short rows, channel-first maps):
//                  per-row loss and the gradient, each row read twice and
//                  the gradient written once.
//   reduce_loss    one workgroup: the fixed-order sum of the per-row losses.
// Every reduction has a fixed shape and order and no float atomics, so the
// same inputs give bit-identical outputs on the same adapter.

struct Params {
    outer: u32,
    classes: u32,
    inner: u32,
    rows: u32,
    ignore_index: i32,
    has_weights: u32,
    write_grad: u32,
    // 0 = none, 1 = mean, 2 = sum
    reduction: u32,
    smoothing: f32,
    // f32 NaN from the host: WGSL constant expressions cannot hold NaN.
    nan: f32,
    _pad1: u32,
    _pad2: u32,
}

const REDUCTION_MEAN: u32 = 1u;
// Below every finite f32: the identity of the (max, sum) merge. A true -inf
// would give (-inf) - (-inf) = NaN when two empty partials merge.
const LOWEST: f32 = -3.4028234663852886e38;
const STATS_WG: u32 = 256u;
const WIDE_WG: u32 = 64u;
const NARROW_WG: u32 = 64u;
const NO_POSITION: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read> weights: array<f32>;
// [denominator, sum of class weights]
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;
// [number of bad targets, first bad position, its value (i32 bits), 0]
@group(0) @binding(5) var<storage, read_write> status: array<u32>;
@group(0) @binding(6) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(7) var<storage, read_write> grad: array<f32>;
@group(0) @binding(8) var<storage, read_write> loss_out: array<f32>;

fn class_weight(c: u32) -> f32 {
    if (p.has_weights != 0u) {
        return weights[c];
    }
    return 1.0;
}

fn element(row: u32, c: u32) -> u32 {
    let n = row / p.inner;
    let s = row - n * p.inner;
    return (n * p.classes + c) * p.inner + s;
}

// ---------------------------------------------------------------- target_stats

var<workgroup> st_denom: array<f32, STATS_WG>;
var<workgroup> st_count: array<u32, STATS_WG>;
var<workgroup> st_wsum: array<f32, STATS_WG>;
var<workgroup> st_bad: array<u32, STATS_WG>;
var<workgroup> st_first: array<u32, STATS_WG>;

@compute @workgroup_size(256)
fn target_stats(@builtin(local_invocation_index) lid: u32) {
    var denom = 0.0;
    var count = 0u;
    var bad = 0u;
    var first = NO_POSITION;
    for (var i = lid; i < p.rows; i += STATS_WG) {
        let t = targets[i];
        if (t == p.ignore_index) {
            continue;
        }
        if (t < 0 || u32(t) >= p.classes) {
            bad += 1u;
            first = min(first, i);
            continue;
        }
        count += 1u;
        denom += class_weight(u32(t));
    }
    var wsum = 0.0;
    for (var c = lid; c < p.classes; c += STATS_WG) {
        wsum += class_weight(c);
    }
    st_denom[lid] = denom;
    st_count[lid] = count;
    st_wsum[lid] = wsum;
    st_bad[lid] = bad;
    st_first[lid] = first;
    workgroupBarrier();
    for (var off = STATS_WG / 2u; off > 0u; off >>= 1u) {
        if (lid < off) {
            st_denom[lid] += st_denom[lid + off];
            st_count[lid] += st_count[lid + off];
            st_wsum[lid] += st_wsum[lid + off];
            st_bad[lid] += st_bad[lid + off];
            st_first[lid] = min(st_first[lid], st_first[lid + off]);
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        if (p.has_weights != 0u) {
            stats[0] = st_denom[0];
        } else {
            // Counted in integers: exact up to 2^32 targets.
            stats[0] = f32(st_count[0]);
        }
        stats[1] = select(f32(p.classes), st_wsum[0], p.has_weights != 0u);
        status[0] = st_bad[0];
        if (st_bad[0] != 0u) {
            status[1] = st_first[0];
            status[2] = bitcast<u32>(targets[st_first[0]]);
        } else {
            status[1] = 0u;
            status[2] = 0u;
        }
        status[3] = 0u;
    }
}

// ---------------------------------------------------------------- per-row math

// The gradient scale of the reduction: 1 / denominator for mean, else 1.
fn grad_scale() -> f32 {
    if (p.reduction == REDUCTION_MEAN) {
        return 1.0 / stats[0];
    }
    return 1.0;
}

// Online (max, sum-exp) update with one element.
fn online(ms: vec2<f32>, x: f32) -> vec2<f32> {
    if (x > ms.x) {
        return vec2<f32>(x, ms.y * exp(ms.x - x) + 1.0);
    }
    return vec2<f32>(ms.x, ms.y + exp(x - ms.x));
}

// Merge of two (max, sum-exp) pairs: m = max(m1, m2), s = s1 e^(m1-m) + s2 e^(m2-m).
fn merge(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let m = max(a.x, b.x);
    return vec2<f32>(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}

// What a row needs in its second pass.
struct RowPlan {
    // 0 = counted, 1 = ignored, 2 = target out of range
    kind: u32,
    target_class: u32,
    // (1 - eps) * w[t] * scale: the weight of p - onehot(t) in the gradient
    nll_coef: f32,
    // eps / C * scale: the weight of (W p - w) in the gradient
    smooth_coef: f32,
    wsum: f32,
}

fn plan_row(row: u32) -> RowPlan {
    var plan: RowPlan;
    let t = targets[row];
    plan.kind = 0u;
    plan.target_class = 0u;
    if (t == p.ignore_index) {
        plan.kind = 1u;
    } else if (t < 0 || u32(t) >= p.classes) {
        plan.kind = 2u;
    } else {
        plan.target_class = u32(t);
    }
    let scale = grad_scale();
    plan.nll_coef = (1.0 - p.smoothing) * class_weight(plan.target_class) * scale;
    plan.smooth_coef = p.smoothing / f32(p.classes) * scale;
    plan.wsum = stats[1];
    return plan;
}

fn grad_value(plan: RowPlan, c: u32, prob: f32) -> f32 {
    let onehot = select(0.0, 1.0, c == plan.target_class);
    var g = plan.nll_coef * (prob - onehot);
    if (p.smoothing != 0.0) {
        g += plan.smooth_coef * (plan.wsum * prob - class_weight(c));
    }
    return g;
}

// The row's loss from its log-sum-exp and, with smoothing, sum_c w_c logp_c.
fn row_value(plan: RowPlan, row: u32, lse: f32, weighted_logp_sum: f32) -> f32 {
    if (plan.kind == 1u) {
        return 0.0;
    }
    if (plan.kind == 2u) {
        return p.nan; // the status buffer says why
    }
    let logp_t = logits[element(row, plan.target_class)] - lse;
    var loss = -(1.0 - p.smoothing) * class_weight(plan.target_class) * logp_t;
    if (p.smoothing != 0.0) {
        loss -= p.smoothing / f32(p.classes) * weighted_logp_sum;
    }
    return loss;
}

// ---------------------------------------------------------------- rows_wide

var<workgroup> wide_ms: array<vec2<f32>, WIDE_WG>;
var<workgroup> wide_sum: array<f32, WIDE_WG>;

@compute @workgroup_size(64)
fn rows_wide(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let base = element(row, 0u);
    let stride = p.inner;

    // Pass 1: per-invocation online (max, sum-exp), then a fixed tree merge.
    var ms = vec2<f32>(LOWEST, 0.0);
    for (var c = lid; c < p.classes; c += WIDE_WG) {
        ms = online(ms, logits[base + c * stride]);
    }
    wide_ms[lid] = ms;
    workgroupBarrier();
    for (var off = WIDE_WG / 2u; off > 0u; off >>= 1u) {
        if (lid < off) {
            wide_ms[lid] = merge(wide_ms[lid], wide_ms[lid + off]);
        }
        workgroupBarrier();
    }
    let total = wide_ms[0];
    let lse = total.x + log(total.y);
    let plan = plan_row(row);

    // Pass 2: the gradient, written once, and sum_c w_c logp_c for smoothing.
    var wl = 0.0;
    let write = p.write_grad != 0u;
    for (var c = lid; c < p.classes; c += WIDE_WG) {
        let idx = base + c * stride;
        let x = logits[idx];
        if (p.smoothing != 0.0) {
            wl += class_weight(c) * (x - lse);
        }
        if (write) {
            var g = 0.0;
            if (plan.kind == 0u) {
                g = grad_value(plan, c, exp(x - total.x) / total.y);
            } else if (plan.kind == 2u) {
                g = p.nan;
            }
            grad[idx] = g;
        }
    }
    if (p.smoothing != 0.0) {
        wide_sum[lid] = wl;
        workgroupBarrier();
        for (var off = WIDE_WG / 2u; off > 0u; off >>= 1u) {
            if (lid < off) {
                wide_sum[lid] += wide_sum[lid + off];
            }
            workgroupBarrier();
        }
    }
    if (lid == 0u) {
        row_loss[row] = row_value(plan, row, lse, wide_sum[0]);
    }
}

// ---------------------------------------------------------------- rows_narrow

@compute @workgroup_size(64)
fn rows_narrow(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = (wid.x + wid.y * nwg.x) * NARROW_WG + lid;
    if (row >= p.rows) {
        return;
    }
    let base = element(row, 0u);
    let stride = p.inner;
    var ms = vec2<f32>(LOWEST, 0.0);
    for (var c = 0u; c < p.classes; c++) {
        ms = online(ms, logits[base + c * stride]);
    }
    let lse = ms.x + log(ms.y);
    let plan = plan_row(row);
    var wl = 0.0;
    let write = p.write_grad != 0u;
    for (var c = 0u; c < p.classes; c++) {
        let idx = base + c * stride;
        let x = logits[idx];
        if (p.smoothing != 0.0) {
            wl += class_weight(c) * (x - lse);
        }
        if (write) {
            var g = 0.0;
            if (plan.kind == 0u) {
                g = grad_value(plan, c, exp(x - ms.x) / ms.y);
            } else if (plan.kind == 2u) {
                g = p.nan;
            }
            grad[idx] = g;
        }
    }
    row_loss[row] = row_value(plan, row, lse, wl);
}

// ---------------------------------------------------------------- reduce_loss

var<workgroup> red_sum: array<f32, STATS_WG>;

@compute @workgroup_size(256)
fn reduce_loss(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var i = lid; i < p.rows; i += STATS_WG) {
        acc += row_loss[i];
    }
    red_sum[lid] = acc;
    workgroupBarrier();
    for (var off = STATS_WG / 2u; off > 0u; off >>= 1u) {
        if (lid < off) {
            red_sum[lid] += red_sum[lid + off];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        if (p.reduction == REDUCTION_MEAN) {
            // 0 / 0 = NaN for an all-ignored batch, as in PyTorch.
            loss_out[0] = red_sum[0] / stats[0];
        } else {
            loss_out[0] = red_sum[0];
        }
    }
}
