// The binary and regression losses, elementwise over a tensor of any shape
// (src/ops/elementwise/): loss, gradient and the reduction's block sums in
// one pass that reads the input and the target once and writes the
// gradient once; then one workgroup folds the blocks' sums in order.
//
//   elementwise      an invocation per element, BLOCK elements per
//                    workgroup, neighbouring elements in neighbouring
//                    invocations; any element count
//   elementwise4     the same four elements per load (vec4 views), for
//                    element counts that are a multiple of 4
//   elementwise_fold past FOLD blocks: a workgroup per FOLD blocks, their
//                    stats folded in order into one (so no invocation of
//                    the reduce adds more than 64 of them one after another)
//   elementwise_reduce
//                    one workgroup: the blocks' (or folds') stats in order
//                    -> the reduced loss, and the status buffer (bce's
//                    input check; zeros for the other losses)
//
// Assembled (`source` in src/ops/elementwise/pipelines.rs) with its
// storage (src/core/storage.rs), block_stats.wgsl (the fixed-order sums) and
// subnormal.wgsl (bce's logarithm of a subnormal probability).
//
// The formulas, per element of input x, target y, weight w, pos_weight pw
// (PyTorch's, rewritten where PyTorch's form cancels; see the rustdoc of
// `ElementwiseLoss`):
//   bce_with_logits  w (pw y softplus(-x) + (1 - y) softplus(x)), NaN at x = -inf
//                    grad w (lw sigmoid(x) - pw y) for x < 0,
//                    w ((1 - y) - lw sigmoid(-x)) for x >= 0 (lw = pw y + 1 - y)
//   bce              -w (y max(ln x, -100) + (1 - y) max(ln(1 - x), -100))
//                    grad w (x - y) / max(x (1 - x), 1e-12)
//   mse              d^2, grad 2 d                      (d = x - y)
//   l1               |d|, grad sign(d) (0 at d = 0)
//   smooth_l1        |d| < beta ? d^2 / (2 beta) : |d| - beta / 2
//                    grad d > beta ? 1 : (d < -beta ? -1 : d / beta);
//                    beta = 0 is l1
//   huber            |d| < delta ? d^2 / 2 : delta (|d| - delta / 2)
//                    grad d > delta ? delta : (d < -delta ? -delta : d)
// each gradient times p.grad_scale (1 / the element count for mean, else 1).

struct Params {
    // Elements in this dispatch's chunk and the chunk's first element.
    n: u32,
    first: u32,
    // The chunk's first block (its stats go to aux from STATS_WORDS *
    // first_block on) and the blocks of every chunk; for the reduce, the
    // first stats it folds and how many (the blocks, or the folds after
    // them).
    first_block: u32,
    blocks: u32,
    // The length of the last axis (weights and pos_weight of that length)
    // and the chunk's first element's index along it.
    last: u32,
    phase: u32,
    reduction: u32,
    _pad: u32,
    // beta (smooth_l1) or delta (huber).
    param: f32,
    // What the reduced loss is divided by (the element count for mean,
    // else 1), and the gradient multiplied by (its reciprocal).
    denom: f32,
    nan: f32,
    grad_scale: f32,
}

override LOSS: u32 = 0u;
override HAS_WEIGHT: bool = false;
// The weight has the last axis's length (else the input's shape).
override WEIGHT_LAST: bool = false;
override HAS_POS_WEIGHT: bool = false;
override WRITE_GRAD: bool = true;

const LOSS_BCE_WITH_LOGITS: u32 = 0u;
const LOSS_BCE: u32 = 1u;
const LOSS_MSE: u32 = 2u;
const LOSS_L1: u32 = 3u;
const LOSS_SMOOTH_L1: u32 = 4u;
const LOSS_HUBER: u32 = 5u;
const REDUCTION_NONE: u32 = 0u;
const REDUCTION_MEAN: u32 = 1u;

const STATS_WG: u32 = 64u;
// Elements per workgroup: 64 scalar or 16 vec4 loop trips per invocation.
const BLOCK: u32 = 4096u;
// Blocks per workgroup of elementwise_fold: 64 loop trips per invocation.
const FOLD: u32 = 4096u;

@group(0) @binding(0) var<uniform> p: Params;
// The input and the target (bindings 1 and 2), the gradient (5) and their
// vec4 views (11, 12, 15), stored in the call's precision, come from the
// storage the core declares (src/core/storage.rs), through input_load,
// targets_load, grad_store, their vec4 forms and their lengths; the weights
// and the losses stay f32.
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read> pos_weight: array<f32>;
// The blocks' stats (STATS_WORDS words each: loss sum, 0, bad inputs, first bad position).
@group(0) @binding(6) var<storage, read_write> aux: array<u32>;
// The per-element losses (none) or the reduced loss.
@group(0) @binding(7) var<storage, read_write> loss_out: array<f32>;
// bce: [elements whose input or target is outside [0, 1], the first one's
// position, the bad value there (f32 bits), 1 if it is the target's].
@group(0) @binding(8) var<storage, read_write> status: array<u32>;
// The vec4 views of elementwise4 (of the weights and the losses; the
// storage has the others).
@group(0) @binding(13) var<storage, read> weight4: array<vec4<f32>>;
@group(0) @binding(17) var<storage, read_write> loss4: array<vec4<f32>>;

// Elements the input's and the target's first bindings hold.
fn stored_len() -> u32 {
    return min(input_len(), targets_len());
}

// ln(1 + z) for |z| < 1/32 by its series to z^5 (relative error under
// z^5 / 6, 5e-9): where 1 + z would drop z's low bits.
const SERIES_BELOW: f32 = 0.03125;
fn log1p_series(z: f32) -> f32 {
    return z * (1.0 + z * (-0.5 + z * (0.33333334 + z * (-0.25 + z * 0.2))));
}

// ln(1 + z) for z > -1: the series near 0, else ln of 1 + z (whose
// rounding is then a relative 2^-24 of a logarithm of at least 1/33).
fn log1p(z: f32) -> f32 {
    return select(log(1.0 + z), log1p_series(z), abs(z) < SERIES_BELOW);
}

// ln(1 + e^x), in the form that neither overflows nor cancels.
fn softplus(x: f32, tail: f32) -> f32 {
    return max(x, 0.0) + tail;
}

// (sigmoid(x), sigmoid(-x)) from e = e^-|x|: no overflow, the small side
// as e / (1 + e) rather than 1 - 1 / (1 + e), and one division for both.
fn sigmoids(x: f32, e: f32) -> vec2<f32> {
    let s = 1.0 / (1.0 + e);
    let es = e * s;
    return select(vec2<f32>(es, s), vec2<f32>(s, es), x >= 0.0);
}

// The f32 order as a u32 order (-0 taken as +0), from the bits: a device
// that flushes subnormals to 0 in comparisons would call two different
// subnormals equal.
fn order_key(v: f32) -> u32 {
    var b = bitcast<u32>(v);
    b = select(b, 0u, b == 0x80000000u);
    return select(b | 0x80000000u, ~b, (b >> 31u) != 0u);
}

fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// sign(x - y) from x and y themselves: 0 where they are equal and where
// either is NaN (PyTorch's sgn), and the sign of a difference a device
// flushes to 0.
fn sign_of(x: f32, y: f32) -> f32 {
    let kx = order_key(x);
    let ky = order_key(y);
    let s = select(select(0.0, -1.0, kx < ky), 1.0, kx > ky);
    return select(s, 0.0, is_nan(x) || is_nan(y));
}

// The gradient of a loss quadratic for |d| <= knee and linear with slope
// `slope` past it, as PyTorch's backward computes it: d > knee ? slope :
// (d < -knee ? -slope : inner), so a NaN d gives the inner NaN.
// (NaN from the bits too: GLSL leaves a comparison with NaN undefined, and
// llvmpipe's GL calls NaN < -1 true.)
fn clip(d: f32, knee: f32, inner: f32, slope: f32) -> f32 {
    let clipped = select(select(inner, -slope, d < -knee), slope, d > knee);
    return select(clipped, inner, is_nan(d));
}

// Whether x is in [0, 1], from its bits (NaN is not; -0 is).
fn in_unit(x: f32) -> bool {
    let bits = bitcast<u32>(x);
    return bits <= 0x3f800000u || bits == 0x80000000u;
}

// (max(ln x, -100), max(ln(1 - x), -100)) for x in [0, 1]: ln of a
// subnormal x from its bits; near 1, ln x as ln(1 + (x - 1)) (x - 1 is
// exact there); near 0, ln(1 - x) as ln(1 + (-x)). Elsewhere 1 - x is
// exact (x >= 1/2) or rounds by a relative 2^-24 of a logarithm of at least
// 1/33. ln 0 is -100 by the clamp, as PyTorch's.
fn clamped_logs(x: f32) -> vec2<f32> {
    let lx = select(log_subnormal(x), log1p_series(x - 1.0), x > 1.0 - SERIES_BELOW);
    let l1x = select(log(1.0 - x), log1p_series(-x), x < SERIES_BELOW);
    let clamped = max(vec2<f32>(lx, l1x), vec2<f32>(-100.0));
    // ±0 from the bits: a device that flushes subnormals would call one 0.
    let zero = (bitcast<u32>(x) & 0x7fffffffu) == 0u;
    return select(clamped, vec2<f32>(-100.0), vec2<bool>(zero, x == 1.0));
}

// (loss, gradient before the grad_scale) of one element.
fn point(x: f32, y: f32, w: f32, pw: f32) -> vec2<f32> {
    var r: vec2<f32>;
    if (LOSS == LOSS_BCE_WITH_LOGITS) {
        let e = exp(-abs(x));
        let tail = log1p(e);
        let py = pw * y;
        // At x = -inf PyTorch's (1 - y) x - lw log_sigmoid(x) is -inf + inf:
        // NaN for every target (the bits, as a device may assume finite math).
        let at_minus_inf = bitcast<u32>(x) == 0xff800000u;
        let loss = select(py * softplus(-x, tail) + (1.0 - y) * softplus(x, tail), p.nan, at_minus_inf);
        // PyTorch's sigmoid(x) lw - pw y (lw = pw y + 1 - y), with sigmoid(x)
        // near 1 taken as 1 - sigmoid(-x): exact for y = 0 and y = 1.
        let sig = sigmoids(x, e);
        let lw = py + (1.0 - y);
        let g = select(lw * sig.x - py, (1.0 - y) - lw * sig.y, x >= 0.0);
        r = vec2<f32>(loss, g);
    } else if (LOSS == LOSS_BCE) {
        let l = clamped_logs(x);
        let loss = -(y * l.x + (1.0 - y) * l.y);
        r = vec2<f32>(loss, (x - y) / max((1.0 - x) * x, 1e-12));
        // An input or target outside [0, 1] is reported in the status
        // buffer, and gets NaN rather than a plausible number.
        r = select(r, vec2<f32>(p.nan), !(in_unit(x) && in_unit(y)));
    } else {
        let d = x - y;
        let z = abs(d);
        let s = sign_of(x, y);
        if (LOSS == LOSS_MSE) {
            r = vec2<f32>(d * d, 2.0 * d);
        } else if (LOSS == LOSS_L1) {
            r = vec2<f32>(z, s);
        } else if (LOSS == LOSS_SMOOTH_L1) {
            // beta = 0 is l1 (PyTorch's smooth_l1_loss calls l1_loss for it).
            let beta = p.param;
            let loss = select(z - 0.5 * beta, 0.5 * d * d / beta, z < beta);
            r = vec2<f32>(loss, select(clip(d, beta, d / beta, 1.0), s, beta == 0.0));
        } else {
            let delta = p.param;
            let loss = select(delta * (z - 0.5 * delta), 0.5 * d * d, z < delta);
            r = vec2<f32>(loss, clip(d, delta, d, delta));
        }
    }
    return r * w;
}

fn weight_at(i: u32) -> f32 {
    if (!HAS_WEIGHT) {
        return 1.0;
    }
    if (WEIGHT_LAST) {
        return weight[(p.phase + i) % p.last];
    }
    return weight[i];
}

fn pos_weight_at(i: u32) -> f32 {
    if (!HAS_POS_WEIGHT) {
        return 1.0;
    }
    return pos_weight[(p.phase + i) % p.last];
}

// Element i of the chunk (loss and gradient written) added to s.
fn add_point(s: BlockStats, i: u32, x: f32, y: f32, r: vec2<f32>) -> BlockStats {
    var t = s;
    t.sum += r.x;
    if (LOSS == LOSS_BCE && !(in_unit(x) && in_unit(y))) {
        t.bad += 1u;
        t.first = min(t.first, p.first + i);
    }
    return t;
}

// The block's stats stored for the reduce (uniform control flow: every
// argument is uniform over the workgroup).
fn finish_block(lid: u32, g: u32, s: BlockStats) {
    if (p.reduction != REDUCTION_NONE || LOSS == LOSS_BCE) {
        let total = workgroup_stats(lid, s);
        if (lid == 0u && g * BLOCK < p.n) {
            store_stats(STATS_WORDS * (p.first_block + g), total);
        }
    }
}

@compute @workgroup_size(STATS_WG)
fn elementwise(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = flat_workgroup(wid, nwg);
    let e0 = min(g * BLOCK, p.n);
    let e1 = min(e0 + BLOCK, p.n);
    var s = BlockStats(0.0, 0u, 0u, NO_POSITION);
    for (var i = e0 + lid; i < e1; i += STATS_WG) {
        let x = input_load(i);
        let y = targets_load(i);
        let r = point(x, y, weight_at(i), pos_weight_at(i));
        if (WRITE_GRAD) {
            grad_store(i, r.y * p.grad_scale);
        }
        if (p.reduction == REDUCTION_NONE) {
            loss_out[i] = r.x;
        }
        s = add_point(s, i, x, y, r);
    }
    finish_block(lid, g, s);
}

@compute @workgroup_size(STATS_WG)
fn elementwise4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = flat_workgroup(wid, nwg);
    let q0 = min(g * BLOCK, p.n) / 4u;
    let q1 = min(g * BLOCK + BLOCK, p.n) / 4u;
    var s = BlockStats(0.0, 0u, 0u, NO_POSITION);
    for (var q = q0 + lid; q < q1; q += STATS_WG) {
        let x = input_load4(q);
        let y = targets_load4(q);
        let i = 4u * q;
        var w = vec4<f32>(1.0);
        if (HAS_WEIGHT) {
            if (WEIGHT_LAST) {
                w = vec4<f32>(weight_at(i), weight_at(i + 1u), weight_at(i + 2u), weight_at(i + 3u));
            } else {
                w = weight4[q];
            }
        }
        var pw = vec4<f32>(1.0);
        if (HAS_POS_WEIGHT) {
            pw = vec4<f32>(pos_weight_at(i), pos_weight_at(i + 1u), pos_weight_at(i + 2u), pos_weight_at(i + 3u));
        }
        let r0 = point(x.x, y.x, w.x, pw.x);
        let r1 = point(x.y, y.y, w.y, pw.y);
        let r2 = point(x.z, y.z, w.z, pw.z);
        let r3 = point(x.w, y.w, w.w, pw.w);
        if (WRITE_GRAD) {
            grad_store4(q, vec4<f32>(r0.y, r1.y, r2.y, r3.y) * p.grad_scale);
        }
        if (p.reduction == REDUCTION_NONE) {
            loss4[q] = vec4<f32>(r0.x, r1.x, r2.x, r3.x);
        }
        s = add_point(s, i, x.x, y.x, r0);
        s = add_point(s, i + 1u, x.y, y.y, r1);
        s = add_point(s, i + 2u, x.z, y.z, r2);
        s = add_point(s, i + 3u, x.w, y.w, r3);
    }
    finish_block(lid, g, s);
}

@compute @workgroup_size(STATS_WG)
fn elementwise_fold(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b0 = wid.x * FOLD;
    let total = workgroup_stats(lid, fold_blocks(lid, STATS_WORDS * b0, min(FOLD, p.blocks - b0)));
    if (lid == 0u) {
        store_stats(STATS_WORDS * (p.blocks + wid.x), total);
    }
}

@compute @workgroup_size(STATS_WG)
fn elementwise_reduce(@builtin(local_invocation_index) lid: u32) {
    let total = workgroup_stats(lid, fold_blocks(lid, STATS_WORDS * p.first_block, p.blocks));
    if (lid == 0u) {
        if (p.reduction == REDUCTION_MEAN) {
            // The mean of no elements is NaN, as PyTorch's.
            loss_out[0] = select(total.sum / p.denom, p.nan, p.blocks == 0u);
        } else if (p.reduction != REDUCTION_NONE) {
            loss_out[0] = total.sum;
        }
        // Every loss writes the status; only bce finds anything.
        status[0] = total.bad;
        // The first bad element's value, its input's if that is bad,
        // else its target's (word 3 says which), where the first
        // binding holds it (NaN where not: the host reads it then).
        var value = bitcast<u32>(p.nan);
        var in_target = 0u;
        if (total.bad != 0u && total.first < stored_len()) {
            let x = input_load(total.first);
            in_target = select(1u, 0u, !in_unit(x));
            value = bitcast<u32>(select(targets_load(total.first), x, !in_unit(x)));
        }
        status[1] = select(0u, total.first, total.bad != 0u);
        status[2] = select(0u, value, total.bad != 0u);
        status[3] = in_target;
    }
}
