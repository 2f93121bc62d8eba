// Part of the cross-entropy module (see common.wgsl and `source` in
// src/ops/cross_entropy/pipelines.rs).
//
// ---------------------------------------------------------------- workgroup reductions
//
// `workgroup_merge` and `workgroup_sum` come from a piece of their own,
// appended when the module is assembled (`source` in
// src/ops/cross_entropy/pipelines.rs): `workgroup_reductions.wgsl` (fixed trees through
// workgroup memory) or, where the device has SUBGROUP,
// `subgroup_reductions.wgsl` (a shuffle butterfly over a
// workgroup that is one subgroup): the same two functions, no barriers.

// ---------------------------------------------------------------- rows_wide


@compute @workgroup_size(WIDE_WG)
fn rows_wide(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = p.row_offset + flat_workgroup(wid, nwg);
    if (row >= p.row_end) {
        return;
    }
    let base = chunk_base(row);
    // Pass 1: per-invocation partials, then a fixed tree merge.
    let total = workgroup_merge(lid, scan_span(lid, base, 0u, p.classes));
    let plan = plan_row(row, total);
    // Pass 2: the gradient, written once, and the class sum of the loss. The
    // target logit is picked up on the way (its invocation adds it, the
    // others add 0): read before it is overwritten, even in place, with no
    // extra read and no barrier.
    let sums = workgroup_sum(lid, grad_span(plan, lid, base, 0u, p.classes));
    if (lid == 0u) {
        finish_row(plan, row, sums.y, total, sums.x);
    }
}

// Pass 1 over classes [c0, c1) of the row whose class 0 is at `base` (class c
// at base + c * inner), scalar loads, the span's two halves side by side
// (two memory streams, see the vec4 kernels): this invocation's partial.
fn scan_span(lid: u32, base: u32, c0: u32, c1: u32) -> Partial {
    let half = (select(0u, c1 - c0, c1 > c0) + 1u) / 2u;
    var part = empty_partial();
    for (var c = c0 + lid; c < c0 + half; c += WIDE_WG) {
        let c2 = min(c + half, c1 - 1u);
        let xa = load_input(base + c * p.inner);
        let xb = load_input(base + c2 * p.inner);
        part = update(part, c, base + c * p.inner, xa);
        if (c + half < c1) {
            part = update(part, c2, base + c2 * p.inner, xb);
        }
    }
    return part;
}

// Pass 2 over classes [c0, c1), walked as scan_span: writes the gradient and
// returns this invocation's (sum of loss terms, input at the target class or 0).
fn grad_span(plan: RowPlan, lid: u32, base: u32, c0: u32, c1: u32) -> vec2<f32> {
    let half = (select(0u, c1 - c0, c1 > c0) + 1u) / 2u;
    var acc = vec2<f32>(0.0);
    for (var c = c0 + lid; c < c0 + half; c += WIDE_WG) {
        let c2 = min(c + half, c1 - 1u);
        let xa = load_input(base + c * p.inner);
        let xb = load_input(base + c2 * p.inner);
        acc += scalar_pass2(plan, c, base + c * p.inner, xa);
        if (c + half < c1) {
            acc += scalar_pass2(plan, c2, base + c2 * p.inner, xb);
        }
    }
    return acc;
}
