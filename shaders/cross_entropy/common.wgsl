// Fused softmax cross-entropy: forward and backward, every input and target kind.
//
// Layout: the input is (outer, classes, inner) in row-major order, the class
// axis in the middle. A "row" is one (n, s) pair: its classes lie `inner`
// elements apart. (N, C) is inner = 1; a segmentation map (N, C, H, W) is
// inner = H * W, and neighbouring invocations of `rows_narrow` read
// neighbouring pixels of each class plane.
//
// The module is assembled (`source` in src/ops/cross_entropy/pipelines.rs)
// from the input's and gradient's storage (src/core/storage.rs), these
// files, the shared pieces of shaders/lib/, and a reductions piece
// (*_reductions.wgsl here):
//   common.wgsl        Params, the switches, the bindings, shared helpers
//   target_stats.wgsl  target_partials, target_stats: the mean's denominator,
//                      the class weights' sum, the class-index range check
//   pass1.wgsl         a row's online (max, sum-exp) partial and its merge
//   row_plan.wgsl      a row's plan; its gradient and loss terms
//   rows_wide.wgsl     rows_wide: a workgroup per row, scalar access
//   rows_narrow.wgsl   rows_narrow: an invocation per row (or pixel)
//   rows_vec4.wgsl     rows_wide4, rows_wide_mixed and mixed_seams,
//                      rows_narrow4, rows_pixels4: vec4 access
//   rows_fixed.wgsl    rows_narrow4_fixed, rows_pixels4_fixed: C an override
//   rows_team.wgsl     rows_team, rows_team4: a team per row (GPUs);
//                      rows_map_team: a team per pixel of a long map (GPUs)
//   split.wgsl         split_partial, split_rows, split_finish: a row over
//                      several workgroups
//   vocab.wgsl         vocabulary shards: a range's partial records, their
//                      merge, the range's gradient and the loss
//   loss_tiles.wgsl    the loss's tiles of 64 rows: summed by the rows
//                      kernels that hold whole tiles, else by loss_tiles
//   reduce_loss.wgsl   loss_partials, reduce_loss
// A call records the statistics, one strategy's rows passes
// (`RowStrategy` in src/ops/cross_entropy/strategy.rs), then the reduction.
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
    // Words of per-row outputs at the start of `aux`, after its statistics:
    // argmax flags (rows with COUNT_CORRECT), then predicted classes
    // (WRITE_ARGMAX) and entropies (WRITE_ENTROPY), `rows` words each.
    flags: u32,
    // Where in `aux` the predicted classes start (words).
    argmax_at: u32,
    // Workgroups of `target_partials` and `loss_partials` (1..=256),
    // each over a contiguous block of rows; their partials lie in `aux` from
    // word `partials` on (4 words per workgroup).
    groups: u32,
    partials: u32,
    // The soft-cap (SOFTCAP): logits become softcap * tanh(x / softcap).
    softcap: f32,
    // Vocabulary shards (vocab.wgsl): the call's class count C (= classes
    // unsharded), the shard's first class, and the shards a merge reads.
    all_classes: u32,
    class_offset: u32,
    shards: u32,
    // The temperature (TEMPERATURE): logits become x / temperature first.
    temperature: f32,
    // Where in `aux` the entropies start (words).
    entropy_at: u32,
    // Where in `aux` the loss's tile sums start (words; loss_tiles.wgsl).
    tiles_at: u32,
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
// Logit soft-capping: load_input and load_input4 return
// capped logits, and grad_value (quad_grad) multiplies by the cap's slope.
override SOFTCAP: bool = false;
// A temperature: load_input divides by it before the cap, and the slope
// carries its 1 / temperature.
override TEMPERATURE: bool = false;
override WRITE_GRAD: bool = true;
override WRITE_LSE: bool = false;
override COUNT_CORRECT: bool = false;
// Each row's predicted class and the entropy of its softmax, into `aux`
// (`finish_row`), copied out by `row_outputs` (reduce_loss.wgsl).
override WRITE_ARGMAX: bool = false;
override WRITE_ENTROPY: bool = false;
// The gradient overwrites the input: reads come through `grad`/`grad4` (the
// caller's logits buffer) and `input`/`input4` are bound to a placeholder.
override IN_PLACE: bool = false;
// The input is a window of rows that the caller refills between chunks
// (the fused linear cross-entropy): each chunk starts at its start.
override ROW_WINDOW: bool = false;
// The finish of a vocabulary shard (vocab.wgsl): a row's target weight
// comes from its merged record, as the shard holds only its classes' weights.
override SHARDED: bool = false;

// Codes the host passes (`Reduction::code`, `InputKind::code`,
// `TargetBuffer::code` in src/ops/cross_entropy/): a unit test holds them,
// and the other constants the host also uses, to their Rust twins.
const REDUCTION_NONE: u32 = 0u;
const REDUCTION_MEAN: u32 = 1u;
const INPUT_LOGITS: u32 = 0u;
const INPUT_LOG_PROBS: u32 = 1u;
const INPUT_PROBS: u32 = 2u;
const TARGET_I32: u32 = 0u;
const TARGET_U8: u32 = 1u;
const TARGET_PROBS: u32 = 2u;
// Invocations of the row reductions. Small, as each barrier of their trees
// costs a switch per SIMD batch of the workgroup on lavapipe (64 measured
// faster than 256: BENCHMARKS.md).
const STATS_WG: u32 = 64u;
// Set by the host (`CrossEntropyVariant::constants` in src/ops/cross_entropy/pipelines.rs).
override WIDE_WG: u32 = 16u;
const NARROW_WG: u32 = 64u;

// The invocation's index in a grid of NARROW_WG-wide workgroups (spilling
// into y past the per-dimension limit): the row (or pixel quad) of a kernel
// with an invocation per row, within the chunk.
fn narrow_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (flat_workgroup(wid, nwg)) * NARROW_WG + lid;
}

@group(0) @binding(0) var<uniform> p: Params;
// The input and the gradient (bindings 1 and 7, their vec4 views 12 and 13),
// stored in the call's precision, and their accessors (input_load,
// grad_store, grad_load4, grad_store4, grad_store_at4, …) come from the
// storage the core declares (src/core/storage.rs); math is in f32.

// A logit, capped. In place, the input is read from the gradient's buffer.
fn load_input(idx: u32) -> f32 {
    if (IN_PLACE) {
        return cap_input(grad_load(idx));
    }
    return cap_input(input_load(idx));
}

fn load_input4(j: u32) -> vec4<f32> {
    if (IN_PLACE) {
        return cap_input4(grad_load4(j));
    }
    return cap_input4(input_load4(j));
}

// i32 class ids, u8 class ids packed little-endian 4 per word, or f32 probabilities (as bits)
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read> weights: array<f32>;
// Scratch: [denominator (f32 bits), sum of class weights (f32 bits), 0, 0],
// then the per-row outputs (`flags` words): with COUNT_CORRECT one word per
// row, 1 where the row's argmax equals its target; with WRITE_ARGMAX each
// row's predicted class (from `argmax_at`); with WRITE_ENTROPY its entropy
// (f32 bits, from `entropy_at`); then the split rows' partials.
@group(0) @binding(4) var<storage, read_write> aux: array<u32>;
// [number of bad targets, first bad position, its value (i32 bits), 0, or
// 2 where a vocabulary finish's merged records do not cover the classes]
@group(0) @binding(5) var<storage, read_write> status: array<u32>;
@group(0) @binding(6) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(8) var<storage, read_write> loss_out: array<f32>;
@group(0) @binding(9) var<storage, read> sample_weights: array<f32>;
@group(0) @binding(10) var<storage, read_write> lse_out: array<f32>;
// Number of rows whose argmax equals the target (non-ignored rows only).
@group(0) @binding(11) var<storage, read_write> correct_out: array<u32>;
// `targets` again, four words per load, for target_partials (bound over the
// buffer's whole 16-byte units).
@group(0) @binding(14) var<storage, read> targets4: array<vec4<u32>>;
// Vocabulary shards' per-row records (vocab.wgsl): read (the gathered
// records of a merge, the merged records of a finish) and written (a
// shard's partial, the merge).
@group(0) @binding(15) var<storage, read> shard_in: array<u32>;
@group(0) @binding(16) var<storage, read_write> shard_out: array<u32>;
// Each row's predicted class (i32, as class-id targets) and entropy,
// written by `row_outputs` from `aux`: the rows passes bind as many storage
// buffers as a device must offer already.
@group(0) @binding(17) var<storage, read_write> argmax_out: array<i32>;
@group(0) @binding(18) var<storage, read_write> entropy_out: array<f32>;

// Words of call statistics at the start of `aux` (`AUX_ROWS` in plan.rs).
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
    return row_start(row, p.classes, p.inner);
}

// Flat index of class 0 of global row `row` within the current chunk's binding.
fn chunk_base(row: u32) -> u32 {
    return row_base(row - p.row_offset) + p.elem_offset;
}

// Soft-capping (SOFTCAP): cap * tanh(x / cap). A builtin tanh may compute
// (e^2y - 1) / (e^2y + 1), which cancels for small |y| (lavapipe's is off
// by 3e-3 relative at y = 1e-5) and gives inf / inf past e^2y's overflow.
// So, as Cephes' tanhf: below |y| = 0.625 an odd polynomial (relative error
// about 1e-7), above it 1 - 2 / (e^2|y| + 1), which saturates to +-1.
// -inf and +inf give -cap and cap; NaN stays NaN.
fn softcap_tanh(y: f32) -> f32 {
    let a = abs(y);
    if (a < 0.625) {
        let z = y * y;
        let poly = ((((-5.70498872745e-3 * z + 2.06390887954e-2) * z - 5.37397155531e-2) * z
            + 1.33314422036e-1) * z - 3.33332819422e-1) * z;
        return y + y * poly;
    }
    return sign(y) * (1.0 - 2.0 / (exp(2.0 * a) + 1.0));
}

// A logit as the loss sees it: divided by the temperature, then capped.
fn cap_input(x: f32) -> f32 {
    var y = x;
    if (TEMPERATURE) {
        y = x / p.temperature;
    }
    if (SOFTCAP) {
        return p.softcap * softcap_tanh(y / p.softcap);
    }
    return y;
}

fn cap_input4(v: vec4<f32>) -> vec4<f32> {
    if (SOFTCAP || TEMPERATURE) {
        return vec4<f32>(cap_input(v.x), cap_input(v.y), cap_input(v.z), cap_input(v.w));
    }
    return v;
}

// d (as the loss sees it) / d x at the capped value c = cap tanh(y / cap),
// y = x / temperature: (1 - (c / cap)^2) / temperature.
fn cap_slope(c: f32) -> f32 {
    var slope = 1.0;
    if (SOFTCAP) {
        let t = c / p.softcap;
        slope = 1.0 - t * t;
    }
    if (TEMPERATURE) {
        slope = slope / p.temperature;
    }
    return slope;
}
