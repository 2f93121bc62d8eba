// The product's A operand (shaders/matmul/product.wgsl) stored as bf16,
// two to a little-endian u32 (shaders/lib/bf16.wgsl);
// `lhs4` is the same buffer's view in whole vec4s of bf16 (two words).
@group(0) @binding(1) var<storage, read> lhs: array<u32>;
@group(0) @binding(5) var<storage, read> lhs4: array<vec2<u32>>;

fn lhs_at(i: u32) -> f32 {
    return bf16_unpack(lhs[i / 2u], i & 1u);
}

// Elements 4q .. 4q + 3, one 8-byte load.
fn lhs_quad(q: u32) -> vec4<f32> {
    return bf16_unpack4(lhs4[q]);
}
