// coop.wgsl's primitives on the hardware's cooperative matrices (wgpu's
// `EXPERIMENTAL_COOPERATIVE_MATRIX`: f16 16 x 16 x 16 into f32). Naga
// needs a `var` of a matrix type in the module (the accumulators are) and
// let-bound arguments to coopStoreT.

alias Acc = coop_mat16x16<f32, C>;

// The staged tiles, row-major: A 64 x 16 and B 16 x 64, their hi halves
// then (split operands) their lo halves; a strip of the output, 16 x 64.
var<workgroup> tile_a: array<f16, 2048>;
var<workgroup> tile_b: array<f16, 2048>;
var<workgroup> strip: array<f32, 1024>;

// Stages A's (hi, lo) at `at.x` and B's at `at.y`: staged element e of
// each (the emulation's packing needs it; the hardware's does not).
fn stage_pair(e: u32, at: vec2<u32>, a: vec2<f32>, b: vec2<f32>) {
    tile_a[at.x] = f16(a.x);
    tile_b[at.y] = f16(b.x);
    if (A_SPLIT) {
        tile_a[at.x + 1024u] = f16(a.y);
    }
    if (B_SPLIT) {
        tile_b[at.y + 1024u] = f16(b.y);
    }
}

// A's hi at `at.x` and B's at `at.y` become 0 where not finite.
fn clear_pair(at: vec2<u32>) {
    if (!finite(f32(tile_a[at.x]))) {
        tile_a[at.x] = f16(0.0);
    }
    if (!finite(f32(tile_b[at.y]))) {
        tile_b[at.y] = f16(0.0);
    }
}

fn acc_zero() -> Acc {
    return Acc();
}

// c + the product of A's tile rows [at.x / 16, +16) and B's tile columns
// [at.y, +16) over the step's 16 of k, of the halves `parts` names (0: hi,
// 1: lo).
fn tile_product(at: vec2<u32>, parts: vec2<u32>, c: Acc) -> Acc {
    let ia = at.x + parts.x * 1024u;
    let ib = at.y + parts.y * 1024u;
    let a = coopLoadT<coop_mat16x16<f16, A>>(&tile_a[ia], 16u);
    let b = coopLoadT<coop_mat16x16<f16, B>>(&tile_b[ib], 64u);
    return coopMultiplyAdd(a, b, c);
}

// acc + p · unscale.x · unscale.y, the product scaled first.
fn acc_add(acc: Acc, p: Acc, unscale: vec2<f32>) -> Acc {
    return acc + (p * unscale.x) * unscale.y;
}

fn acc_store(acc: Acc, at: u32) {
    let stride = 64u;
    coopStoreT(acc, &strip[at], stride);
}

fn strip_at(e: u32) -> f32 {
    return strip[e];
}
