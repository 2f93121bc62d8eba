// The product's B operand (shaders/matmul/product.wgsl) stored as bf16,
// two to a little-endian u32 (shaders/lib/bf16.wgsl), with the bias (binding 4) in the same type;
// `rhs4` is the same buffer's view in whole vec4s of bf16 (two words).
@group(0) @binding(2) var<storage, read> rhs: array<u32>;
@group(0) @binding(6) var<storage, read> rhs4: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read> bias: array<u32>;

fn rhs_at(i: u32) -> f32 {
    return bf16_unpack(rhs[i / 2u], i & 1u);
}

// Elements 4q .. 4q + 3, one 8-byte load.
fn rhs_quad(q: u32) -> vec4<f32> {
    return bf16_unpack4(rhs4[q]);
}

fn bias_at(i: u32) -> f32 {
    return bf16_unpack(bias[i / 2u], i & 1u);
}
