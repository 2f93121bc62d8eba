// Matrix products: out (m x n, f32) = A (m x k) . B (k x n) [+ bias] [+ out],
// tiled through workgroup memory, f32 accumulation in a fixed order (k
// ascending, one tile of TILE_K at a time), no atomics: the same inputs give
// the same bits on the same adapter.
//
// The module (`source` in src/ops/matmul/pipelines.rs) is this body and
// the storage the core declares (src/core/storage.rs) for A (lhs_load,
// lhs_load4) and for B and the bias (rhs_load, rhs_load4, bias_load), each
// f32, f16 or bf16. A and B are strided views: A(i, l) = lhs[a_offset + i*a_sm + l*a_sk],
// B(l, j) = rhs[b_offset + l*b_sk + j*b_sn], one stride of each 1 (the
// contiguous axis, A_K_CONTIG / B_K_CONTIG), so h.W^T, g.W and g^T.h are the
// same kernel. Each invocation loads runs of 4 neighbours along the
// contiguous axis (one vec4 load where A_VEC / B_VEC say the runs are
// aligned), so a workgroup's loads cover contiguous memory.

override A_K_CONTIG: bool = true;
override B_K_CONTIG: bool = true;
override A_VEC: bool = false;
override B_VEC: bool = false;
override HAS_BIAS: bool = false;
// The uniform `mp` and `out` come from params.wgsl; lhs (binding 1), rhs
// (2) and bias (4) from the operand pieces.

// The output tile is TILE x TILE, each of the 256 invocations owning a 4 x 4
// block; the k axis advances TILE_K at a time.
const TILE: u32 = 64u;
const TILE_K: u32 = 16u;
// [l][i] and [l][j]: an invocation reads 4 neighbours of each per step.
var<workgroup> a_tile: array<f32, 1024>;
var<workgroup> b_tile: array<f32, 1024>;

// FILTER: whether the workgroup keeps the step whose A values this
// invocation loaded as `va` (uniform: every invocation gets the verdict).
fn keep_step_of(lid: u32, va: vec4<f32>, threshold: u32) -> bool {
    if (kept4(va, threshold)) {
        atomicOr(&any_kept, 1u);
    }
    workgroupBarrier();
    if (lid == 0u) {
        keep_step = atomicLoad(&any_kept);
        atomicStore(&any_kept, 0u);
    }
    return workgroupUniformLoad(&keep_step) != 0u;
}

// `valid` (0..=4) neighbours of A from flat index i; zeros past them.
fn a_run(i: u32, valid: u32) -> vec4<f32> {
    if (A_VEC && valid == 4u) {
        return lhs_load4(i / 4u);
    }
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < valid; j++) {
        v[j] = lhs_load(i + j);
    }
    return v;
}

fn b_run(i: u32, valid: u32) -> vec4<f32> {
    if (B_VEC && valid == 4u) {
        return rhs_load4(i / 4u);
    }
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < valid; j++) {
        v[j] = rhs_load(i + j);
    }
    return v;
}

// Tile rows [m0, m0 + TILE) x k [k0, k0 + TILE_K) of A into a_tile; returns
// the invocation's 4 values of it.
fn load_a(lid: u32, m0: u32, k0: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (A_K_CONTIG) {
        let i = lid / 4u;
        let l = (lid % 4u) * 4u;
        if (m0 + i < mp.m && k0 + l < slice_len) {
            v = a_run(a_base + (m0 + i) * mp.a_sm + k0 + l, min(4u, slice_len - k0 - l));
        }
        for (var j = 0u; j < 4u; j++) {
            a_tile[(l + j) * TILE + i] = v[j];
        }
    } else {
        let l = lid / 16u;
        let i = (lid % 16u) * 4u;
        if (m0 + i < mp.m && k0 + l < slice_len) {
            v = a_run(a_base + (k0 + l) * mp.a_sk + m0 + i, min(4u, mp.m - m0 - i));
        }
        for (var j = 0u; j < 4u; j++) {
            a_tile[l * TILE + i + j] = v[j];
        }
    }
    return v;
}

fn load_b(lid: u32, n0: u32, k0: u32) {
    var v = vec4<f32>(0.0);
    if (B_K_CONTIG) {
        let j0 = lid / 4u;
        let l = (lid % 4u) * 4u;
        if (n0 + j0 < mp.n && k0 + l < slice_len) {
            v = b_run(b_base + (n0 + j0) * mp.b_sn + k0 + l, min(4u, slice_len - k0 - l));
        }
        for (var j = 0u; j < 4u; j++) {
            b_tile[(l + j) * TILE + j0] = v[j];
        }
    } else {
        let l = lid / 16u;
        let j0 = (lid % 16u) * 4u;
        if (n0 + j0 < mp.n && k0 + l < slice_len) {
            v = b_run(b_base + (k0 + l) * mp.b_sk + n0 + j0, min(4u, mp.n - n0 - j0));
        }
        for (var j = 0u; j < 4u; j++) {
            b_tile[l * TILE + j0 + j] = v[j];
        }
    }
}

// Workgroup (x, y) computes output columns [TILE x, ...) of rows [TILE y, ...).
// ceil(k / TILE_K) trips of at most 32 loop iterations each (nested ones
// included): the host gives a dispatch at most K_PER_DISPATCH of k
// (src/ops/matmul/record.rs), within the loop bound.
@compute @workgroup_size(256)
fn matmul(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let m0 = enter_slice(wid.y, TILE) * TILE;
    let n0 = wid.x * TILE;
    let tx = lid % 16u;
    let ty = lid / 16u;
    var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    var threshold = 0u;
    if (FILTER) {
        threshold = filter_threshold();
        // Workgroup memory is not reliably zero on every adapter.
        if (lid == 0u) {
            atomicStore(&any_kept, 0u);
        }
        workgroupBarrier();
    }
    for (var k0 = 0u; k0 < slice_len; k0 += TILE_K) {
        let va = load_a(lid, m0, k0);
        var keep = true;
        if (FILTER) {
            keep = keep_step_of(lid, va, threshold);
        }
        if (keep) {
            load_b(lid, n0, k0);
        }
        workgroupBarrier();
        if (keep) {
            for (var l = 0u; l < TILE_K; l++) {
                let ai = l * TILE + ty * 4u;
                let bj = l * TILE + tx * 4u;
                let b = vec4<f32>(b_tile[bj], b_tile[bj + 1u], b_tile[bj + 2u], b_tile[bj + 3u]);
                acc[0] += a_tile[ai] * b;
                acc[1] += a_tile[ai + 1u] * b;
                acc[2] += a_tile[ai + 2u] * b;
                acc[3] += a_tile[ai + 3u] * b;
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let row = m0 + ty * 4u + i;
        for (var j = 0u; j < 4u; j++) {
            let col = n0 + tx * 4u + j;
            if (row < mp.m && col < mp.n) {
                write_out(row, col, acc[i][j]);
            }
        }
    }
}

// The software adapters' product (`ProductKernel::Blocks`): each of a
// workgroup's 64 invocations owns an 8 x 8 block of the output (the
// workgroup 16 blocks across, 4 down: 128 columns x 32 rows), and reads its
// operands straight from memory, 4 steps of k at a time: eight runs of 4
// neighbours of A and eight of B along their contiguous axes (one vec4 load
// each where aligned), 256 multiply-adds as four 4 x 4 matrix products. On
// llvmpipe a load costs about as much as dozens of multiply-adds (a gather
// per lane), and a workgroup-memory read is such a gather too, so this
// ratio of loads to work is what sets its speed. No loop runs inside the k loop, and no array
// is indexed by a variable: ceil(k / 4) trips, at most
// K_PER_DISPATCH_BLOCKS / 4 per dispatch.

// `valid` (0..=4) neighbours of A from flat index i, zeros past them,
// without a loop.
fn a_quad(i: u32, valid: u32) -> vec4<f32> {
    if (A_VEC && valid == 4u) {
        return lhs_load4(i / 4u);
    }
    let last = i + max(valid, 1u) - 1u;
    let v = vec4<f32>(lhs_load(i), lhs_load(min(i + 1u, last)), lhs_load(min(i + 2u, last)),
        lhs_load(min(i + 3u, last)));
    return select(vec4<f32>(0.0), v, vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(valid));
}

fn b_quad(i: u32, valid: u32) -> vec4<f32> {
    if (B_VEC && valid == 4u) {
        return rhs_load4(i / 4u);
    }
    let last = i + max(valid, 1u) - 1u;
    let v = vec4<f32>(rhs_load(i), rhs_load(min(i + 1u, last)), rhs_load(min(i + 2u, last)),
        rhs_load(min(i + 3u, last)));
    return select(vec4<f32>(0.0), v, vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(valid));
}

// A(i + r, l + t) for r, t < 4 as a matrix whose column t is A(i.., l + t),
// zeros outside A.
fn a_block(i: u32, l: u32) -> mat4x4<f32> {
    var q: array<vec4<f32>, 4>;
    let kv = min(4u, slice_len - l);
    if (A_K_CONTIG) {
        // Rows of the block, transposed below.
        // Rows past m read row m - 1 and count as zeros.
        let rows = min(vec4<u32>(i) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(mp.m - 1u));
        let base = a_base + l + rows * mp.a_sm;
        q[0] = select(vec4<f32>(0.0), a_quad(base.x, kv), i < mp.m);
        q[1] = select(vec4<f32>(0.0), a_quad(base.y, kv), i + 1u < mp.m);
        q[2] = select(vec4<f32>(0.0), a_quad(base.z, kv), i + 2u < mp.m);
        q[3] = select(vec4<f32>(0.0), a_quad(base.w, kv), i + 3u < mp.m);
        return transpose(mat4x4<f32>(q[0], q[1], q[2], q[3]));
    }
    let mv = min(4u, mp.m - min(i, mp.m));
    let base = a_base + l * mp.a_sk + min(i, mp.m - 1u);
    q[0] = a_quad(base, mv);
    q[1] = select(vec4<f32>(0.0), a_quad(base + mp.a_sk, mv), 1u < kv);
    q[2] = select(vec4<f32>(0.0), a_quad(base + 2u * mp.a_sk, mv), 2u < kv);
    q[3] = select(vec4<f32>(0.0), a_quad(base + 3u * mp.a_sk, mv), 3u < kv);
    return mat4x4<f32>(q[0], q[1], q[2], q[3]);
}

// B(l + t, j + c) for t, c < 4 as a matrix whose column c is B(l.., j + c).
fn b_block(l: u32, j: u32) -> mat4x4<f32> {
    var q: array<vec4<f32>, 4>;
    let kv = min(4u, slice_len - l);
    if (B_K_CONTIG) {
        let cols = min(vec4<u32>(j) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(mp.n - 1u));
        let base = b_base + l + cols * mp.b_sn;
        q[0] = select(vec4<f32>(0.0), b_quad(base.x, kv), j < mp.n);
        q[1] = select(vec4<f32>(0.0), b_quad(base.y, kv), j + 1u < mp.n);
        q[2] = select(vec4<f32>(0.0), b_quad(base.z, kv), j + 2u < mp.n);
        q[3] = select(vec4<f32>(0.0), b_quad(base.w, kv), j + 3u < mp.n);
        return mat4x4<f32>(q[0], q[1], q[2], q[3]);
    }
    // Rows of the block, transposed below.
    let nv = min(4u, mp.n - min(j, mp.n));
    let base = b_base + l * mp.b_sk + min(j, mp.n - 1u);
    q[0] = b_quad(base, nv);
    q[1] = select(vec4<f32>(0.0), b_quad(base + mp.b_sk, nv), 1u < kv);
    q[2] = select(vec4<f32>(0.0), b_quad(base + 2u * mp.b_sk, nv), 2u < kv);
    q[3] = select(vec4<f32>(0.0), b_quad(base + 3u * mp.b_sk, nv), 3u < kv);
    return transpose(mat4x4<f32>(q[0], q[1], q[2], q[3]));
}

@compute @workgroup_size(64)
fn matmul_blocks(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let j = wid.x * 128u + (lid % 16u) * 8u;
    let i = enter_slice(wid.y, 32u) * 32u + (lid / 16u) * 8u;
    // An 8 x 8 block as four 4 x 4: acc_rc holds rows i + 4r.., columns
    // j + 4c.. (column t of each: one output column).
    var acc00 = mat4x4<f32>();
    var acc01 = mat4x4<f32>();
    var acc10 = mat4x4<f32>();
    var acc11 = mat4x4<f32>();
    var threshold = 0u;
    if (FILTER) {
        threshold = filter_threshold();
    }
    for (var l = 0u; l < slice_len; l += 4u) {
        let a0 = a_block(i, l);
        let a1 = a_block(i + 4u, l);
        // FILTER: this invocation's 8 x 4 of A all below the threshold.
        if (FILTER && !kept_block(a0, threshold) && !kept_block(a1, threshold)) {
            continue;
        }
        let b0 = b_block(l, j);
        let b1 = b_block(l, j + 4u);
        acc00 += a0 * b0;
        acc01 += a0 * b1;
        acc10 += a1 * b0;
        acc11 += a1 * b1;
    }
    store_block(i, j, acc00);
    store_block(i, j + 4u, acc01);
    store_block(i + 4u, j, acc10);
    store_block(i + 4u, j + 4u, acc11);
}

// Whether any of a 4 x 4 block is not below `threshold` in magnitude.
fn kept_block(a: mat4x4<f32>, threshold: u32) -> bool {
    return kept4(a[0], threshold) || kept4(a[1], threshold) || kept4(a[2], threshold)
        || kept4(a[3], threshold);
}

// A 4 x 4 block of the output at rows i.., columns j.. (those inside it).
fn store_block(i: u32, j: u32, acc: mat4x4<f32>) {
    for (var c = 0u; c < 4u; c++) {
        if (j + c < mp.n) {
            store_out(i, j + c, acc[c]);
        }
    }
}

// Rows i .. i + 3 (those below m) of output column j.
fn store_out(i: u32, j: u32, v: vec4<f32>) {
    for (var r = 0u; r < 4u; r++) {
        let row = i + r;
        if (row < mp.m) {
            write_out(row, j, v[r]);
        }
    }
}

// out[c_offset + j] (+)= sum over rows i < m of A(i, j), i ascending: the
// bias's gradient (A^T . 1), one invocation per column j < n, neighbouring
// invocations reading neighbouring columns. m trips (the host bounds m).
@compute @workgroup_size(64)
fn column_sums(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let j = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (j >= mp.n) {
        return;
    }
    var s = 0.0;
    for (var i = 0u; i < mp.m; i++) {
        s += lhs_load(mp.a_offset + i * mp.a_sm + j);
    }
    let idx = mp.c_offset + j;
    if (mp.accumulate != 0u) {
        s = out[idx] + s;
    }
    out[idx] = s;
}
