// Softmax's input, output and upstream gradient stored as f16 (devices
// with SHADER_F16), as `storage_f32.wgsl`, whose accessors these are.
enable f16;

@group(0) @binding(1) var<storage, read> x: array<f16>;
@group(0) @binding(2) var<storage, read_write> y: array<f16>;
@group(0) @binding(3) var<storage, read> dy: array<f16>;

fn load_x(i: u32) -> f32 {
    return f32(x[i]);
}

fn load_dy(i: u32) -> f32 {
    return f32(dy[i]);
}

fn store_y(i: u32, v: f32) {
    y[i] = f16(v);
}
