// bf16 to and from f32, for every op's bf16 storage (src/core/storage.rs)
// and for clients' shaders (`xent::wgsl::BF16`). WGSL has no
// bf16 type: a bf16 is the high half of an f32 (f32's exponent, 8
// significant bits), stored two to a little-endian u32 (element 2k in the
// low half of word k, as a `&[half::bf16]` lies in memory). Loading is a
// shift; storing rounds to nearest even, keeps ±inf, and keeps NaN NaN
// (quiet).

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
