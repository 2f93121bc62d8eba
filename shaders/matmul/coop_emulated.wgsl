// coop.wgsl's primitives in plain WGSL, for every adapter: a 16 x 16
// matrix is spread over the workgroup's 32 invocations, 8 elements each
// (element e = lane + 32 q of the tile, row e / 16, column e % 16), the
// staged tiles hold the f16 values as f32 (exact: the staging made them
// f16 values), and a tile's product sums its 16 terms in k order. The
// loops run to the uniform's `side` (16) and `share` (8): with constant
// bounds, GL's compilers unroll them into a module llvmpipe took minutes
// to compile.

alias Acc = array<f32, 8>;

var<workgroup> tile_a: array<f32, 1024>;
var<workgroup> tile_b: array<f32, 1024>;
var<workgroup> strip: array<f32, 1024>;

fn stage_a(i: u32, v: f32) {
    tile_a[i] = v;
}

fn stage_b(i: u32, v: f32) {
    tile_b[i] = v;
}

fn acc_zero() -> Acc {
    return Acc();
}

fn tile_product(a0: u32, b0: u32) -> Acc {
    var p: Acc;
    for (var q = 0u; q < mp.share; q++) {
        let e = lane + 32u * q;
        let r = e / 16u;
        let c = e % 16u;
        var s = 0.0;
        for (var l = 0u; l < mp.side; l++) {
            s += tile_a[a0 + r * 16u + l] * tile_b[b0 + l * 64u + c];
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
        strip[at + (e / 16u) * 64u + e % 16u] = acc[q];
    }
}
