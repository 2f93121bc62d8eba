// Part of the cross-entropy module (see common.wgsl and `source` in
// src/ops/cross_entropy/pipelines.rs).
//
// ---------------------------------------------------------------- rows_team
//
// The GPU kernels for rows of inner == 1 (`RowStrategy::Team`/`Team4` in
// src/ops/cross_entropy/strategy.rs): a team per row, as the shared teams
// piece (shaders/lib/teams.wgsl) describes, with TEAM, TEAM_WG, TEAM_HELD
// (each lane's held elements, or vec4s for rows_team4), TEAM_HELD_MAX and the
// sums' tree `team_sum`. Short rows share a workgroup, long rows get
// TEAM = TEAM_WG invocations; rows of up to TEAM_WG * TEAM_HELD_MAX classes
// are held in registers between the passes. One stream per lane: a GPU keeps
// its loads in flight across lanes, not across a lane's two halves (the
// software adapters' kernels in rows_vec4.wgsl walk two).

var<workgroup> team_parts: array<Partial, TEAM_WG>;

// The merge of the team's partials, the lower lane's first at every step;
// every lane gets the total. Call from uniform control flow. A team's lanes
// lie `apart` invocations apart (1, or a map team's pixels per workgroup).
fn team_merge(lid: u32, lane: u32, apart: u32, part: Partial) -> Partial {
    team_parts[lid] = part;
    workgroupBarrier();
    for (var off = TEAM / 2u; off > 0u; off >>= 1u) {
        if (lane < off) {
            team_parts[lid] = merge(team_parts[lid], team_parts[lid + off * apart]);
        }
        workgroupBarrier();
    }
    return team_parts[lid - lane * apart];
}

// An invocation's place in its team: its lane, its team's row, whether that
// row exists (the spare teams of the last workgroup have none but still take
// part in the barriers) and where the row starts (a real row's start for a
// spare team, which reads nothing).
struct TeamLane {
    lane: u32,
    row: u32,
    live: bool,
    base: u32,
}

fn team_lane(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> TeamLane {
    let row = p.row_offset + flat_workgroup(wid, nwg) * (TEAM_WG / TEAM) + lid / TEAM;
    let live = row < p.row_end;
    return TeamLane(lid % TEAM, row, live, chunk_base(select(p.row_offset, row, live)));
}

// With TILE_LOSSES (teams of at most 4 lanes: a tile or more of rows per
// workgroup), the workgroup's tile sums from each team's loss term.
fn team_tiles(lid: u32, t: TeamLane, loss: f32) {
    if (TILE_LOSSES) {
        if (t.lane == 0u) {
            tile_terms[lid / TEAM] = loss;
        }
        let rows = TEAM_WG / TEAM;
        store_tiles(lid, TEAM_WG, t.row - lid / TEAM, rows);
    }
}

// A team per row, scalar access: any C.
@compute @workgroup_size(TEAM_WG)
fn rows_team(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = team_lane(wid, nwg, lid);
    let classes = select(0u, p.classes, t.live);
    var part = empty_partial();
    var xs: array<f32, TEAM_HELD_MAX>;
    if (TEAM_HELD > 0u) {
        for (var k = 0u; k < TEAM_HELD; k++) {
            let c = t.lane + k * TEAM;
            if (c < classes) {
                xs[k] = load_input(t.base + c);
                part = update(part, c, t.base + c, xs[k]);
            }
        }
    } else {
        for (var c = t.lane; c < classes; c += TEAM) {
            part = update(part, c, t.base + c, load_input(t.base + c));
        }
    }
    let total = team_merge(lid, t.lane, 1u, part);
    var plan: RowPlan;
    var acc = vec2<f32>(0.0);
    if (t.live) {
        plan = plan_row(t.row, total);
        // The target logit is picked up on the way, as in rows_wide.
        if (TEAM_HELD > 0u) {
            for (var k = 0u; k < TEAM_HELD; k++) {
                let c = t.lane + k * TEAM;
                if (c < classes) {
                    acc += scalar_pass2(plan, c, t.base + c, xs[k]);
                }
            }
        } else {
            for (var c = t.lane; c < classes; c += TEAM) {
                acc += scalar_pass2(plan, c, t.base + c, load_input(t.base + c));
            }
        }
    }
    let sums = team_sum(lid, t.lane, acc);
    var loss = 0.0;
    if (t.live && t.lane == 0u) {
        loss = finish_row(plan, t.row, sums.y, total, sums.x);
    }
    team_tiles(lid, t, loss);
}

// A team per row, vec4 access: C % 4 == 0.
@compute @workgroup_size(TEAM_WG)
fn rows_team4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = team_lane(wid, nwg, lid);
    let quads = select(0u, p.classes / 4u, t.live);
    let base4 = t.base / 4u;
    var part = empty_partial();
    var xs: array<vec4<f32>, TEAM_HELD_MAX / 4u>;
    if (TEAM_HELD > 0u) {
        for (var k = 0u; k < TEAM_HELD; k++) {
            let j = t.lane + k * TEAM;
            if (j < quads) {
                let cs = quad_classes(4u * j);
                xs[k] = load_input4(base4 + j);
                part = update4(part, cs, vec4<u32>(t.base) + cs, xs[k]);
            }
        }
    } else {
        for (var j = t.lane; j < quads; j += TEAM) {
            let cs = quad_classes(4u * j);
            part = update4(part, cs, vec4<u32>(t.base) + cs, load_input4(base4 + j));
        }
    }
    let total = team_merge(lid, t.lane, 1u, part);
    var plan: RowPlan;
    var acc = vec2<f32>(0.0);
    if (t.live) {
        plan = plan_row(t.row, total);
        if (TEAM_HELD > 0u) {
            for (var k = 0u; k < TEAM_HELD; k++) {
                let j = t.lane + k * TEAM;
                if (j < quads) {
                    acc += quad_pass2(plan, base4 + j, 4u * j, xs[k]);
                }
            }
        } else {
            for (var j = t.lane; j < quads; j += TEAM) {
                acc += quad_pass2(plan, base4 + j, 4u * j, load_input4(base4 + j));
            }
        }
    }
    let sums = team_sum(lid, t.lane, acc);
    var loss = 0.0;
    if (t.live && t.lane == 0u) {
        loss = finish_row(plan, t.row, sums.y, total, sums.x);
    }
    team_tiles(lid, t, loss);
}

// ---------------------------------------------------------------- rows_map_team
//
// GPUs, maps (inner > 1) too long for an invocation per pixel
// (`RowStrategy::MapTeam`): a team of TEAM lanes per pixel, TEAM_WG / TEAM
// neighbouring pixels per workgroup, pixel fastest. Lane `lane` of each pixel
// walks classes lane, lane + TEAM, …, so the pixels' invocations that share
// a lane read neighbouring elements of each class plane: coalesced, where a
// workgroup per pixel would read addresses `inner` apart. The row is read
// twice (these rows are thousands of classes long: too long to hold).

fn map_lane(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> TeamLane {
    let pixels = TEAM_WG / TEAM;
    let row = p.row_offset + flat_workgroup(wid, nwg) * pixels + lid % pixels;
    let live = row < p.row_end;
    return TeamLane(lid / pixels, row, live, chunk_base(select(p.row_offset, row, live)));
}

@compute @workgroup_size(TEAM_WG)
fn rows_map_team(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = map_lane(wid, nwg, lid);
    let apart = TEAM_WG / TEAM;
    let classes = select(0u, p.classes, t.live);
    var part = empty_partial();
    for (var c = t.lane; c < classes; c += TEAM) {
        let idx = t.base + c * p.inner;
        part = update(part, c, idx, load_input(idx));
    }
    let total = team_merge(lid, t.lane, apart, part);
    var plan: RowPlan;
    var acc = vec2<f32>(0.0);
    if (t.live) {
        plan = plan_row(t.row, total);
        for (var c = t.lane; c < classes; c += TEAM) {
            let idx = t.base + c * p.inner;
            acc += scalar_pass2(plan, c, idx, load_input(idx));
        }
    }
    let sums = team_sum_apart(lid, t.lane, apart, acc);
    if (t.live && t.lane == 0u) {
        finish_row(plan, t.row, sums.y, total, sums.x);
    }
}
