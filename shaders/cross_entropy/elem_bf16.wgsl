// The input and the gradient of the cross-entropy module stored as bf16,
// two to a little-endian u32 (element 2k in the low half of word k, as a
// `&[half::bf16]` lies in memory), with the accessors `elem_access.wgsl`
// defines for f32 and f16, through the conversions of `bf16.wgsl`.
//
// A vec4 of bf16 is a vec2<u32>, whole words, so the vec4 kernels write
// without conflict. An element written alone shares its word with a
// neighbour that another invocation may write at the same time, so it is
// written with two atomic bit operations on its own half (no float
// atomics: the result does not depend on the order).

@group(0) @binding(1) var<storage, read> input: array<u32>;
@group(0) @binding(7) var<storage, read_write> grad: array<atomic<u32>>;
@group(0) @binding(12) var<storage, read> input4: array<vec2<u32>>;
@group(0) @binding(13) var<storage, read_write> grad4: array<vec2<u32>>;

fn load_input(idx: u32) -> f32 {
    if (IN_PLACE) {
        return cap_input(bf16_unpack(atomicLoad(&grad[idx / 2u]), idx & 1u));
    }
    return cap_input(bf16_unpack(input[idx / 2u], idx & 1u));
}

fn store_grad(idx: u32, v: f32) {
    let shift = (idx & 1u) * 16u;
    atomicAnd(&grad[idx / 2u], ~(0xffffu << shift));
    atomicOr(&grad[idx / 2u], bf16_bits(v) << shift);
}

fn load_input4(j: u32) -> vec4<f32> {
    if (IN_PLACE) {
        return cap_input4(bf16_unpack4(grad4[j]));
    }
    return cap_input4(bf16_unpack4(input4[j]));
}

// What the gradient's vec4 holds now (to keep lanes past the tensor: a
// bf16 goes through f32 and back unchanged).
fn load_grad4(j: u32) -> vec4<f32> {
    return bf16_unpack4(grad4[j]);
}

fn store_grad4(j: u32, v: vec4<f32>) {
    grad4[j] = bf16_pack4(v);
}

// One element of the vec4 view, by the invocation that owns its vec4.
fn store_grad_at4(idx: u32, v: f32) {
    let j = idx / 4u;
    let k = idx % 4u;
    let w = grad4[j];
    let shift = (k & 1u) * 16u;
    let word = select(w.x, w.y, k >= 2u);
    let merged = (word & ~(0xffffu << shift)) | (bf16_bits(v) << shift);
    grad4[j] = select(vec2<u32>(merged, w.y), vec2<u32>(w.x, merged), k >= 2u);
}
