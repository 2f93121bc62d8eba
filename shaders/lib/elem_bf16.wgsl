// The input and the gradient of the cross-entropy module stored as bf16,
// two to a little-endian u32 (element 2k in the low half of word k, as a
// `&[half::bf16]` lies in memory), with the accessors `elem_access.wgsl`
// defines for f32 and f16. WGSL has no bf16: a bf16 is the high half of an
// f32, so loading is a shift, and storing rounds to nearest even with NaN
// kept NaN (quiet) and ±inf kept.
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

// Element `half` (0 low, 1 high) of word w as f32.
fn bf16_unpack(w: u32, half: u32) -> f32 {
    return bitcast<f32>(select(w << 16u, w & 0xffff0000u, half == 1u));
}

// v rounded to bf16, to nearest even, as 16 bits.
fn bf16_bits(v: f32) -> u32 {
    let b = bitcast<u32>(v);
    // NaN: keep the sign and the top of the payload, quiet.
    let nan = (b & 0x7fffffffu) > 0x7f800000u;
    return select((b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u, (b >> 16u) | 0x40u, nan);
}

// Four elements (two words) at once, lane by lane with no select.
fn bf16_unpack4(w: vec2<u32>) -> vec4<f32> {
    return bitcast<vec4<f32>>(vec4<u32>(w.x << 16u, w.x & 0xffff0000u, w.y << 16u, w.y & 0xffff0000u));
}

fn bf16_pack4(v: vec4<f32>) -> vec2<u32> {
    let b = bitcast<vec4<u32>>(v);
    let rounded = (b + vec4<u32>(0x7fffu) + ((b >> vec4<u32>(16u)) & vec4<u32>(1u))) >> vec4<u32>(16u);
    let nan = (b & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u);
    let h = select(rounded, (b >> vec4<u32>(16u)) | vec4<u32>(0x40u), nan);
    return vec2<u32>(h.x | (h.y << 16u), h.z | (h.w << 16u));
}

fn load_input(idx: u32) -> f32 {
    if (IN_PLACE) {
        return bf16_unpack(atomicLoad(&grad[idx / 2u]), idx & 1u);
    }
    return bf16_unpack(input[idx / 2u], idx & 1u);
}

fn store_grad(idx: u32, v: f32) {
    let shift = (idx & 1u) * 16u;
    atomicAnd(&grad[idx / 2u], ~(0xffffu << shift));
    atomicOr(&grad[idx / 2u], bf16_bits(v) << shift);
}

fn load_input4(j: u32) -> vec4<f32> {
    if (IN_PLACE) {
        return bf16_unpack4(grad4[j]);
    }
    return bf16_unpack4(input4[j]);
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
