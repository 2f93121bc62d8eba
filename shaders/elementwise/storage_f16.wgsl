// The elementwise losses' input, target and gradient stored as f16
// (devices with SHADER_F16), converted to f32 on load: as
// `storage_f32.wgsl`, whose accessors these are.
enable f16;

@group(0) @binding(1) var<storage, read> input: array<f16>;
@group(0) @binding(2) var<storage, read> targets: array<f16>;
@group(0) @binding(5) var<storage, read_write> grad: array<f16>;
@group(0) @binding(11) var<storage, read> input4: array<vec4<f16>>;
@group(0) @binding(12) var<storage, read> targets4: array<vec4<f16>>;
@group(0) @binding(15) var<storage, read_write> grad4: array<vec4<f16>>;

fn load_input(i: u32) -> f32 {
    return f32(input[i]);
}

fn load_target(i: u32) -> f32 {
    return f32(targets[i]);
}

fn store_grad(i: u32, v: f32) {
    grad[i] = f16(v);
}

fn load_input4(q: u32) -> vec4<f32> {
    return vec4<f32>(input4[q]);
}

fn load_target4(q: u32) -> vec4<f32> {
    return vec4<f32>(targets4[q]);
}

fn store_grad4(q: u32, v: vec4<f32>) {
    grad4[q] = vec4<f16>(v);
}

// Elements the input's and the target's first bindings hold.
fn stored_len() -> u32 {
    return min(arrayLength(&input), arrayLength(&targets));
}
