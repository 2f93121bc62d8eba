// The cooperative-matrix product: out (m x n, f32) = A (m x k) . B (k x n)
// [+ bias] [+ out] in 16 x 16 x 16 multiply-accumulates of f16 operands
// into f32 (tensor cores), its primitives (stage_pair, clear_pair,
// acc_zero, tile_product, acc_add, acc_store, strip_at) and its tiles'
// storage from coop_native.wgsl (the hardware's) or coop_emulated.wgsl (the
// same operations in plain WGSL, run and tested on every adapter).
// Everything else, the tiling, the scaling, the splitting and the
// indexing, is this one source.
//
// A workgroup of 32 invocations (one subgroup on the GPUs that offer these
// matrices to xent) owns a BLOCK x BLOCK block of the output, 4 x 4 tiles of
// 16 x 16, and walks k 16 at a time: each step stages A's 64 x 16 and B's
// 16 x 64 in workgroup memory as f16 values, scaled by a power of two each
// (the step's `a_shift` and `b_shift`) so that the largest magnitude lands
// in [2^15, 2^16): with 2^e the largest power of two of the tile, f16 holds
// bf16's 8 significant bits exactly down to 2^(e-32) (2^-17 scaled);
// smaller values are rounded to multiples of 2^(e-39) (f16's subnormal
// step, 2^-24 scaled). Each product of two tiles' elements is exact in f32
// (11-bit operands); the hardware sums a tile's 16 in its own order (the
// emulation: k ascending), the sum is scaled back by the inverse power of
// two and added to the f32 accumulators in k order: the same bits on every
// run of one device. f32 subnormal operands are lifted by 2^126 (bf16's
// subnormals become exact f16 values) where the device keeps them; a
// device that flushes them reads zeros, as its scalar kernels do.
//
// An f32 operand (A_SPLIT, B_SPLIT) is split: its largest magnitude lands
// in [2^14, 2^15) (one binade lower: rounding to 11 bits must not reach
// 2^16, past f16's range), each value v (scaled) is staged as hi, v rounded
// to f16, and lo, the rest v - hi (exact in f32) rounded to f16, so that
// |v - hi - lo| <= 2^-22 |v| + 2^(e-39). A step then adds hi.hi and, after
// it, the corrections hi.lo + lo.hi (lo.lo, at most 2^-22 |a||b|, is left
// out): two products for one f32 operand, three for two, each term within
// 2^-20 |a||b| + 2^(e_a-39) |b| + 2^(e_b-39) |a| of a.b. An infinity or NaN
// is staged as hi with lo = 0, and cleared from the hi tiles before the
// corrections (which read only finite values), so it meets the other
// operand's hi in hi.hi alone: inf.b is inf, as in f32, where b's hi is
// not 0.

const BLOCK: u32 = 64u;
const TK: u32 = 16u;
const WG: u32 = 32u;
// Elements of a staged tile per invocation: 64 x 16 / 32.
const PER_LANE: u32 = 32u;
// tile_product's parts: hi and lo of each operand.
const HI_HI: vec2<u32> = vec2<u32>(0u, 0u);
const HI_LO: vec2<u32> = vec2<u32>(0u, 1u);
const LO_HI: vec2<u32> = vec2<u32>(1u, 0u);

override A_K_CONTIG: bool = true;
override B_K_CONTIG: bool = true;
override HAS_BIAS: bool = false;
// A and B stored in f32: staged as two f16 halves.
override A_SPLIT: bool = false;
override B_SPLIT: bool = false;

var<workgroup> a_max: atomic<u32>;
var<workgroup> b_max: atomic<u32>;
var<private> lane: u32;
// FILTER (filter.wgsl): A's threshold, as f32 bits.
var<private> threshold: u32;

// The biased f32 exponent of |v| (0 for zeros and subnormals), 0 for inf
// and NaN too: they keep their value through the scaling, and must not
// scale the rest of their tile's row into zeros.
fn exponent(v: f32) -> u32 {
    let e = (bitcast<u32>(v) >> 23u) & 0xffu;
    return select(e, 0u, e == 0xffu);
}

fn finite(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

// The shift that puts a step's largest biased exponent `e` at 2^15 (2^14
// for a split operand), within f32's normal powers of two: 2^126 for a step
// of zeros and f32 subnormals (e = 0), which lifts bf16's subnormals into
// f16's exact range.
fn shift_for(e: u32, split: bool) -> i32 {
    return clamp(select(142, 141, split) - i32(e), -126, 126);
}

// s rounded to the nearest f16 value (half to even), as an f32: to 11
// significant bits from f16's normal range (2^-14) up, to a multiple of
// 2^-24 (f16's subnormal step) below; infinities and NaN as they are. The
// rounding is integer arithmetic on the bits: exact on every device.
fn to_f16(s: f32) -> f32 {
    let bits = bitcast<u32>(s);
    if (!finite(s)) {
        return s;
    }
    if (abs(s) < 0.00006103515625) {
        return round(s * 16777216.0) * 5.9604644775390625e-8;
    }
    // Drop 13 of the 24 significant bits: add half their unit (less one
    // where the last kept bit is even, for ties), then clear them.
    let odd = (bits >> 13u) & 1u;
    return bitcast<f32>((bits + 0xfffu + odd) & 0xffffe000u);
}

// v . 2^shift as two f16 values (hi, lo): hi its rounding (exact for f16
// and bf16 values: they have 11 and 8 bits), lo the rounding of the rest
// where `split` and hi is finite, else 0. Products by exact powers of two
// (ldexp of 1, not exp2, whose accuracy Vulkan bounds loosely; not ldexp
// of v, which GL flushes for subnormal v).
fn halves(v: f32, shift: i32, split: bool) -> vec2<f32> {
    let s = v * ldexp(1.0, shift);
    let hi = to_f16(s);
    if (!split || !finite(hi)) {
        return vec2<f32>(hi, 0.0);
    }
    return vec2<f32>(hi, to_f16(s - hi));
}

// Staged element e of a tile whose rows (A) or columns (B) start at r0 of
// `extent`: its (row or column, l) and whether it lies inside the operand.
// r-major with l fastest where the operand's k axis is contiguous, r
// fastest otherwise.
fn tile_at(e: u32, r0: u32, k0: u32, k_contig: bool, extent: u32) -> vec3<u32> {
    var r = e / TK;
    var l = e % TK;
    if (!k_contig) {
        r = e % BLOCK;
        l = e / BLOCK;
    }
    return vec3<u32>(r, l, u32(r0 + r < extent && k0 + l < slice_len));
}

// Where staged element e of A and of B lies in its tile (A: 64 rows of 16,
// B: 16 rows of 64), and whether it lies inside the operand.
fn tile_places(e: u32, m0: u32, n0: u32, k0: u32) -> vec4<u32> {
    let pa = tile_at(e, m0, k0, A_K_CONTIG, mp.m);
    let pb = tile_at(e, n0, k0, B_K_CONTIG, mp.n);
    return vec4<u32>(pa.x * TK + pa.y, pb.y * BLOCK + pb.x, pa.z, pb.z);
}

// Stages step k0's tiles of A and B, scaled and split; returns their
// shifts, and 1 where this invocation staged an infinity or NaN. FILTER:
// keep_step says whether any of A's values lies at or above the threshold.
fn stage(m0: u32, n0: u32, k0: u32) -> vec3<i32> {
    var a: array<f32, PER_LANE>;
    var b: array<f32, PER_LANE>;
    var ea = 0u;
    var eb = 0u;
    var kept = false;
    for (var q = 0u; q < PER_LANE; q++) {
        let e = lane + WG * q;
        // Zeros outside the operands.
        var va = 0.0;
        var vb = 0.0;
        let pa = tile_at(e, m0, k0, A_K_CONTIG, mp.m);
        if (pa.z != 0u) {
            va = lhs_load(a_base + (m0 + pa.x) * mp.a_sm + (k0 + pa.y) * mp.a_sk);
        }
        let pb = tile_at(e, n0, k0, B_K_CONTIG, mp.n);
        if (pb.z != 0u) {
            vb = rhs_load(b_base + (k0 + pb.y) * mp.b_sk + (n0 + pb.x) * mp.b_sn);
        }
        a[q] = va;
        b[q] = vb;
        ea = max(ea, exponent(a[q]));
        eb = max(eb, exponent(b[q]));
        kept = kept || (FILTER && kept4(vec4<f32>(va), threshold));
    }
    atomicMax(&a_max, ea);
    atomicMax(&b_max, eb);
    if (kept) {
        atomicOr(&any_kept, 1u);
    }
    workgroupBarrier();
    if (FILTER && lane == 0u) {
        keep_step = atomicLoad(&any_kept);
    }
    let shifts = vec2<i32>(
        shift_for(atomicLoad(&a_max), A_SPLIT),
        shift_for(atomicLoad(&b_max), B_SPLIT),
    );
    var nonfinite = 0;
    for (var q = 0u; q < PER_LANE; q++) {
        let e = lane + WG * q;
        let at = tile_places(e, m0, n0, k0);
        let va = halves(a[q], shifts.x, A_SPLIT);
        let vb = halves(b[q], shifts.y, B_SPLIT);
        stage_pair(e, at.xy, va, vb);
        nonfinite |= i32(!finite(a[q]) || !finite(b[q]));
    }
    workgroupBarrier();
    // Both maxima and the verdict read: reset for the next step (read
    // before its barrier).
    if (lane == 0u) {
        atomicStore(&a_max, 0u);
        atomicStore(&b_max, 0u);
        atomicStore(&any_kept, 0u);
    }
    return vec3<i32>(shifts, nonfinite);
}

// Where a split operand staged an infinity or NaN (this invocation's
// elements, `nonfinite` from stage), its hi becomes 0 for the corrections.
fn clear_nonfinite(nonfinite: i32) {
    if (nonfinite == 0) {
        return;
    }
    for (var q = 0u; q < PER_LANE; q++) {
        let e = lane + WG * q;
        clear_pair(tile_places(e, 0u, 0u, 0u).xy);
    }
}

// Where output tile t (of 4 x 4) reads the staged A (its first row's
// element) and B (its first column).
fn tile_origins(t: u32) -> vec2<u32> {
    return vec2<u32>((t / 4u) * 16u * TK, (t % 4u) * 16u);
}

// Workgroup (x, y) computes output columns [BLOCK x, ...) of rows
// [BLOCK y, ...). A dispatch covers at most the host's slice of k
// (`coop_k_step` in src/ops/matmul/kernels.rs), within the loop bound
// with the emulation's loops and the split's corrections counted.
@compute @workgroup_size(32)
fn matmul_coop(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    lane = lid;
    // The maxima start at 0 (each step's staging resets them for the next).
    if (lane == 0u) {
        atomicStore(&a_max, 0u);
        atomicStore(&b_max, 0u);
        atomicStore(&any_kept, 0u);
    }
    if (FILTER) {
        threshold = filter_threshold();
    }
    workgroupBarrier();
    let m0 = enter_slice(wid.y, BLOCK) * BLOCK;
    let n0 = wid.x * BLOCK;
    var acc: array<Acc, 16>;
    for (var t = 0u; t < 16u; t++) {
        acc[t] = acc_zero();
    }
    for (var k0 = 0u; k0 < slice_len; k0 += TK) {
        let staged = stage(m0, n0, k0);
        // 2^-(a_shift + b_shift) in two halves, each an f32 normal power
        // of two: the sum reaches ±252, past f32's exponents, and a product
        // by half of it lies between the tile's product and the result, so
        // neither step underflows or overflows where the result does not.
        let shift = staged.x + staged.y;
        let half = shift / 2;
        let unscale = vec2<f32>(ldexp(1.0, -half), ldexp(1.0, half - shift));
        // FILTER: a step whose A values all lie below the threshold adds
        // nothing (staged all the same: the verdict needs the whole tile).
        var keep = true;
        if (FILTER) {
            keep = workgroupUniformLoad(&keep_step) != 0u;
        }
        if (!keep) {
            workgroupBarrier();
            continue;
        }
        for (var t = 0u; t < 16u; t++) {
            let p = tile_product(tile_origins(t), HI_HI, acc_zero());
            acc[t] = acc_add(acc[t], p, unscale);
        }
        if (A_SPLIT || B_SPLIT) {
            workgroupBarrier();
            clear_nonfinite(staged.z);
            workgroupBarrier();
            for (var t = 0u; t < 16u; t++) {
                var p = acc_zero();
                if (B_SPLIT) {
                    p = tile_product(tile_origins(t), HI_LO, p);
                }
                if (A_SPLIT) {
                    p = tile_product(tile_origins(t), LO_HI, p);
                }
                acc[t] = acc_add(acc[t], p, unscale);
            }
        }
        workgroupBarrier();
    }
    // A strip of 16 rows at a time through workgroup memory, then out with
    // the bounds, the bias and the accumulation.
    for (var r = 0u; r < 4u; r++) {
        for (var c = 0u; c < 4u; c++) {
            acc_store(acc[r * 4u + c], c * 16u);
        }
        workgroupBarrier();
        for (var q = 0u; q < PER_LANE; q++) {
            let e = lane + WG * q;
            let row = m0 + r * 16u + e / BLOCK;
            let col = n0 + e % BLOCK;
            if (row < mp.m && col < mp.n) {
                write_out(row, col, strip_at(e));
            }
        }
        workgroupBarrier();
    }
}
