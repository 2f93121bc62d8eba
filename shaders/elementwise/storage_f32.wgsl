// The elementwise losses' input, target and gradient stored as f32 (with
// `storage_f16.wgsl` and `storage_bf16.wgsl` the other choices).

@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<f32>;
@group(0) @binding(5) var<storage, read_write> grad: array<f32>;
@group(0) @binding(11) var<storage, read> input4: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read> targets4: array<vec4<f32>>;
@group(0) @binding(15) var<storage, read_write> grad4: array<vec4<f32>>;

fn load_input(i: u32) -> f32 {
    return input[i];
}

fn load_target(i: u32) -> f32 {
    return targets[i];
}

fn store_grad(i: u32, v: f32) {
    grad[i] = v;
}

fn load_input4(q: u32) -> vec4<f32> {
    return input4[q];
}

fn load_target4(q: u32) -> vec4<f32> {
    return targets4[q];
}

fn store_grad4(q: u32, v: vec4<f32>) {
    grad4[q] = v;
}

// Elements the input's and the target's first bindings hold.
fn stored_len() -> u32 {
    return min(arrayLength(&input), arrayLength(&targets));
}
