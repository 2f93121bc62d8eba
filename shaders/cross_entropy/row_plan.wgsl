// Part of the cross-entropy module (see common.wgsl and `source` in
// src/ops/cross_entropy/pipelines.rs).
//
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
        } else if (t < 0 || u32(t) >= p.all_classes) {
            plan.kind = 2u;
        } else {
            plan.target_class = u32(t);
        }
        plan.r = class_weight(plan.target_class);
        plan.q = (1.0 - p.smoothing) * plan.r + p.smoothing / f32(p.all_classes) * stats.weight_sum;
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
    return (1.0 - p.smoothing) * onehot + p.smoothing / f32(p.all_classes);
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

// The per-pixel kernels add their class terms up over every class of a
// pixel: in one f32 running sum, thousands of large terms (smoothing over
// logits near 1e30) drift by 1e-4 relative. They sum blocks of SUM_BLOCK
// classes and then the blocks' sums, which bounds the drift by
// (SUM_BLOCK + C / SUM_BLOCK) roundings. (A compensated sum would be
// tighter, but shader compilers may simplify its correction away: WGSL's
// float arithmetic is not exact.)
const SUM_BLOCK: u32 = 32u;

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
        return plan.a * g * cap_slope(x);
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
            loss -= p.smoothing / f32(p.all_classes) * class_sum;
        }
    }
    if (Z_LOSS) {
        loss += plan.r * p.z_loss * plan.lse * plan.lse;
    }
    return sample_weight(row) * loss;
}

// The row's loss term (written, unless this kernel sums its tiles) and
// its other outputs. Returns the loss term.
fn finish_row(plan: RowPlan, row: u32, x_t: f32, total: Partial, class_sum: f32) -> f32 {
    let loss = row_value(plan, row, x_t, class_sum);
    if (!TILE_LOSSES) {
        row_loss[row] = loss;
    }
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
    // Every row, ignored and out-of-range ones included; a shard's finish
    // holds the class local to it (see vocab_loss).
    if (WRITE_ARGMAX) {
        aux[p.argmax_at + row] = total.arg + p.class_offset;
    }
    if (WRITE_ENTROPY) {
        // -sum p log p = ln s - t / s (ln s is the plan's).
        aux[p.entropy_at + row] = bitcast<u32>(plan.log_s - total.t / total.s);
    }
    return loss;
}
