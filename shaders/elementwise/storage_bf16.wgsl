// The elementwise losses' input, target and gradient stored as bf16, two
// to a u32, with the conversions of `shaders/lib/bf16.wgsl`: as
// `storage_f32.wgsl`, whose accessors these are. A vec4 is two whole
// words; an element stored alone (the scalar kernel, where neighbouring
// invocations hold neighbouring elements) sets its own half of a word with
// two atomic bit operations.

@group(0) @binding(1) var<storage, read> input: array<u32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(5) var<storage, read_write> grad: array<atomic<u32>>;
@group(0) @binding(11) var<storage, read> input4: array<vec2<u32>>;
@group(0) @binding(12) var<storage, read> targets4: array<vec2<u32>>;
@group(0) @binding(15) var<storage, read_write> grad4: array<vec2<u32>>;

fn load_input(i: u32) -> f32 {
    return bf16_unpack(input[i / 2u], i & 1u);
}

fn load_target(i: u32) -> f32 {
    return bf16_unpack(targets[i / 2u], i & 1u);
}

fn store_grad(i: u32, v: f32) {
    let shift = (i & 1u) * 16u;
    atomicAnd(&grad[i / 2u], ~(0xffffu << shift));
    atomicOr(&grad[i / 2u], bf16_bits(v) << shift);
}

fn load_input4(q: u32) -> vec4<f32> {
    return bf16_unpack4(input4[q]);
}

fn load_target4(q: u32) -> vec4<f32> {
    return bf16_unpack4(targets4[q]);
}

fn store_grad4(q: u32, v: vec4<f32>) {
    grad4[q] = bf16_pack4(v);
}

fn stored_len() -> u32 {
    return 2u * min(arrayLength(&input), arrayLength(&targets));
}
