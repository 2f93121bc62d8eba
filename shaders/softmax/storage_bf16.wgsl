// Softmax's input, output and upstream gradient stored as bf16, two to a
// u32 (`shaders/lib/bf16.wgsl`), as `storage_f32.wgsl`, whose accessors
// these are. Neighbouring invocations write neighbouring elements (the
// classes of a wide row, the pixels of a map), so an element sets its own
// half of a word with two atomic bit operations.

@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read> dy: array<u32>;

fn load_x(i: u32) -> f32 {
    return bf16_unpack(x[i / 2u], i & 1u);
}

fn load_dy(i: u32) -> f32 {
    return bf16_unpack(dy[i / 2u], i & 1u);
}

fn store_y(i: u32, v: f32) {
    let shift = (i & 1u) * 16u;
    atomicAnd(&y[i / 2u], ~(0xffffu << shift));
    atomicOr(&y[i / 2u], bf16_bits(v) << shift);
}
