// Part of the cross-entropy module (see common.wgsl and `source` in
// src/ops/cross_entropy/pipelines.rs).
//
// ---------------------------------------------------------------- rows_narrow

@compute @workgroup_size(64)
fn rows_narrow(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = p.row_offset + flat_workgroup(wid, nwg) * NARROW_WG;
    var loss = 0.0;
    if (first + lid < p.row_end) {
        loss = rows_narrow_row(first + lid);
    }
    narrow_tiles(lid, first, loss);
}

// One row of rows_narrow; its loss term.
fn rows_narrow_row(row: u32) -> f32 {
    let base = chunk_base(row);
    let stride = p.inner;
    var total = empty_partial();
    var c = 0u;
    for (; c + 3u < p.classes; c += 4u) {
        let cs = vec4<u32>(c) + vec4<u32>(0u, 1u, 2u, 3u);
        total = gather4(total, cs, vec4<u32>(base) + cs * stride);
    }
    for (; c < p.classes; c++) {
        total = gather(total, c, base + c * stride);
    }
    let plan = plan_row(row, total);
    let x_t = load_input(base + plan.target_class * stride);
    var acc = 0.0;
    for (var c0 = 0u; c0 < p.classes; c0 += SUM_BLOCK) {
        var block = 0.0;
        for (var c = c0; c < min(c0 + SUM_BLOCK, p.classes); c++) {
            let idx = base + c * stride;
            let x = load_input(idx);
            block += loss_term(plan, c, idx, x);
            if (WRITE_GRAD) {
                grad_store(idx, grad_value(plan, c, idx, x));
            }
        }
        acc += block;
    }
    return finish_row(plan, row, x_t, total, acc);
}
