// Part of the softmax module (see kernels.wgsl and `source` in
// src/ops/softmax/pipelines.rs): the GPU kernels for rows of inner = 1, a
// team of TEAM neighbouring invocations per row (shaders/lib/teams.wgsl).
//
// ---------------------------------------------------------------- teams

// An invocation's lane, its team's row, whether that row exists (the spare
// teams of the last workgroup have none but still take part in the
// barriers), the classes it walks (0 for a spare team) and where its row
// starts (inner = 1).
struct TeamRow {
    lane: u32,
    live: bool,
    classes: u32,
    base: u32,
}

fn team_row(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> TeamRow {
    let row = flat_workgroup(wid, nwg) * (TEAM_WG / TEAM) + lid / TEAM;
    let live = row < p.rows;
    let base = select(0u, row * p.classes, live);
    return TeamRow(lid % TEAM, live, select(0u, p.classes, live), base);
}

// Lane `lane` walks classes lane, lane + TEAM, …: a SIMD group's loads of one
// step cover contiguous memory. Held rows keep their TEAM_HELD values per
// lane in registers between the passes (a constant trip count); the others
// read the row again, in the same order.
@compute @workgroup_size(TEAM_WG)
fn softmax_team(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = team_row(wid, nwg, lid);
    var ms = vec2<f32>(LOWEST, 0.0);
    var xs: array<f32, TEAM_HELD_MAX>;
    if (TEAM_HELD > 0u) {
        for (var k = 0u; k < TEAM_HELD; k++) {
            let c = t.lane + k * TEAM;
            if (c < t.classes) {
                xs[k] = x_load(t.base + c);
                ms = ms_online(ms, xs[k]);
            }
        }
    } else {
        for (var c = t.lane; c < t.classes; c += TEAM) {
            ms = ms_online(ms, x_load(t.base + c));
        }
    }
    let total = team_ms(lid, t.lane, ms);
    let log_s = log(total.y);
    if (TEAM_HELD > 0u) {
        for (var k = 0u; k < TEAM_HELD; k++) {
            let c = t.lane + k * TEAM;
            if (c < t.classes) {
                y_store(t.base + c, output(xs[k], total, log_s));
            }
        }
    } else {
        for (var c = t.lane; c < t.classes; c += TEAM) {
            y_store(t.base + c, output(x_load(t.base + c), total, log_s));
        }
    }
}

// The backward holds two values per class (y and dy): TEAM_HELD of at most
// TEAM_HELD_MAX / 2 (`SoftmaxDirection::held_most` in src/ops/softmax/plan.rs),
// TEAM_HELD_MAX / 8 vec4s in backward_team4.
@compute @workgroup_size(TEAM_WG)
fn backward_team(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = team_row(wid, nwg, lid);
    var acc = 0.0;
    var ys: array<f32, TEAM_HELD_MAX / 2u>;
    var dys: array<f32, TEAM_HELD_MAX / 2u>;
    if (TEAM_HELD > 0u) {
        for (var k = 0u; k < TEAM_HELD; k++) {
            let c = t.lane + k * TEAM;
            if (c < t.classes) {
                ys[k] = x_load(t.base + c);
                dys[k] = dy_load(t.base + c);
                acc += term_of(ys[k], dys[k]);
            }
        }
    } else {
        for (var c = t.lane; c < t.classes; c += TEAM) {
            acc += backward_term(t.base + c);
        }
    }
    let total = team_sum(lid, t.lane, vec2<f32>(acc, 0.0)).x;
    if (TEAM_HELD > 0u) {
        for (var k = 0u; k < TEAM_HELD; k++) {
            let c = t.lane + k * TEAM;
            if (c < t.classes) {
                y_store(t.base + c, value_of(ys[k], dys[k], total));
            }
        }
    } else {
        for (var c = t.lane; c < t.classes; c += TEAM) {
            y_store(t.base + c, backward_value(t.base + c, total));
        }
    }
}

// The vec4 teams (C % 4 = 0): lane `lane` walks quads lane, lane + TEAM, …,
// each quad's classes in order; TEAM_HELD counts vec4s.
fn ms_online4(ms: vec2<f32>, v: vec4<f32>) -> vec2<f32> {
    return ms_online(ms_online(ms_online(ms_online(ms, v.x), v.y), v.z), v.w);
}

fn output4(v: vec4<f32>, ms: vec2<f32>, log_s: f32) -> vec4<f32> {
    return vec4<f32>(
        output(v.x, ms, log_s),
        output(v.y, ms, log_s),
        output(v.z, ms, log_s),
        output(v.w, ms, log_s),
    );
}

@compute @workgroup_size(TEAM_WG)
fn softmax_team4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = team_row(wid, nwg, lid);
    let quads = t.classes / 4u;
    let base4 = t.base / 4u;
    var ms = vec2<f32>(LOWEST, 0.0);
    var xs: array<vec4<f32>, TEAM_HELD_MAX / 4u>;
    if (TEAM_HELD > 0u) {
        for (var k = 0u; k < TEAM_HELD; k++) {
            let j = t.lane + k * TEAM;
            if (j < quads) {
                xs[k] = x_load4(base4 + j);
                ms = ms_online4(ms, xs[k]);
            }
        }
    } else {
        for (var j = t.lane; j < quads; j += TEAM) {
            ms = ms_online4(ms, x_load4(base4 + j));
        }
    }
    let total = team_ms(lid, t.lane, ms);
    let log_s = log(total.y);
    if (TEAM_HELD > 0u) {
        for (var k = 0u; k < TEAM_HELD; k++) {
            let j = t.lane + k * TEAM;
            if (j < quads) {
                y_store4(base4 + j, output4(xs[k], total, log_s));
            }
        }
    } else {
        for (var j = t.lane; j < quads; j += TEAM) {
            y_store4(base4 + j, output4(x_load4(base4 + j), total, log_s));
        }
    }
}

fn term_of4(y: vec4<f32>, dy: vec4<f32>) -> f32 {
    return ((term_of(y.x, dy.x) + term_of(y.y, dy.y)) + term_of(y.z, dy.z)) + term_of(y.w, dy.w);
}

fn value_of4(y: vec4<f32>, dy: vec4<f32>, total: f32) -> vec4<f32> {
    return vec4<f32>(
        value_of(y.x, dy.x, total),
        value_of(y.y, dy.y, total),
        value_of(y.z, dy.z, total),
        value_of(y.w, dy.w, total),
    );
}

@compute @workgroup_size(TEAM_WG)
fn backward_team4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = team_row(wid, nwg, lid);
    let quads = t.classes / 4u;
    let base4 = t.base / 4u;
    var acc = 0.0;
    var ys: array<vec4<f32>, TEAM_HELD_MAX / 8u>;
    var dys: array<vec4<f32>, TEAM_HELD_MAX / 8u>;
    if (TEAM_HELD > 0u) {
        for (var k = 0u; k < TEAM_HELD; k++) {
            let j = t.lane + k * TEAM;
            if (j < quads) {
                ys[k] = x_load4(base4 + j);
                dys[k] = dy_load4(base4 + j);
                acc += term_of4(ys[k], dys[k]);
            }
        }
    } else {
        for (var j = t.lane; j < quads; j += TEAM) {
            acc += term_of4(x_load4(base4 + j), dy_load4(base4 + j));
        }
    }
    let total = team_sum(lid, t.lane, vec2<f32>(acc, 0.0)).x;
    if (TEAM_HELD > 0u) {
        for (var k = 0u; k < TEAM_HELD; k++) {
            let j = t.lane + k * TEAM;
            if (j < quads) {
                y_store4(base4 + j, value_of4(ys[k], dys[k], total));
            }
        }
    } else {
        for (var j = t.lane; j < quads; j += TEAM) {
            y_store4(base4 + j, value_of4(x_load4(base4 + j), dy_load4(base4 + j), total));
        }
    }
}

// ---------------------------------------------------------------- map teams
//
// GPUs, maps (inner > 1) too long for an invocation per pixel: TEAM lanes per
// pixel, TEAM_WG / TEAM neighbouring pixels per workgroup, pixel fastest, so
// the pixels' invocations that share a lane read neighbouring elements of
// each class plane (coalesced). The row is read twice (too long to hold).

// The pixel's lane, whether it exists, its classes (0 for none) and where
// its class 0 lies.
fn map_row(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> TeamRow {
    let pixels = TEAM_WG / TEAM;
    let row = flat_workgroup(wid, nwg) * pixels + lid % pixels;
    let live = row < p.rows;
    let base = element(select(0u, row, live), 0u);
    return TeamRow(lid / pixels, live, select(0u, p.classes, live), base);
}

@compute @workgroup_size(TEAM_WG)
fn softmax_map_team(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = map_row(wid, nwg, lid);
    var ms = vec2<f32>(LOWEST, 0.0);
    for (var c = t.lane; c < t.classes; c += TEAM) {
        ms = ms_online(ms, x_load(t.base + c * p.inner));
    }
    let total = team_ms_apart(lid, t.lane, TEAM_WG / TEAM, ms);
    let log_s = log(total.y);
    for (var c = t.lane; c < t.classes; c += TEAM) {
        let idx = t.base + c * p.inner;
        y_store(idx, output(x_load(idx), total, log_s));
    }
}

@compute @workgroup_size(TEAM_WG)
fn backward_map_team(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = map_row(wid, nwg, lid);
    var acc = 0.0;
    for (var c = t.lane; c < t.classes; c += TEAM) {
        acc += backward_term(t.base + c * p.inner);
    }
    let total = team_sum_apart(lid, t.lane, TEAM_WG / TEAM, vec2<f32>(acc, 0.0)).x;
    for (var c = t.lane; c < t.classes; c += TEAM) {
        let idx = t.base + c * p.inner;
        y_store(idx, backward_value(idx, total));
    }
}
