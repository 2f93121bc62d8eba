// The input and the gradient of the cross-entropy module stored as ELEM
// (f32 or f16, from the prelude), with the accessors the kernels use; every
// value is converted to f32 on load. `elem_bf16.wgsl` defines the same for
// bf16 packed two to a word.

@group(0) @binding(1) var<storage, read> input: array<ELEM>;
@group(0) @binding(7) var<storage, read_write> grad: array<ELEM>;
// The vec4 views of the vec4 kernels.
@group(0) @binding(12) var<storage, read> input4: array<ELEM4>;
@group(0) @binding(13) var<storage, read_write> grad4: array<ELEM4>;

// In place, the input is read from the gradient's buffer.
fn load_input(idx: u32) -> f32 {
    if (IN_PLACE) {
        return cap_input(f32(grad[idx]));
    }
    return cap_input(f32(input[idx]));
}

fn store_grad(idx: u32, v: f32) {
    grad[idx] = ELEM(v);
}

fn load_input4(j: u32) -> vec4<f32> {
    if (IN_PLACE) {
        return cap_input4(vec4<f32>(grad4[j]));
    }
    return cap_input4(vec4<f32>(input4[j]));
}

// What the gradient's vec4 holds now (to keep lanes past the tensor).
fn load_grad4(j: u32) -> vec4<f32> {
    return vec4<f32>(grad4[j]);
}

fn store_grad4(j: u32, v: vec4<f32>) {
    grad4[j] = ELEM4(v);
}

// One element of the vec4 view, by the invocation that owns its vec4.
fn store_grad_at4(idx: u32, v: f32) {
    grad4[idx / 4u][idx % 4u] = ELEM(v);
}
