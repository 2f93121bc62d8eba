// A plain copy over the same bytes a fused loss moves (read the logits once,
// write the gradient once): the bandwidth reference of `xent bench`.
// A fixed grid of invocations walks the buffer in vec4 steps (grid-stride),
// so the copy is not dominated by workgroup launches.

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(64)
fn copy_vec4(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let stride = nwg.x * 64u;
    let n = arrayLength(&dst);
    for (var i = gid.x; i < n; i += stride) {
        dst[i] = src[i];
    }
}
