// The product's B operand (shaders/matmul/product.wgsl) stored as f32, with the bias (binding 4) in the same type;
// `rhs4` is the same buffer's vec4 view (the host binds it over whole vec4s).
@group(0) @binding(2) var<storage, read> rhs: array<f32>;
@group(0) @binding(6) var<storage, read> rhs4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

fn rhs_at(i: u32) -> f32 {
    return f32(rhs[i]);
}

// Elements 4q .. 4q + 3, one vec4 load.
fn rhs_quad(q: u32) -> vec4<f32> {
    return vec4<f32>(rhs4[q]);
}

fn bias_at(i: u32) -> f32 {
    return f32(bias[i]);
}
