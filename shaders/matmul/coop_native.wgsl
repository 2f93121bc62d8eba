// coop.wgsl's primitives on the hardware's cooperative matrices (wgpu's
// `EXPERIMENTAL_COOPERATIVE_MATRIX`: f16 16 x 16 x 16 into f32). Naga
// needs a `var` of a matrix type in the module (the accumulators are) and
// let-bound arguments to coopStoreT.

alias Acc = coop_mat16x16<f32, C>;

// The staged tiles: A 64 x 16 and B 16 x 64, row-major; a strip of the
// output, 16 x 64.
var<workgroup> tile_a: array<f16, 1024>;
var<workgroup> tile_b: array<f16, 1024>;
var<workgroup> strip: array<f32, 1024>;

fn stage_a(i: u32, v: f32) {
    tile_a[i] = f16(v);
}

fn stage_b(i: u32, v: f32) {
    tile_b[i] = f16(v);
}

fn acc_zero() -> Acc {
    return Acc();
}

// The product of A's tile rows [a0 / 16, +16) and B's tile columns
// [b0, +16) over the step's 16 of k.
fn tile_product(a0: u32, b0: u32) -> Acc {
    let a = coopLoadT<coop_mat16x16<f16, A>>(&tile_a[a0], 16u);
    let b = coopLoadT<coop_mat16x16<f16, B>>(&tile_b[b0], 64u);
    return coopMultiplyAdd(a, b, Acc());
}

// acc + p · unscale.x · unscale.y, the product scaled first.
fn acc_add(acc: Acc, p: Acc, unscale: vec2<f32>) -> Acc {
    return acc + (p * unscale.x) * unscale.y;
}

fn acc_store(acc: Acc, at: u32) {
    let stride = 64u;
    coopStoreT(acc, &strip[at], stride);
}
