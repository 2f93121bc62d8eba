// A plain copy over the same bytes a fused loss moves (read the logits once,
// write the gradient once): the bandwidth reference of `xent bench`.
// Each invocation copies one vec4; the grid spills into y past 65 535 groups.

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(64)
fn copy_vec4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (i < arrayLength(&dst)) {
        dst[i] = src[i];
    }
}
