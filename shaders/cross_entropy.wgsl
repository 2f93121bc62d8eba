// Fused softmax cross-entropy: forward and backward, every input and target kind.
//
// Layout: the input is (outer, classes, inner) in row-major order, the class
// axis in the middle. A "row" is one (n, s) pair: its classes lie `inner`
// elements apart. (N, C) is inner = 1; a segmentation map (N, C, H, W) is
// inner = H * W, and neighbouring invocations of `rows_narrow` read
// neighbouring pixels of each class plane.
//
// Entry points, recorded in this order by `record_cross_entropy`:
//   target_stats  one workgroup: the mean's denominator, the sum of class
//                 weights, and the class-index range check (status buffer).
//   rows_wide     a workgroup of WIDE_WG invocations per row (long rows; also
//                 rows_wide4 and rows_wide_mixed with vec4 loads), or
//   rows_narrow   an invocation per row (short rows, channel-first maps):
//                 per-row loss and the gradient; each row of the input is
//                 read twice and the gradient written once.
//   reduce_loss   one workgroup: fixed-order sums of the per-row losses
//                 (mean, sum) and of the correct-prediction flags.
// Every reduction has a fixed shape and order and no float atomics, so the
// same inputs give bit-identical outputs on the same adapter.
//
// Per row, with target distribution q (class index t: q = (1-eps) onehot(t) + eps/C;
// probabilities y: q = (1-eps) y + eps/C), class weights w, sample weight s_i,
// row weight r = w[t] (class index) or 1 (probabilities) and scale = 1/denominator
// for mean (else 1):
//   loss_i = s_i * (-sum_c w_c q_c logp_c) + s_i * r * z * lse^2
//   d loss / d input_j = scale * s_i * G_j, where G_j is
//     logits:    p_j * sum_c w_c q_c - w_j q_j  (+ r * 2 z lse p_j)
//     log-probs: -w_j q_j
//     probs:     -w_j q_j / x_j
// For class-index targets the loss is evaluated as PyTorch does,
// (1-eps)(-w_t logp_t) + eps/C (-sum_c w_c logp_c), so a -inf logit away
// from the target never meets a zero weight (0 * -inf = NaN).

struct Params {
    outer: u32,
    classes: u32,
    inner: u32,
    rows: u32,
    ignore_index: i32,
    // 0 = none, 1 = mean, 2 = sum
    reduction: u32,
    smoothing: f32,
    // f32 NaN from the host: WGSL constant expressions cannot hold NaN.
    nan: f32,
    z_loss: f32,
    // 1: an all-ignored mean is 0 instead of NaN
    empty_mean_zero: u32,
    // The rows pass covers rows [row_offset, row_end). The input, the
    // gradient and probability targets are bound from the aligned offset at
    // or before row_offset's first element (`elem_offset` and `target_delta`
    // below give the shift), so a tensor larger than one storage binding is
    // processed in chunks; per-row buffers are bound whole and indexed by the
    // global row.
    row_offset: u32,
    row_end: u32,
    // Split rows (`split_*` kernels): workgroups per row and classes per workgroup.
    splits: u32,
    span: u32,
    // The chunk's binding of the input and gradient starts at an offset the
    // device accepts; `elem_offset` elements later lies its first row
    // (a multiple of 4 whenever a vec4 kernel runs).
    elem_offset: u32,
    // Probability targets: index into `targets` = input index + target_delta
    // (wrapping), as their chunk binding starts at its own aligned offset.
    target_delta: u32,
    // Words of per-row argmax flags in `aux` (rows with COUNT_CORRECT, else 0).
    flags: u32,
    // -inf from the host (see `nan`): the argmaxes' starting value.
    neg_inf: f32,
    // Workgroups of `target_partials` and `loss_partials` (1..=256),
    // each over a contiguous block of rows; their partials lie in `aux` from
    // word `partials` on (4 words per workgroup).
    groups: u32,
    partials: u32,
}

// Pipeline-overridable switches: each combination the caller uses gets its
// own pipeline (cached by the context), so the per-element loops carry no
// branches for options that are off.
override TARGET_KIND: u32 = 0u;
override INPUT_KIND: u32 = 0u;
override HAS_WEIGHTS: bool = false;
override HAS_SAMPLE_WEIGHTS: bool = false;
override SMOOTHING: bool = false;
override Z_LOSS: bool = false;
override WRITE_GRAD: bool = true;
override WRITE_LSE: bool = false;
override COUNT_CORRECT: bool = false;
// The gradient overwrites the input: reads come through `grad`/`grad4` (the
// caller's logits buffer) and `input`/`input4` are bound to a placeholder.
override IN_PLACE: bool = false;

const REDUCTION_MEAN: u32 = 1u;
const INPUT_LOGITS: u32 = 0u;
const INPUT_LOG_PROBS: u32 = 1u;
const INPUT_PROBS: u32 = 2u;
const TARGET_U8: u32 = 1u;
const TARGET_PROBS: u32 = 2u;
// Below every finite f32: the identity of the (max, sum) merge. A true -inf
// would give (-inf) - (-inf) = NaN when two empty partials merge.
const LOWEST: f32 = -3.4028234663852886e38;
// Invocations of the row reductions. Small, as each barrier of their trees
// costs a switch per SIMD batch of the workgroup on lavapipe: the map
// 8 x 21 x 256 x 256's loss_partials took ~1.3 ms at 256, ~0.8 ms at 64
// (BENCHMARKS.md).
const STATS_WG: u32 = 64u;
// Set by the host (`Kernels::wide_wg` in context.rs).
override WIDE_WG: u32 = 16u;
const NARROW_WG: u32 = 64u;
const NO_POSITION: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> p: Params;
// The input and gradient element type, `ELEM` (and `ELEM4`), comes from the
// prelude the module is assembled with: `shaders/lib/elem_f32.wgsl` or
// `elem_f16.wgsl` (see `cross_entropy_source` in context.rs); math is in f32.

@group(0) @binding(1) var<storage, read> input: array<ELEM>;
// i32 class ids, u8 class ids packed little-endian 4 per word, or f32 probabilities (as bits)
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read> weights: array<f32>;
// Scratch: [denominator (f32 bits), sum of class weights (f32 bits), 0, 0],
// then, with COUNT_CORRECT, one word per row (`flags` words): 1 where the
// row's argmax equals its target; then the split rows' partials.
@group(0) @binding(4) var<storage, read_write> aux: array<u32>;
// [number of bad targets, first bad position, its value (i32 bits), 0]
@group(0) @binding(5) var<storage, read_write> status: array<u32>;
@group(0) @binding(6) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(7) var<storage, read_write> grad: array<ELEM>;
@group(0) @binding(8) var<storage, read_write> loss_out: array<f32>;
@group(0) @binding(9) var<storage, read> sample_weights: array<f32>;
@group(0) @binding(10) var<storage, read_write> lse_out: array<f32>;
// Number of rows whose argmax equals the target (non-ignored rows only).
@group(0) @binding(11) var<storage, read_write> correct_out: array<u32>;
// `targets` again, four words per load, for target_partials (bound over the
// buffer's whole 16-byte units).
@group(0) @binding(14) var<storage, read> targets4: array<vec4<u32>>;

const AUX_ROWS: u32 = 4u;

fn denominator() -> f32 {
    return bitcast<f32>(aux[0]);
}

fn weight_sum() -> f32 {
    return bitcast<f32>(aux[1]);
}

fn class_weight(c: u32) -> f32 {
    if (HAS_WEIGHTS) {
        return weights[c];
    }
    return 1.0;
}

fn sample_weight(row: u32) -> f32 {
    if (HAS_SAMPLE_WEIGHTS) {
        return sample_weights[row];
    }
    return 1.0;
}

fn class_target(row: u32) -> i32 {
    if (TARGET_KIND == TARGET_U8) {
        return i32((targets[row / 4u] >> (8u * (row % 4u))) & 0xffu);
    }
    return bitcast<i32>(targets[row]);
}

// Flat index of class 0 of `row`; class c is at row_base(row) + c * p.inner.
// (One division per row, never per element.)
fn row_base(row: u32) -> u32 {
    let n = row / p.inner;
    let s = row - n * p.inner;
    return n * p.classes * p.inner + s;
}

// Flat index of class 0 of global row `row` within the current chunk's binding.
fn chunk_base(row: u32) -> u32 {
    return row_base(row - p.row_offset) + p.elem_offset;
}

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

struct TargetStats {
    denom: f32,
    count: u32,
    bad: u32,
    first: u32,
}

var<workgroup> st_denom: array<f32, STATS_WG>;
var<workgroup> st_count: array<u32, STATS_WG>;
var<workgroup> st_bad: array<u32, STATS_WG>;
var<workgroup> st_first: array<u32, STATS_WG>;

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
    return p.partials + 4u * g;
}

fn stats_add(a: TargetStats, b: TargetStats) -> TargetStats {
    return TargetStats(a.denom + b.denom, a.count + b.count, a.bad + b.bad, min(a.first, b.first));
}

// This invocation's share of the blocks' partials, folded in block order
// (blocks lid, lid + STATS_WG, ...) before the tree.
fn block_partials(lid: u32) -> TargetStats {
    var s = TargetStats(0.0, 0u, 0u, NO_POSITION);
    for (var g = lid; g < p.groups; g += STATS_WG) {
        let slot = block_slot(g);
        s = stats_add(s, TargetStats(bitcast<f32>(aux[slot]), aux[slot + 1u], aux[slot + 2u], aux[slot + 3u]));
    }
    return s;
}

// Fixed-order tree over the workgroup: the sums of denom, count and bad and
// the min of first; every invocation gets the total. Call from uniform
// control flow. (The loss reduction uses it too: loss in denom, correct rows
// in count.)
fn workgroup_stats(lid: u32, s: TargetStats) -> TargetStats {
    // Every invocation has read the previous call's total.
    workgroupBarrier();
    st_denom[lid] = s.denom;
    st_count[lid] = s.count;
    st_bad[lid] = s.bad;
    st_first[lid] = s.first;
    workgroupBarrier();
    for (var off = STATS_WG / 2u; off > 0u; off >>= 1u) {
        if (lid < off) {
            let sum = stats_add(
                TargetStats(st_denom[lid], st_count[lid], st_bad[lid], st_first[lid]),
                TargetStats(st_denom[lid + off], st_count[lid + off], st_bad[lid + off], st_first[lid + off]),
            );
            st_denom[lid] = sum.denom;
            st_count[lid] = sum.count;
            st_bad[lid] = sum.bad;
            st_first[lid] = sum.first;
        }
        workgroupBarrier();
    }
    return TargetStats(st_denom[0], st_count[0], st_bad[0], st_first[0]);
}

// One invocation's share of block g.
fn target_block(lid: u32, g: u32) -> TargetStats {
    let rows = group_rows(g);
    var s = TargetStats(0.0, 0u, 0u, NO_POSITION);
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
fn add_row(s: TargetStats, i: u32, t: i32, valid: bool) -> TargetStats {
    let kept = valid & (t != p.ignore_index);
    let bad = kept & ((t < 0) | (u32(t) >= p.classes));
    let ok = kept & !bad;
    var w = 0.0;
    if (HAS_WEIGHTS || HAS_SAMPLE_WEIGHTS) {
        // Indices clamped into range; rows that are not ok add 0.
        let c = min(u32(t), p.classes - 1u);
        w = select(0.0, class_weight(c) * sample_weight(min(i, p.rows - 1u)), ok);
    }
    return TargetStats(
        s.denom + w,
        s.count + select(0u, 1u, ok),
        s.bad + select(0u, 1u, bad),
        select(s.first, min(s.first, i), bad),
    );
}

// add_row for rows i (targets t), lane by lane.
fn add_quad(s: TargetStats, i: vec4<u32>, t: vec4<i32>, valid: vec4<bool>) -> TargetStats {
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
fn target_block4(lid: u32, g: u32) -> TargetStats {
    let rows = group_rows(g);
    var s = TargetStats(0.0, 0u, 0u, NO_POSITION);
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
    var s: TargetStats;
    if (TARGET_KIND == TARGET_PROBS) {
        s = target_block(lid, wid.x);
    } else {
        s = target_block4(lid, wid.x);
    }
    let total = workgroup_stats(lid, s);
    if (lid == 0u) {
        let slot = block_slot(wid.x);
        aux[slot] = bitcast<u32>(total.denom);
        aux[slot + 1u] = total.count;
        aux[slot + 2u] = total.bad;
        aux[slot + 3u] = total.first;
    }
}

@compute @workgroup_size(STATS_WG)
fn target_stats(@builtin(local_invocation_index) lid: u32) {
    // One block: no target_partials dispatch, the rows are read here.
    var s: TargetStats;
    if (p.groups == 1u) {
        s = target_block(lid, 0u);
    } else {
        s = block_partials(lid);
    }
    let total = workgroup_stats(lid, s);
    // The class weights' sum, over the same tree (in st_denom).
    var weights = f32(p.classes);
    if (HAS_WEIGHTS) {
        var wsum = 0.0;
        for (var c = lid; c < p.classes; c += STATS_WG) {
            wsum += class_weight(c);
        }
        weights = workgroup_stats(lid, TargetStats(wsum, 0u, 0u, 0u)).denom;
    }
    if (lid == 0u) {
        let weighted = HAS_WEIGHTS || HAS_SAMPLE_WEIGHTS;
        if (weighted && TARGET_KIND != TARGET_PROBS) {
            aux[0] = bitcast<u32>(total.denom);
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
    return y * (1.0 - p.smoothing) + p.smoothing / f32(p.classes);
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

fn load_input(idx: u32) -> f32 {
    if (IN_PLACE) {
        return f32(grad[idx]);
    }
    return f32(input[idx]);
}

fn store_grad(idx: u32, v: f32) {
    grad[idx] = ELEM(v);
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
        store_grad(idx, grad_value(plan, c, idx, x));
    }
    return vec2<f32>(loss_term(plan, c, idx, x), select(0.0, x, c == plan.target_class));
}

// m = max(m1, m2), s = s1 e^(m1-m) + s2 e^(m2-m); argmaxes keep the first index.
fn merge(a: Partial, b: Partial) -> Partial {
    var r: Partial;
    r.m = max(a.m, b.m);
    r.s = a.s * exp(a.m - r.m) + b.s * exp(b.m - r.m);
    r.arg = select(b.arg, a.arg, a.tmax_x > b.tmax_x || (a.tmax_x == b.tmax_x && a.arg < b.arg));
    r.tmax_x = max(a.tmax_x, b.tmax_x);
    r.q = a.q + b.q;
    r.tmax = max(a.tmax, b.tmax);
    r.targ = select(b.targ, a.targ, a.tmax > b.tmax || (a.tmax == b.tmax && a.targ < b.targ));
    return r;
}

// ---------------------------------------------------------------- per-row plan

struct RowPlan {
    // 0 = counted, 1 = ignored, 2 = class index out of range
    kind: u32,
    target_class: u32,
    // scale * s_i: the factor of the whole row's gradient
    a: f32,
    // sum_c w_c q_c
    q: f32,
    // w[t] for class indices, 1 for probabilities: the z-loss's weight
    r: f32,
    lse: f32,
    m: f32,
    inv_s: f32,
    log_s: f32,
}

// The row's class-index target; 0 with probability targets, whose buffer
// holds no class ids.
fn row_target(row: u32) -> i32 {
    if (TARGET_KIND == TARGET_PROBS) {
        return 0;
    }
    return class_target(row);
}

fn plan_row(row: u32, total: Partial) -> RowPlan {
    return plan_from(row, total, row_target(row), call_stats());
}

// What target_stats left for every row: 1 / the mean's denominator (1 for
// other reductions) and the sum of class weights.
struct CallStats {
    scale: f32,
    weight_sum: f32,
}

fn call_stats() -> CallStats {
    var scale = 1.0;
    if (p.reduction == REDUCTION_MEAN) {
        let d = denominator();
        scale = 1.0 / d;
        if (d == 0.0 && p.empty_mean_zero != 0u) {
            scale = 0.0;
        } else if (d == 0.0 && INPUT_KIND == INPUT_LOGITS) {
            // PyTorch's nll term is 0 / 0 there, and the softmax's backward
            // spreads its NaN over the row (with smoothing, 1 / 0 alone
            // would give infinities).
            scale = p.nan;
        }
    }
    return CallStats(scale, weight_sum());
}

// plan_row for a row whose class-index target `t` (ignored with probability
// targets) and call statistics the caller has read: the fixed kernels read
// them once for four rows, and each read is a loop over the SIMD lanes on
// lavapipe.
fn plan_from(row: u32, total: Partial, t: i32, stats: CallStats) -> RowPlan {
    var plan: RowPlan;
    plan.kind = 0u;
    plan.target_class = 0u;
    plan.r = 1.0;
    plan.q = total.q;
    if (TARGET_KIND != TARGET_PROBS) {
        if (t == p.ignore_index) {
            plan.kind = 1u;
        } else if (t < 0 || u32(t) >= p.classes) {
            plan.kind = 2u;
        } else {
            plan.target_class = u32(t);
        }
        plan.r = class_weight(plan.target_class);
        plan.q = (1.0 - p.smoothing) * plan.r + p.smoothing / f32(p.classes) * stats.weight_sum;
    }
    plan.a = stats.scale * sample_weight(row);
    plan.m = total.m;
    plan.inv_s = 1.0 / total.s;
    plan.log_s = log(total.s);
    plan.lse = total.m + log(total.s);
    return plan;
}

// q_c: the target distribution's mass on class c.
fn target_mass(plan: RowPlan, c: u32, idx: u32) -> f32 {
    if (TARGET_KIND == TARGET_PROBS) {
        return soft_q(idx);
    }
    let onehot = select(0.0, 1.0, c == plan.target_class);
    return (1.0 - p.smoothing) * onehot + p.smoothing / f32(p.classes);
}

// log p of input x. For logits, (x - m) - log s rather than x - (m + log s):
// with large logits the rounding of m + log s would swallow the result.
fn log_prob(x: f32, plan: RowPlan) -> f32 {
    if (INPUT_KIND == INPUT_LOGITS) {
        return (x - plan.m) - plan.log_s;
    }
    if (INPUT_KIND == INPUT_LOG_PROBS) {
        return x;
    }
    return log_subnormal(x);
}

// ln 2^-149: a subnormal f32 is its mantissa times 2^-149.
const LN_SUBNORMAL_UNIT: f32 = -103.27892990343184;

// The mantissa of a subnormal x (0 < |x| < 2^-126) as a float, with x's
// sign, or 0 for any other x. WGSL lets a GPU flush subnormals in
// arithmetic, so probabilities that small (softmax of large logits makes
// them) are taken from their bits.
fn subnormal_mantissa(x: f32) -> f32 {
    let bits = bitcast<u32>(x);
    let m = select(f32(bits & 0x7fffffu), -f32(bits & 0x7fffffu), (bits >> 31u) != 0u);
    return select(0.0, m, (bits & 0x7f800000u) == 0u);
}

// ln x, exact for subnormal x too (ln m + ln 2^-149); NaN for a negative one.
fn log_subnormal(x: f32) -> f32 {
    let m = subnormal_mantissa(x);
    if (m < 0.0) {
        return p.nan;
    }
    return select(log(x), log(m) + LN_SUBNORMAL_UNIT, m > 0.0);
}

// The per-pixel kernels add their class terms up over every class of a
// pixel: in one f32 running sum, thousands of large terms (smoothing over
// logits near 1e30) drift by 1e-4 relative. They sum blocks of SUM_BLOCK
// classes and then the blocks' sums, which bounds the drift by
// (SUM_BLOCK + C / SUM_BLOCK) roundings. (A compensated sum would be
// tighter, but shader compilers may simplify its correction away: WGSL's
// float arithmetic is not exact.)
const SUM_BLOCK: u32 = 32u;

// v * 2^149 by its exponent bits (±inf past f32's range; NaN stays NaN):
// a product of constants would let the compiler fold 2^149 into +inf.
fn times_2_149(v: f32) -> f32 {
    var r = v;
    var k = 149u;
    if ((bitcast<u32>(r) & 0x7f800000u) == 0u) {
        // Zero or subnormal: 2^24 makes a subnormal normal, exactly.
        r = r * 16777216.0;
        k = 125u;
    }
    let bits = bitcast<u32>(r);
    let e = (bits >> 23u) & 0xffu;
    if (e == 0u || e == 255u) {
        return r;
    }
    if (e + k >= 255u) {
        return bitcast<f32>((bits & 0x80000000u) | 0x7f800000u);
    }
    return bitcast<f32>(bits + (k << 23u));
}

// v / x, exact for subnormal x too ((v / m) * 2^149).
fn div_subnormal(v: f32, x: f32) -> f32 {
    let m = subnormal_mantissa(x);
    return select(v / x, times_2_149(v / select(m, 1.0, m == 0.0)), m != 0.0);
}

fn grad_value(plan: RowPlan, c: u32, idx: u32, x: f32) -> f32 {
    if (plan.kind == 1u) {
        return 0.0;
    }
    if (plan.kind == 2u) {
        return p.nan;
    }
    let q = target_mass(plan, c, idx);
    let wq = class_weight(c) * q;
    if (INPUT_KIND == INPUT_LOGITS) {
        let prob = exp(x - plan.m) * plan.inv_s;
        var g = prob * plan.q - wq;
        if (Z_LOSS) {
            g += plan.r * 2.0 * p.z_loss * plan.lse * prob;
        }
        return plan.a * g;
    }
    // -a * w_c q_c (divided by x for probabilities), 0 where q_c = 0 whatever
    // a is: PyTorch's nll_loss writes only the targets' elements, so a
    // zero denominator (a = inf) leaves the others at 0.
    let g = select(-(plan.a * wq), 0.0, q == 0.0);
    if (INPUT_KIND == INPUT_LOG_PROBS) {
        return g;
    }
    return div_subnormal(g, x);
}

// The part of the row's loss summed over classes in pass 2:
// smoothing's sum_c w_c logp_c (class indices) or sum_c w_c q_c logp_c (probabilities).
fn loss_term(plan: RowPlan, c: u32, idx: u32, x: f32) -> f32 {
    let lp = log_prob(x, plan);
    if (TARGET_KIND == TARGET_PROBS) {
        return class_weight(c) * soft_q(idx) * lp;
    }
    if (SMOOTHING) {
        return class_weight(c) * lp;
    }
    return 0.0;
}

// `x_t`: the input at the row's target class (unused for probabilities).
fn row_value(plan: RowPlan, row: u32, x_t: f32, class_sum: f32) -> f32 {
    if (plan.kind == 1u) {
        return 0.0;
    }
    if (plan.kind == 2u) {
        return p.nan; // the status buffer says why
    }
    var loss: f32;
    if (TARGET_KIND == TARGET_PROBS) {
        loss = -class_sum;
    } else {
        let lp_t = log_prob(x_t, plan);
        loss = -(1.0 - p.smoothing) * plan.r * lp_t;
        if (SMOOTHING) {
            loss -= p.smoothing / f32(p.classes) * class_sum;
        }
    }
    if (Z_LOSS) {
        loss += plan.r * p.z_loss * plan.lse * plan.lse;
    }
    return sample_weight(row) * loss;
}

fn finish_row(plan: RowPlan, row: u32, x_t: f32, total: Partial, class_sum: f32) {
    row_loss[row] = row_value(plan, row, x_t, class_sum);
    if (WRITE_LSE) {
        lse_out[row] = plan.lse;
    }
    if (COUNT_CORRECT) {
        var correct = 0u;
        if (TARGET_KIND == TARGET_PROBS) {
            correct = select(0u, 1u, total.arg == total.targ);
        } else if (plan.kind == 0u) {
            correct = select(0u, 1u, total.arg == plan.target_class);
        }
        aux[AUX_ROWS + row] = correct;
    }
}

// ---------------------------------------------------------------- workgroup reductions
//
// `workgroup_merge` and `workgroup_sum` come from a piece of their own,
// appended when the module is assembled (`cross_entropy_source` in
// context.rs): `shaders/lib/workgroup_reductions.wgsl` (fixed trees through
// workgroup memory) or, where the device has SUBGROUP,
// `shaders/lib/subgroup_reductions.wgsl` (a shuffle butterfly over a
// workgroup that is one subgroup): the same two functions, no barriers.

// ---------------------------------------------------------------- rows_wide


@compute @workgroup_size(WIDE_WG)
fn rows_wide(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = p.row_offset + wid.x + wid.y * nwg.x;
    if (row >= p.row_end) {
        return;
    }
    let base = chunk_base(row);
    // Pass 1: per-invocation partials, then a fixed tree merge.
    let total = workgroup_merge(lid, scan_span(lid, base, 0u, p.classes));
    let plan = plan_row(row, total);
    // Pass 2: the gradient, written once, and the class sum of the loss. The
    // target logit is picked up on the way (its invocation adds it, the
    // others add 0): read before it is overwritten, even in place, with no
    // extra read and no barrier.
    let sums = workgroup_sum(lid, grad_span(plan, lid, base, 0u, p.classes));
    if (lid == 0u) {
        finish_row(plan, row, sums.y, total, sums.x);
    }
}

// Pass 1 over classes [c0, c1) of the row whose class 0 is at `base` (class c
// at base + c * inner), scalar loads, the span's two halves side by side
// (two memory streams, see the vec4 kernels): this invocation's partial.
fn scan_span(lid: u32, base: u32, c0: u32, c1: u32) -> Partial {
    let half = (select(0u, c1 - c0, c1 > c0) + 1u) / 2u;
    var part = empty_partial();
    for (var c = c0 + lid; c < c0 + half; c += WIDE_WG) {
        let c2 = min(c + half, c1 - 1u);
        let xa = load_input(base + c * p.inner);
        let xb = load_input(base + c2 * p.inner);
        part = update(part, c, base + c * p.inner, xa);
        if (c + half < c1) {
            part = update(part, c2, base + c2 * p.inner, xb);
        }
    }
    return part;
}

// Pass 2 over classes [c0, c1), walked as scan_span: writes the gradient and
// returns this invocation's (sum of loss terms, input at the target class or 0).
fn grad_span(plan: RowPlan, lid: u32, base: u32, c0: u32, c1: u32) -> vec2<f32> {
    let half = (select(0u, c1 - c0, c1 > c0) + 1u) / 2u;
    var acc = vec2<f32>(0.0);
    for (var c = c0 + lid; c < c0 + half; c += WIDE_WG) {
        let c2 = min(c + half, c1 - 1u);
        let xa = load_input(base + c * p.inner);
        let xb = load_input(base + c2 * p.inner);
        acc += scalar_pass2(plan, c, base + c * p.inner, xa);
        if (c + half < c1) {
            acc += scalar_pass2(plan, c2, base + c2 * p.inner, xb);
        }
    }
    return acc;
}

// ---------------------------------------------------------------- rows_narrow

// The invocation's index in a grid of NARROW_WG-wide workgroups (spilling
// into y past the per-dimension limit): the narrow kernels' row (or pixel
// quad) within the chunk.
fn narrow_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * NARROW_WG + lid;
}

@compute @workgroup_size(64)
fn rows_narrow(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = p.row_offset + narrow_index(wid, nwg, lid);
    if (row >= p.row_end) {
        return;
    }
    let base = chunk_base(row);
    let stride = p.inner;
    var total = empty_partial();
    var c = 0u;
    for (; c + 3u < p.classes; c += 4u) {
        let cs = vec4<u32>(c) + vec4<u32>(0u, 1u, 2u, 3u);
        total = gather4(total, cs, vec4<u32>(base) + cs * stride);
    }
    for (; c < p.classes; c++) {
        total = gather(total, c, base + c * stride);
    }
    let plan = plan_row(row, total);
    let x_t = load_input(base + plan.target_class * stride);
    var acc = 0.0;
    for (var c0 = 0u; c0 < p.classes; c0 += SUM_BLOCK) {
        var block = 0.0;
        for (var c = c0; c < min(c0 + SUM_BLOCK, p.classes); c++) {
            let idx = base + c * stride;
            let x = load_input(idx);
            block += loss_term(plan, c, idx, x);
            if (WRITE_GRAD) {
                store_grad(idx, grad_value(plan, c, idx, x));
            }
        }
        acc += block;
    }
    finish_row(plan, row, x_t, total, acc);
}

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
// accesses are one core's memory stream, and two streams per core kept its
// prefetchers busy: 4096 x 4096 went from ~33 to ~26 ms on lavapipe, where a
// copy kernel walking a row as one stream ran at 2/3 of one walking two
// (BENCHMARKS.md). On a GPU it is two independent loads in flight.

@group(0) @binding(12) var<storage, read> input4: array<ELEM4>;
@group(0) @binding(13) var<storage, read_write> grad4: array<ELEM4>;

fn load_input4(j: u32) -> vec4<f32> {
    if (IN_PLACE) {
        return vec4<f32>(grad4[j]);
    }
    return vec4<f32>(input4[j]);
}

fn store_grad4(j: u32, v: vec4<f32>) {
    grad4[j] = ELEM4(v);
}

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
        let ca = quad_classes(head + 4u * j);
        part = update4(part, ca, vec4<u32>(base) + ca, va);
        if (j + half < quads) {
            let cb = quad_classes(head + 4u * j2);
            part = update4(part, cb, vec4<u32>(base) + cb, vb);
        }
    }
    return part;
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
    let hit = select(vec4<f32>(0.0), v, quad_classes(c) == vec4<u32>(plan.target_class));
    if (WRITE_GRAD) {
        store_grad4(j, grad_quad(plan, c, 4u * j, v));
    }
    return vec2<f32>(loss_quad(plan, c, 4u * j, v), (hit.x + hit.y) + (hit.z + hit.w));
}

// A workgroup per row; rows of classes % 4 == 0 with inner == 1.
@compute @workgroup_size(WIDE_WG)
fn rows_wide4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = p.row_offset + wid.x + wid.y * nwg.x;
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
    let row = p.row_offset + wid.x + wid.y * nwg.x;
    if (row >= p.row_end) {
        return;
    }
    let base = chunk_base(row);
    // Classes [0, head) and [tail, classes) are in shared vec4s; [head, tail) whole ones.
    let head = min((4u - base % 4u) % 4u, p.classes);
    let quads = (p.classes - head) / 4u;
    let tail = head + 4u * quads;
    let q0 = (base + head) / 4u;
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

// Pass 2 of an element of a shared vec4 (its gradient is `mixed_seams`'s):
// (its loss term, the input if it is the target class, else 0).
fn mixed_shared(plan: RowPlan, c: u32, idx: u32) -> vec2<f32> {
    let x = input_at4(idx);
    return vec2<f32>(loss_term(plan, c, idx, x), select(0.0, x, c == plan.target_class));
}

// Per-row plans of `rows_wide_mixed` in `aux`, after the argmax flags (9
// words a row, global row index), for `mixed_seams`.
fn plan_slot(row: u32) -> u32 {
    return AUX_ROWS + p.flags + row * 9u;
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
        store_grad4(j, g);
    }
    let end = base + p.classes;
    if (row + 1u == p.rows && end % 4u != 0u) {
        let j = end / 4u;
        let v = load_input4(j);
        var g = vec4<f32>(grad4[j]);
        for (var i = 0u; i < end % 4u; i++) {
            g[i] = grad_value(plan, 4u * j + i - base, 4u * j + i, v[i]);
        }
        store_grad4(j, g);
    }
}

// An invocation per row; rows of classes % 4 == 0 with inner == 1.
@compute @workgroup_size(64)
fn rows_narrow4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = p.row_offset + narrow_index(wid, nwg, lid);
    if (row >= p.row_end) {
        return;
    }
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
            store_grad4(base4 + j, grad_quad(plan, 4u * j, base + 4u * j, v));
        }
    }
    finish_row(plan, row, x_t, total, acc);
}

// Pass 2 of class c for four neighbouring pixels (plans p0..p3, values v at
// idx..idx+3): writes their gradients and returns their loss terms.
fn pixel_quad(p0: RowPlan, p1: RowPlan, p2: RowPlan, p3: RowPlan, c: u32, idx: u32, v: vec4<f32>) -> vec4<f32> {
    if (WRITE_GRAD) {
        store_grad4(idx / 4u, vec4<f32>(
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
    let row0 = p.row_offset + narrow_index(wid, nwg, lid) * 4u;
    if (row0 >= p.row_end) {
        return;
    }
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
    finish_row(p0, row0, x_t.x, t0, acc.x);
    finish_row(p1, row0 + 1u, x_t.y, t1, acc.y);
    finish_row(p2, row0 + 2u, x_t.z, t2, acc.z);
    finish_row(p3, row0 + 3u, x_t.w, t3, acc.w);
}

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
// The most either kernel holds (`FIXED_*_MAX` in record.rs).
const MAX_FIXED: u32 = 32u;

// Pass 2 of the fixed kernels, vectorised over a vec4's four lanes: four
// pixels (four plans) in rows_pixels4_fixed, four classes of one row (its
// plan in every lane) in rows_narrow4_fixed. The loop over the row writes
// every element as if it were not its row's target (`quad_grad`); each
// target's element is then written again with grad_value. That keeps the
// loop short: llvmpipe unrolls these constant-trip-count loops, keeping `xs`
// in registers, only while their bodies are small, and a loop it keeps
// indexes `xs` in memory. One vec4 compare-and-select more per element took
// the map 8 x 21 x 256 x 256 from 20 to 30 ms (BENCHMARKS.md).
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
        a * (p.smoothing / f32(p.classes)),
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

fn store_grad_at4(idx: u32, v: f32) {
    grad4[idx / 4u][idx % 4u] = ELEM(v);
}

// After quad_grad: the target's element of the row (or pixel) whose class 0
// is at `idx`, from its input x_t.
fn store_target(plan: RowPlan, idx: u32, x_t: f32) {
    if (plan.kind == 0u) {
        let t = plan.target_class;
        let i = idx + t * p.inner;
        store_grad_at4(i, grad_value(plan, t, i, x_t));
    }
}

// rows_narrow4 with FIXED_N = classes / 4.
@compute @workgroup_size(64)
fn rows_narrow4_fixed(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = p.row_offset + narrow_index(wid, nwg, lid);
    if (row >= p.row_end) {
        return;
    }
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
        if (COUNT_CORRECT || TARGET_KIND == TARGET_PROBS) {
            let c = 4u * j;
            total = gather_extra(total, c, base + c, v.x);
            total = gather_extra(total, c + 1u, base + c + 1u, v.y);
            total = gather_extra(total, c + 2u, base + c + 2u, v.z);
            total = gather_extra(total, c + 3u, base + c + 3u, v.w);
        }
    }
    let m = max(max(m4.x, m4.y), max(m4.z, m4.w));
    var e = vec4<f32>(0.0);
    for (var j = 0u; j < FIXED_N; j++) {
        e += exp(xs[j] - vec4<f32>(m));
    }
    total.m = m;
    total.s = (e.x + e.y) + (e.z + e.w);
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
                store_grad4(base4 + j, quad_grad(g, w, xs[j]));
            }
            store_target(plan, base, x_t);
        }
        if (SMOOTHING) {
            for (var j = 0u; j < FIXED_N; j++) {
                acc += loss_quad(plan, 4u * j, base + 4u * j, xs[j]);
            }
        }
    }
    finish_row(plan, row, x_t, total, acc);
}

// rows_pixels4 with FIXED_N = classes.
@compute @workgroup_size(64)
fn rows_pixels4_fixed(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row0 = p.row_offset + narrow_index(wid, nwg, lid) * 4u;
    if (row0 >= p.row_end) {
        return;
    }
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
        if (COUNT_CORRECT || TARGET_KIND == TARGET_PROBS) {
            t0 = gather_extra(t0, c, idx, v.x);
            t1 = gather_extra(t1, c, idx + 1u, v.y);
            t2 = gather_extra(t2, c, idx + 2u, v.z);
            t3 = gather_extra(t3, c, idx + 3u, v.w);
        }
    }
    var sum = vec4<f32>(0.0);
    for (var c = 0u; c < FIXED_N; c++) {
        sum += exp(xs[c] - m);
    }
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
                store_grad4(idx / 4u, quad_grad(g, vec4<f32>(class_weight(c)), xs[c]));
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
    finish_row(p0, row0, x_t.x, t0, acc.x);
    finish_row(p1, row0 + 1u, x_t.y, t1, acc.y);
    finish_row(p2, row0 + 2u, x_t.z, t2, acc.z);
    finish_row(p3, row0 + 3u, x_t.w, t3, acc.w);
}

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
// aux after the per-row flags (if any): 8 words per (row, span) partial, then one word
// per (row, span) class sum.

fn part_slot(row: u32, k: u32) -> u32 {
    return AUX_ROWS + p.flags + (row * p.splits + k) * 8u;
}

fn sum_slot(row: u32, k: u32) -> u32 {
    return AUX_ROWS + p.flags + p.rows * p.splits * 8u + row * p.splits + k;
}

fn store_partial(slot: u32, r: Partial, x_t: f32) {
    aux[slot] = bitcast<u32>(r.m);
    aux[slot + 1u] = bitcast<u32>(r.s);
    aux[slot + 2u] = r.arg;
    aux[slot + 3u] = bitcast<u32>(r.tmax_x);
    aux[slot + 4u] = bitcast<u32>(r.q);
    aux[slot + 5u] = bitcast<u32>(r.tmax);
    aux[slot + 6u] = r.targ;
    aux[slot + 7u] = bitcast<u32>(x_t);
}

fn load_partial(slot: u32) -> Partial {
    return Partial(
        bitcast<f32>(aux[slot]),
        bitcast<f32>(aux[slot + 1u]),
        aux[slot + 2u],
        bitcast<f32>(aux[slot + 3u]),
        bitcast<f32>(aux[slot + 4u]),
        bitcast<f32>(aux[slot + 5u]),
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
    let g = wid.x + wid.y * nwg.x;
    let row = p.row_offset + g / p.splits;
    let k = g % p.splits;
    if (row >= p.row_end) {
        return;
    }
    let base = chunk_base(row);
    let c0 = k * p.span;
    let c1 = min(c0 + p.span, p.classes);
    let total = workgroup_merge(lid, scan_span(lid, base, c0, c1));
    if (lid == 0u) {
        // The span holding the target records its logit; the others record 0.
        var x_t = 0.0;
        if (TARGET_KIND != TARGET_PROBS) {
            let t = class_target(row);
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
    let g = wid.x + wid.y * nwg.x;
    let row = p.row_offset + g / p.splits;
    let k = g % p.splits;
    if (row >= p.row_end) {
        return;
    }
    let base = chunk_base(row);
    let c0 = k * p.span;
    let c1 = min(c0 + p.span, p.classes);
    let plan = plan_row(row, merged_row(row));
    let class_sum = workgroup_sum(lid, grad_span(plan, lid, base, c0, c1)).x;
    if (lid == 0u) {
        aux[sum_slot(row, k)] = bitcast<u32>(class_sum);
    }
}

@compute @workgroup_size(64)
fn split_finish(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = p.row_offset + gid.x;
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

// ---------------------------------------------------------------- reduce_loss
//
// The reduced loss (and the count of correct rows) in two dispatches, as
// target_stats: `loss_partials` sums each block of rows into aux, then
// `reduce_loss` merges the blocks in order (or, with one block, sums the
// rows itself).

// One invocation's share of block g: the loss in denom, the correct rows in count.
fn loss_block(lid: u32, g: u32) -> TargetStats {
    let rows = group_rows(g);
    var s = TargetStats(0.0, 0u, 0u, 0u);
    for (var i = rows.x + lid; i < rows.y; i += STATS_WG) {
        s.denom += row_loss[i];
        if (COUNT_CORRECT) {
            s.count += aux[AUX_ROWS + i];
        }
    }
    return s;
}

@compute @workgroup_size(STATS_WG)
fn loss_partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let total = workgroup_stats(lid, loss_block(lid, wid.x));
    if (lid == 0u) {
        let slot = block_slot(wid.x);
        aux[slot] = bitcast<u32>(total.denom);
        aux[slot + 1u] = total.count;
        aux[slot + 2u] = 0u;
        aux[slot + 3u] = NO_POSITION;
    }
}

@compute @workgroup_size(STATS_WG)
fn reduce_loss(@builtin(local_invocation_index) lid: u32) {
    // One block: no loss_partials dispatch, the rows are read here.
    var block: TargetStats;
    if (p.groups == 1u) {
        block = loss_block(lid, 0u);
    } else {
        block = block_partials(lid);
    }
    let total = workgroup_stats(lid, block);
    if (lid == 0u) {
        if (p.reduction == REDUCTION_MEAN) {
            if (denominator() == 0.0) {
                // NaN as PyTorch's 0 / 0 (also when smoothing makes the
                // numerator positive: its nll term is 0 / 0), or 0.
                loss_out[0] = select(p.nan, 0.0, p.empty_mean_zero != 0u);
            } else {
                loss_out[0] = total.denom / denominator();
            }
        } else if (p.reduction != 0u) {
            loss_out[0] = total.denom;
        }
        if (COUNT_CORRECT) {
            correct_out[0] = total.count;
        }
    }
}
