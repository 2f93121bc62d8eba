// Softmax's input, output and upstream gradient stored as f32 (with
// `storage_f16.wgsl` and `storage_bf16.wgsl` the other choices).

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;

fn load_x(i: u32) -> f32 {
    return f32(x[i]);
}

fn load_dy(i: u32) -> f32 {
    return f32(dy[i]);
}

fn store_y(i: u32, v: f32) {
    y[i] = f32(v);
}
