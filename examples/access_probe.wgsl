// Access-pattern probes for `examples/access_probe.rs`: copies and a minimal
// fused softmax cross-entropy row kernel over an N x C f32 matrix (C % 4 == 0),
// walked in different orders. Not used by the library.

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> stats: array<vec4<f32>>;

// vec4s per row
override QUADS: u32 = 1024u;
// invocations per row (the subgroup size for the fused kernels)
override WG: u32 = 8u;
// parts of the row walked side by side (divides QUADS)
override U: u32 = 1u;

// Grid-stride copy: the shape of xent's bandwidth reference.
@compute @workgroup_size(64)
fn copy_flat(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let stride = nwg.x * 64u;
    let n = arrayLength(&dst);
    for (var i = gid.x; i < n; i += stride) {
        dst[i] = src[i];
    }
}

// A workgroup of WG per row, the row's U parts walked side by side.
@compute @workgroup_size(WG)
fn copy_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = wid.x * QUADS;
    let span = QUADS / U;
    for (var j = lid; j < span; j += WG) {
        for (var u = 0u; u < U; u++) {
            dst[b + j + u * span] = src[b + j + u * span];
        }
    }
}

// The per-pixel layout (C planes of QUADS vec4s, one image per row of
// workgroups): an invocation per four pixels copies their C values, one from
// each plane (the access order of xent's rows_pixels4 kernels). With U > 1 it
// loads all C before storing any (the fixed-C kernel's order).
override PLANES: u32 = 21u;
@compute @workgroup_size(64)
fn copy_planes(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = gid.x;
    if (q >= QUADS) {
        return;
    }
    let b = gid.y * PLANES * QUADS + q;
    if (U > 1u) {
        var xs: array<vec4<f32>, 32>;
        for (var c = 0u; c < PLANES; c++) {
            xs[c] = src[b + c * QUADS];
        }
        for (var c = 0u; c < PLANES; c++) {
            dst[b + c * QUADS] = xs[c];
        }
    } else {
        for (var c = 0u; c < PLANES; c++) {
            dst[b + c * QUADS] = src[b + c * QUADS];
        }
    }
}

// A minimal fused kernel in the per-pixel layout: copy_planes (all loads
// first) with each pixel's softmax, and the gradient of target class 3.
@compute @workgroup_size(64)
fn fused_planes(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = gid.x;
    if (q >= QUADS) {
        return;
    }
    let b = gid.y * PLANES * QUADS + q;
    var xs: array<vec4<f32>, 32>;
    var m = vec4<f32>(-3.0e38);
    for (var c = 0u; c < PLANES; c++) {
        xs[c] = src[b + c * QUADS];
        m = max(m, xs[c]);
    }
    var s = vec4<f32>(0.0);
    for (var c = 0u; c < PLANES; c++) {
        s += exp(xs[c] - m);
    }
    let inv = 1.0 / s;
    for (var c = 0u; c < PLANES; c++) {
        dst[b + c * QUADS] = exp(xs[c] - m) * inv - select(vec4<f32>(0.0), vec4<f32>(1.0), c == 3u);
    }
}

// Everything below needs SUBGROUP (the probe drops it on devices without).
// FUSED KERNELS

struct Pair {
    m: f32,
    s: f32,
}

// Per-lane online (max, sum-exp) of each vec4 component.
struct Online {
    m: vec4<f32>,
    s: vec4<f32>,
}

fn online_start() -> Online {
    return Online(vec4<f32>(-3.0e38), vec4<f32>(0.0));
}

fn online_push(o: Online, v: vec4<f32>) -> Online {
    let m = max(o.m, v);
    return Online(m, o.s * exp(o.m - m) + exp(v - m));
}

// The row's (max, sum-exp) from every lane's `Online`, by shuffles.
fn row_stats(lid: u32, o: Online) -> Pair {
    var m = max(max(o.m.x, o.m.y), max(o.m.z, o.m.w));
    var s = dot(o.s, exp(o.m - vec4<f32>(m)));
    for (var k = 1u; k < WG; k <<= 1u) {
        let om = subgroupShuffleXor(m, k);
        let os = subgroupShuffleXor(s, k);
        let nm = max(m, om);
        s = s * exp(m - nm) + os * exp(om - nm);
        m = nm;
    }
    return Pair(m, s);
}

fn grad4(v: vec4<f32>, j: u32, st: Pair) -> vec4<f32> {
    let c = vec4<u32>(4u * j) + vec4<u32>(0u, 1u, 2u, 3u);
    return exp(v - st.m) / st.s - select(vec4<f32>(0.0), vec4<f32>(1.0), c == vec4<u32>(3u));
}

// Fused row: online (max, sum-exp) over the row, shuffles, then the gradient
// of target class 3; the row read twice, U parts side by side.
@compute @workgroup_size(WG)
fn fused_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = wid.x * QUADS;
    let span = QUADS / U;
    var o = online_start();
    for (var j = lid; j < span; j += WG) {
        for (var u = 0u; u < U; u++) {
            o = online_push(o, src[b + j + u * span]);
        }
    }
    let st = row_stats(lid, o);
    for (var j = lid; j < span; j += WG) {
        for (var u = 0u; u < U; u++) {
            let jj = j + u * span;
            dst[b + jj] = grad4(src[b + jj], jj, st);
        }
    }
}

// fused_rows (one stream) with pass 2 reading the row from workgroup memory.
var<workgroup> cache: array<vec4<f32>, 1024>;
@compute @workgroup_size(WG)
fn fused_cached(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = wid.x * QUADS;
    var o = online_start();
    for (var j = lid; j < QUADS; j += WG) {
        let v = src[b + j];
        cache[j] = v;
        o = online_push(o, v);
    }
    let st = row_stats(lid, o);
    for (var j = lid; j < QUADS; j += WG) {
        dst[b + j] = grad4(cache[j], j, st);
    }
}

// Two dispatches: the row statistics, then the gradient over (row, segment)
// workgroups of 64 that read them.
@compute @workgroup_size(WG)
fn stats_only(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = wid.x * QUADS;
    var o = online_start();
    for (var j = lid; j < QUADS; j += WG) {
        o = online_push(o, src[b + j]);
    }
    let st = row_stats(lid, o);
    if (lid == 0u) {
        stats[wid.x] = vec4<f32>(st.m, st.s, 0.0, 0.0);
    }
}

@compute @workgroup_size(64)
fn grad_segments(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.y;
    let v = stats[row];
    let st = Pair(v.x, v.y);
    for (var k = 0u; k < 4u; k++) {
        let j = (wid.x * 4u + k) * 64u + lid;
        if (j < QUADS) {
            dst[row * QUADS + j] = grad4(src[row * QUADS + j], j, st);
        }
    }
}
