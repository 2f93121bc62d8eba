// coop.wgsl's primitives in plain WGSL, for every adapter: a 16 x 16
// matrix is spread over the workgroup's 32 invocations, 8 elements each
// (element e = lane + 32 q of the tile, row e / 16, column e % 16), the
// staged hi tiles hold the f16 values as f32 (exact: the staging made them
// f16 values; past f16's range they are infinities, as f16 storage makes
// them), and a tile's product sums its 16 terms in k order after c. The
// loops run to the uniform's `side` (16) and `share` (8): with constant
// bounds, GL's compilers unroll them into a module llvmpipe took minutes
// to compile.
//
// The lo halves of A's and B's element staged e-th are packed as f16 bits
// into one u32 (one invocation writes both), and that array is the output
// strip after the last step: the emulation's workgroup memory stays within
// the 16 352 bytes xent asks of a device (src/core/requirements.rs).

alias Acc = array<f32, 8>;

var<workgroup> tile_a: array<f32, 1024>;
var<workgroup> tile_b: array<f32, 1024>;
var<workgroup> tile_lo: array<u32, 1024>;

// f16's largest finite value: a staged value past it is an infinity.
const F16_MAX: f32 = 65504.0;

fn as_f16(v: f32) -> f32 {
    let inf = bitcast<f32>((bitcast<u32>(v) & 0x80000000u) | 0x7f800000u);
    return select(v, inf, abs(v) > F16_MAX);
}

// The f16 bits of v, a finite f16 value held in an f32 (a lo half).
fn f16_bits(v: f32) -> u32 {
    let bits = bitcast<u32>(v);
    let sign = (bits >> 16u) & 0x8000u;
    let mag = bits & 0x7fffffffu;
    if (mag >= 0x38800000u) {
        return sign | ((mag >> 13u) - (112u << 10u));
    }
    return sign | u32(abs(v) * 16777216.0);
}

// The f32 value of finite f16 bits h.
fn f16_value(h: u32) -> f32 {
    let mag = h & 0x7fffu;
    var v = f32(mag) * 5.9604644775390625e-8;
    if (mag >= 0x400u) {
        v = bitcast<f32>((mag << 13u) + (112u << 23u));
    }
    return select(v, -v, (h & 0x8000u) != 0u);
}

fn stage_pair(e: u32, at: vec2<u32>, a: vec2<f32>, b: vec2<f32>) {
    tile_a[at.x] = as_f16(a.x);
    tile_b[at.y] = as_f16(b.x);
    tile_lo[e] = f16_bits(a.y) | (f16_bits(b.y) << 16u);
}

fn clear_pair(at: vec2<u32>) {
    if (!finite(tile_a[at.x])) {
        tile_a[at.x] = 0.0;
    }
    if (!finite(tile_b[at.y])) {
        tile_b[at.y] = 0.0;
    }
}

// A's element at tile index i, its hi (part 0) or lo (part 1): its lo
// from the element staged e-th (tile_at's order, inverted).
fn a_part(i: u32, part: u32) -> f32 {
    if (part == 0u) {
        return tile_a[i];
    }
    let e = select((i % TK) * BLOCK + i / TK, i, A_K_CONTIG);
    return f16_value(tile_lo[e] & 0xffffu);
}

fn b_part(i: u32, part: u32) -> f32 {
    if (part == 0u) {
        return tile_b[i];
    }
    let e = select(i, (i % BLOCK) * TK + i / BLOCK, B_K_CONTIG);
    return f16_value(tile_lo[e] >> 16u);
}

fn acc_zero() -> Acc {
    return Acc();
}

fn tile_product(at: vec2<u32>, parts: vec2<u32>, c: Acc) -> Acc {
    var p: Acc;
    for (var q = 0u; q < mp.share; q++) {
        let e = lane + 32u * q;
        let r = e / 16u;
        let col = e % 16u;
        var s = c[q];
        for (var l = 0u; l < mp.side; l++) {
            let a = a_part(at.x + r * 16u + l, parts.x);
            s += a * b_part(at.y + l * 64u + col, parts.y);
        }
        p[q] = s;
    }
    return p;
}

fn acc_add(acc: Acc, p: Acc, unscale: vec2<f32>) -> Acc {
    var out = acc;
    for (var q = 0u; q < mp.share; q++) {
        out[q] = acc[q] + (p[q] * unscale.x) * unscale.y;
    }
    return out;
}

fn acc_store(acc: Acc, at: u32) {
    for (var q = 0u; q < mp.share; q++) {
        let e = lane + 32u * q;
        tile_lo[at + (e / 16u) * 64u + e % 16u] = bitcast<u32>(acc[q]);
    }
}

fn strip_at(e: u32) -> f32 {
    return bitcast<f32>(tile_lo[e]);
}
