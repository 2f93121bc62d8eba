// Part of the cross-entropy module (see common.wgsl and `source` in
// src/ops/cross_entropy/pipelines.rs).
//
// ---------------------------------------------------------------- loss tiles
//
// A call's loss is summed in one fixed order whatever kernel computed its
// rows: each tile of TILE_ROWS = 64 consecutive rows by the tree below
// (rows past the end count 0), then the tiles by the blocks of
// loss_partials and reduce_loss. A rows kernel whose workgroups hold whole
// tiles (TILE_LOSSES: an invocation per row or per four pixels, teams of at
// most 4 lanes; when every chunk starts at a tile) sums its own and writes
// no per-row loss: 8 bytes a row fewer. Otherwise the rows write
// their losses and `loss_tiles` sums them afterwards: the same tree, the
// same bits.

// Rows per tile (`TILE_ROWS` in src/ops/cross_entropy/plan.rs).
const TILE_ROWS: u32 = 64u;
// Set per pipeline (the rows pass's specialisation): this kernel writes its
// rows' tile sums at aux[p.tiles_at + tile] instead of each row's loss.
override TILE_LOSSES: bool = false;
// The row losses of a workgroup's tiles, four at most.
var<workgroup> tile_terms: array<f32, 256>;

// The tile sums of the `count` row losses in tile_terms (a multiple of
// TILE_ROWS, at most 256), rows [first, first + count), by the `wg`
// invocations of the workgroup: in each tile, position i adds i + off for
// off = 32, 16, …, 1. Tiles that start before p.row_end are written. Call
// from uniform control flow, after each invocation stored its terms.
fn store_tiles(lid: u32, wg: u32, first: u32, count: u32) {
    for (var off = TILE_ROWS / 2u; off > 0u; off >>= 1u) {
        workgroupBarrier();
        for (var i = lid; i < count; i += wg) {
            if (i % TILE_ROWS < off) {
                tile_terms[i] += tile_terms[i + off];
            }
        }
    }
    workgroupBarrier();
    let tiles = count / TILE_ROWS;
    if (lid < tiles) {
        let row = first + lid * TILE_ROWS;
        if (row < p.row_end) {
            aux[p.tiles_at + row / TILE_ROWS] = bitcast<u32>(tile_terms[lid * TILE_ROWS]);
        }
    }
}

// The tile of a workgroup of NARROW_WG rows, an invocation each (its row's
// `loss`; 0 past the end), where this kernel sums its tiles.
fn narrow_tiles(lid: u32, first: u32, loss: f32) {
    if (TILE_LOSSES) {
        tile_terms[lid] = loss;
        store_tiles(lid, NARROW_WG, first, NARROW_WG);
    }
}

// The four tiles of a workgroup of NARROW_WG invocations of four pixels
// (rows) each.
fn pixel_tiles(lid: u32, first: u32, loss: vec4<f32>) {
    if (TILE_LOSSES) {
        tile_terms[4u * lid] = loss.x;
        tile_terms[4u * lid + 1u] = loss.y;
        tile_terms[4u * lid + 2u] = loss.z;
        tile_terms[4u * lid + 3u] = loss.w;
        store_tiles(lid, NARROW_WG, first, 4u * NARROW_WG);
    }
}

// The tiles of per-row losses another kernel wrote: 4 tiles a workgroup.
@compute @workgroup_size(64)
fn loss_tiles(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = flat_workgroup(wid, nwg) * 4u * TILE_ROWS;
    for (var i = lid; i < 4u * TILE_ROWS; i += 64u) {
        let row = first + i;
        tile_terms[i] = select(0.0, row_loss[min(row, p.rows - 1u)], row < p.rows);
    }
    store_tiles(lid, 64u, first, 4u * TILE_ROWS);
}
