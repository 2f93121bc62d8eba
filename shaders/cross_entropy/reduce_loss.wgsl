// Part of the cross-entropy module (see common.wgsl and `source` in
// src/ops/cross_entropy/pipelines.rs).
//
// ---------------------------------------------------------------- reduce_loss
//
// The reduced loss (and the count of correct rows) in two dispatches, as
// target_stats: `loss_partials` sums each block of rows into aux, then
// `reduce_loss` merges the blocks in order (or, with one block, sums the
// rows itself). A block's loss is the sum of its tiles (loss_tiles.wgsl).

// The tiles of block g: the block's rows' tiles, ⌈rows / TILE_ROWS⌉ in all
// split as group_rows splits rows.
fn group_tiles(g: u32) -> vec2<u32> {
    let tiles = (p.rows + TILE_ROWS - 1u) / TILE_ROWS;
    let block = (tiles + p.groups - 1u) / p.groups;
    let t0 = min(g * block, tiles);
    return vec2<u32>(t0, min(t0 + block, tiles));
}

// One invocation's share of block g: the loss in sum (unless `none`), the
// correct rows in count.
fn loss_block(lid: u32, g: u32) -> BlockStats {
    var s = BlockStats(0.0, 0u, 0u, 0u);
    if (p.reduction != REDUCTION_NONE) {
        let tiles = group_tiles(g);
        for (var i = tiles.x + lid; i < tiles.y; i += STATS_WG) {
            s.sum += bitcast<f32>(aux[p.tiles_at + i]);
        }
    }
    if (COUNT_CORRECT) {
        let rows = group_rows(g);
        for (var i = rows.x + lid; i < rows.y; i += STATS_WG) {
            s.count += aux[AUX_ROWS + i];
        }
    }
    return s;
}

@compute @workgroup_size(STATS_WG)
fn loss_partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let total = workgroup_stats(lid, loss_block(lid, wid.x));
    if (lid == 0u) {
        store_stats(block_slot(wid.x), BlockStats(total.sum, total.count, 0u, NO_POSITION));
    }
}

@compute @workgroup_size(STATS_WG)
fn reduce_loss(@builtin(local_invocation_index) lid: u32) {
    // One block: no loss_partials dispatch, the rows are read here.
    var block: BlockStats;
    if (p.groups == 1u) {
        block = loss_block(lid, 0u);
    } else {
        block = block_partials(lid);
    }
    let total = workgroup_stats(lid, block);
    if (lid == 0u) {
        if (p.reduction == REDUCTION_MEAN) {
            if (denominator() == 0.0) {
                // NaN as PyTorch's 0 / 0 (also when smoothing makes the
                // numerator positive: its nll term is 0 / 0), or 0.
                loss_out[0] = select(p.nan, 0.0, p.empty_mean_zero != 0u);
            } else {
                loss_out[0] = total.sum / denominator();
            }
        } else if (p.reduction != REDUCTION_NONE) {
            loss_out[0] = total.sum;
        }
        if (COUNT_CORRECT) {
            correct_out[0] = total.count;
        }
    }
}

// An invocation per row: its predicted class and entropy from `aux` to the
// caller's buffers, after the rows passes (or a shard's finish).
@compute @workgroup_size(64)
fn row_outputs(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = narrow_index(wid, nwg, lid);
    if (row >= p.rows) {
        return;
    }
    if (WRITE_ARGMAX) {
        argmax_out[row] = bitcast<i32>(aux[p.argmax_at + row]);
    }
    if (WRITE_ENTROPY) {
        entropy_out[row] = bitcast<f32>(aux[p.entropy_at + row]);
    }
}
