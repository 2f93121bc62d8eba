// The cooperative-matrix product: out (m x n, f32) = A (m x k) . B (k x n)
// [+ bias] [+ out] in 16 x 16 x 16 multiply-accumulates of f16 operands
// into f32 (tensor cores), its four primitives (acc_zero, tile_product,
// acc_add, acc_store) and its tiles' storage from coop_native.wgsl (the
// hardware's) or coop_emulated.wgsl (the same operations in plain WGSL, run
// and tested on every adapter). Everything else, the tiling, the scaling and
// the indexing, is this one source.
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

const BLOCK: u32 = 64u;
const TK: u32 = 16u;
const WG: u32 = 32u;
// Elements of a staged tile per invocation: 64 x 16 / 32.
const PER_LANE: u32 = 32u;

override A_K_CONTIG: bool = true;
override B_K_CONTIG: bool = true;
override HAS_BIAS: bool = false;

var<workgroup> a_max: atomic<u32>;
var<workgroup> b_max: atomic<u32>;
var<private> lane: u32;

// The biased f32 exponent of |v| (0 for zeros and subnormals), 0 for inf
// and NaN too: they keep their value through the scaling, and must not
// scale the rest of their tile's row into zeros.
fn exponent(v: f32) -> u32 {
    let e = (bitcast<u32>(v) >> 23u) & 0xffu;
    return select(e, 0u, e == 0xffu);
}

// The shift that puts a step's largest biased exponent `e` at 2^15, within
// f32's normal powers of two: 2^126 for a step of zeros and f32 subnormals
// (e = 0), which lifts bf16's subnormals into f16's exact range.
fn shift_for(e: u32) -> i32 {
    return clamp(142 - i32(e), -126, 126);
}

// v . 2^shift as an f16 value exactly: below f16's normal range (2^-14),
// rounded to a multiple of 2^-24 (half to even), f16's subnormal step.
// Products by exact powers of two (ldexp of 1, not exp2, whose accuracy
// Vulkan bounds loosely; not ldexp of v, which GL flushes for subnormal v).
fn to_f16_exact(v: f32, shift: i32) -> f32 {
    let s = v * ldexp(1.0, shift);
    if (abs(s) < 0.00006103515625) {
        return round(s * 16777216.0) * 5.9604644775390625e-8;
    }
    return s;
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

// Stages step k0's tiles of A and B, scaled, and returns their shifts.
fn stage(m0: u32, n0: u32, k0: u32) -> vec2<i32> {
    var a: array<f32, PER_LANE>;
    var b: array<f32, PER_LANE>;
    var ea = 0u;
    var eb = 0u;
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
    }
    atomicMax(&a_max, ea);
    atomicMax(&b_max, eb);
    workgroupBarrier();
    let shifts = vec2<i32>(shift_for(atomicLoad(&a_max)), shift_for(atomicLoad(&b_max)));
    for (var q = 0u; q < PER_LANE; q++) {
        let e = lane + WG * q;
        let pa = tile_at(e, m0, k0, A_K_CONTIG, mp.m);
        stage_a(pa.x * TK + pa.y, to_f16_exact(a[q], shifts.x));
        let pb = tile_at(e, n0, k0, B_K_CONTIG, mp.n);
        stage_b(pb.y * BLOCK + pb.x, to_f16_exact(b[q], shifts.y));
    }
    workgroupBarrier();
    // Both maxima read: reset for the next step (read before its barrier).
    if (lane == 0u) {
        atomicStore(&a_max, 0u);
        atomicStore(&b_max, 0u);
    }
    return shifts;
}

// Workgroup (x, y) computes output columns [BLOCK x, ...) of rows
// [BLOCK y, ...). A dispatch covers at most the host's slice of k
// (`K_PER_DISPATCH_COOP` in src/ops/matmul/kernels.rs), within the loop
// bound with the emulation's loops counted.
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
    }
    workgroupBarrier();
    let m0 = enter_slice(wid.y, BLOCK) * BLOCK;
    let n0 = wid.x * BLOCK;
    var acc: array<Acc, 16>;
    for (var t = 0u; t < 16u; t++) {
        acc[t] = acc_zero();
    }
    for (var k0 = 0u; k0 < slice_len; k0 += TK) {
        let shifts = stage(m0, n0, k0);
        // 2^-(a_shift + b_shift) in two halves, each an f32 normal power
        // of two: the sum reaches ±252, past f32's exponents, and a product
        // by half of it lies between the tile's product and the result, so
        // neither step underflows or overflows where the result does not.
        let shift = shifts.x + shifts.y;
        let half = shift / 2;
        let unscale = vec2<f32>(ldexp(1.0, -half), ldexp(1.0, half - shift));
        for (var t = 0u; t < 16u; t++) {
            let p = tile_product((t / 4u) * 16u * TK, (t % 4u) * 16u);
            acc[t] = acc_add(acc[t], p, unscale);
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
                write_out(row, col, strip[e]);
            }
        }
        workgroupBarrier();
    }
}
