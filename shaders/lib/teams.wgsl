// Teams: TEAM neighbouring invocations per row, TEAM_WG / TEAM rows per
// workgroup (src/core/teams.rs). A team's lanes read neighbouring elements
// of their row, so one load instruction of a GPU's SIMD group covers
// contiguous memory (coalesced), where an invocation per row would read
// addresses a row apart. A lane holds up to TEAM_HELD values of its row in
// registers between its passes, so a row is read from memory once.
//
// A map's team (`rows_map_team`, `softmax_map_team`) lays its lanes `apart`
// invocations apart instead, neighbouring pixels in neighbouring
// invocations, so its loads are coalesced across pixels.
//
// The team's merges are fixed trees through workgroup memory, segmented by
// team: bit-identical results, no assumption on how a device lays
// invocations out in subgroups (which a shuffle between a team's lanes would
// need: Vulkan does not promise that local_invocation_index maps onto
// subgroup lanes in order). Call them from uniform control flow, once per
// value read.

// Lanes per row: a power of two from 1 to TEAM_WG, set per pipeline by the host.
override TEAM: u32 = 32u;
// Invocations per workgroup (`TEAM_WG` in src/core/teams.rs).
const TEAM_WG: u32 = 256u;
// Values each lane holds between the passes, a power of two the host sets
// per pipeline (`team_held` in src/core/teams.rs), or 0 for rows too long to
// hold. A lane's loops then have a constant trip count, so a GPU's compiler
// unrolls them and keeps the held values in registers. Rows of 0 hold
// nothing and read their row again in pass 2, in the same order: the same
// bits.
override TEAM_HELD: u32 = 0u;
// The most a lane holds: 64 f32 registers (`TEAM_HELD_MAX` in src/core/teams.rs).
const TEAM_HELD_MAX: u32 = 64u;

var<workgroup> team_sums: array<vec2<f32>, TEAM_WG>;
var<workgroup> team_pairs: array<vec2<f32>, TEAM_WG>;

// The team's two sums, the lower lane's first at every step; every lane
// gets them.
fn team_sum(lid: u32, lane: u32, v: vec2<f32>) -> vec2<f32> {
    return team_sum_apart(lid, lane, 1u, v);
}

// As team_sum, for a team whose lanes lie `apart` invocations apart.
fn team_sum_apart(lid: u32, lane: u32, apart: u32, v: vec2<f32>) -> vec2<f32> {
    team_sums[lid] = v;
    workgroupBarrier();
    for (var off = TEAM / 2u; off > 0u; off >>= 1u) {
        if (lane < off) {
            team_sums[lid] += team_sums[lid + off * apart];
        }
        workgroupBarrier();
    }
    return team_sums[lid - lane * apart];
}

// The team's (max, sum-exp) pairs merged (`ms_merge`, online_softmax.wgsl)
// in the same tree; every lane gets the total.
fn team_ms(lid: u32, lane: u32, ms: vec2<f32>) -> vec2<f32> {
    return team_ms_apart(lid, lane, 1u, ms);
}

// As team_ms, for a team whose lanes lie `apart` invocations apart.
fn team_ms_apart(lid: u32, lane: u32, apart: u32, ms: vec2<f32>) -> vec2<f32> {
    team_pairs[lid] = ms;
    workgroupBarrier();
    for (var off = TEAM / 2u; off > 0u; off >>= 1u) {
        if (lane < off) {
            team_pairs[lid] = ms_merge(team_pairs[lid], team_pairs[lid + off * apart]);
        }
        workgroupBarrier();
    }
    return team_pairs[lid - lane * apart];
}
