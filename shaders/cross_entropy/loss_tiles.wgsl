// Part of the cross-entropy module (see common.wgsl and `source` in
// src/ops/cross_entropy/pipelines.rs).
//
// ---------------------------------------------------------------- loss tiles
//
// A call's loss is summed in one fixed order whatever kernel computed its
// rows: each tile of TILE_ROWS = 64 consecutive rows by the tree below
// (rows past the end count 0), then the tiles by the blocks of
// loss_partials and reduce_loss. On a GPU, a rows kernel whose workgroups
// hold whole tiles (TILE_LOSSES: an invocation per row or per four pixels,
// teams of at most 4 lanes; when every chunk starts at a tile) sums its own
// and writes no per-row loss: 8 bytes a row fewer, for 6 barriers a
// workgroup. Otherwise (and on software adapters, where barriers cost more
// than the bytes) the rows write their losses and `loss_tiles` sums them
// afterwards: the same tree, the same bits.

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

// Row `row`'s loss, 0 past the end.
fn tile_term(row: u32) -> f32 {
    return select(0.0, row_loss[min(row, p.rows - 1u)], row < p.rows);
}

// The tiles of per-row losses another kernel wrote: an invocation a tile,
// the same tree in registers, no barrier (which a software adapter pays
// for dearly). Vec4 k holds rows 4k to 4k + 3, so each level of the tree
// is vec4 additions: a[k] + a[k + 8] is rows i and i + 32 for the four
// rows i of a[k], and so on down to the last vec4's halves.
@compute @workgroup_size(64)
fn loss_tiles(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tile = narrow_index(wid, nwg, lid);
    let first = tile * TILE_ROWS;
    if (first >= p.rows) {
        return;
    }
    var a: array<vec4<f32>, 16>;
    for (var k = 0u; k < 16u; k++) {
        let r = first + 4u * k;
        a[k] = vec4<f32>(tile_term(r), tile_term(r + 1u), tile_term(r + 2u), tile_term(r + 3u));
    }
    for (var k = 0u; k < 8u; k++) {
        a[k] += a[k + 8u];
    }
    for (var k = 0u; k < 4u; k++) {
        a[k] += a[k + 4u];
    }
    a[0] += a[2];
    a[1] += a[3];
    a[0] += a[1];
    let h = a[0].xy + a[0].zw;
    aux[p.tiles_at + tile] = bitcast<u32>(h.x + h.y);
}
