// The product's A operand (shaders/matmul/product.wgsl) stored as f16 (`enable f16;` comes first, from `enable_f16.wgsl`);
// `lhs4` is the same buffer's vec4 view (the host binds it over whole vec4s).
@group(0) @binding(1) var<storage, read> lhs: array<f16>;
@group(0) @binding(5) var<storage, read> lhs4: array<vec4<f16>>;

fn lhs_at(i: u32) -> f32 {
    return f32(lhs[i]);
}

// Elements 4q .. 4q + 3, one vec4 load.
fn lhs_quad(q: u32) -> vec4<f32> {
    return vec4<f32>(lhs4[q]);
}
