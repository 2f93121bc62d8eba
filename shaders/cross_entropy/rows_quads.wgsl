// Part of the cross-entropy module (see common.wgsl and `source` in
// src/ops/cross_entropy/pipelines.rs).
//
// ---------------------------------------------------------------- rows_wide_quads
//
// `rows_wide_mixed` read and written through the scalar views (`input`,
// `grad`) instead of the vec4 ones: the same walk (the row's up to 3 head
// elements, its whole vec4s as two streams, its up to 3 tail elements), the
// same `update4`, `grad_quad` and sums in the same order, so the same bits.
// The host runs it where the caller's buffers end inside the vec4 that holds
// the tensor's last element (a vec4 view cannot reach that element), so
// that a result never depends on how far a buffer reaches past its tensor.
// Scalar stores do not overlap between rows, so each row writes its own
// head and tail elements (no `mixed_seams`).

// Four scalars read as the vec4 j of the vec4 view would hold them.
fn scalar_quad(j: u32) -> vec4<f32> {
    let i = 4u * j;
    return vec4<f32>(load_input(i), load_input(i + 1u), load_input(i + 2u), load_input(i + 3u));
}

@compute @workgroup_size(WIDE_WG)
fn rows_wide_quads(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = p.row_offset + flat_workgroup(wid, nwg);
    if (row >= p.row_end) {
        return;
    }
    let base = chunk_base(row);
    // As in rows_wide_mixed: [0, head) and [tail, classes) in shared vec4s.
    let at = mixed_row(base);
    let head = at.x;
    let quads = at.y;
    let tail = at.z;
    let q0 = at.w;
    let half = (quads + 1u) / 2u;
    var part = empty_partial();
    if (lid < head) {
        part = update(part, lid, base + lid, load_input(base + lid));
    }
    for (var j = lid; j < half; j += WIDE_WG) {
        let j2 = min(j + half, quads - 1u);
        let va = scalar_quad(q0 + j);
        let vb = scalar_quad(q0 + j2);
        part = quad_scan_step(part, base, head, j, j2, j + half < quads, va, vb);
    }
    if (lid < p.classes - tail) {
        let c = tail + lid;
        part = update(part, c, base + c, load_input(base + c));
    }
    let total = workgroup_merge(lid, part);
    let plan = plan_row(row, total);
    var acc = vec2<f32>(0.0);
    if (lid < head) {
        acc += scalar_pass2(plan, lid, base + lid, load_input(base + lid));
    }
    for (var j = lid; j < half; j += WIDE_WG) {
        let j2 = min(j + half, quads - 1u);
        let va = scalar_quad(q0 + j);
        let vb = scalar_quad(q0 + j2);
        acc += scalar_quad_pass2(plan, q0 + j, head + 4u * j, va);
        if (j + half < quads) {
            acc += scalar_quad_pass2(plan, q0 + j2, head + 4u * j2, vb);
        }
    }
    if (lid < p.classes - tail) {
        let c = tail + lid;
        acc += scalar_pass2(plan, c, base + c, load_input(base + c));
    }
    let sums = workgroup_sum(lid, acc);
    if (lid == 0u) {
        finish_row(plan, row, sums.y, total, sums.x);
    }
}

// quad_pass2 through the scalar view: the same gradient, four stores (no
// loop: Mesa counts a nested loop's trips in its bound).
fn scalar_quad_pass2(plan: RowPlan, j: u32, c: u32, v: vec4<f32>) -> vec2<f32> {
    if (WRITE_GRAD) {
        let g = grad_quad(plan, c, 4u * j, v);
        let i = 4u * j;
        grad_store(i, g.x);
        grad_store(i + 1u, g.y);
        grad_store(i + 2u, g.z);
        grad_store(i + 3u, g.w);
    }
    return quad_sums(plan, j, c, v);
}
