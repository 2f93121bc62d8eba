// Fixed-order reductions over blocks of work, shared by the ops' loss
// reductions (cross-entropy's target statistics and loss, the elementwise
// losses' sums and input checks). Deterministic and atomic-free: each
// block's workgroup reduces its share by a fixed tree and stores a
// BlockStats; one workgroup then folds the blocks' stats in block order
// and merges its invocations' folds by the same tree.
//
// Needs from the module: `const STATS_WG: u32` (a power of two, the
// workgroup size of the kernels that call it) and
// `var<storage, read_write> aux: array<u32>` (where the blocks' stats lie,
// STATS_WORDS words each).

// A block's sum (a loss, a denominator), a count (rows kept, rows correct),
// a count of bad values and the first bad position (NO_POSITION if none).
struct BlockStats {
    sum: f32,
    count: u32,
    bad: u32,
    first: u32,
}

const STATS_WORDS: u32 = 4u;
const NO_POSITION: u32 = 0xffffffffu;

var<workgroup> st_sum: array<f32, STATS_WG>;
var<workgroup> st_count: array<u32, STATS_WG>;
var<workgroup> st_bad: array<u32, STATS_WG>;
var<workgroup> st_first: array<u32, STATS_WG>;

fn stats_add(a: BlockStats, b: BlockStats) -> BlockStats {
    return BlockStats(a.sum + b.sum, a.count + b.count, a.bad + b.bad, min(a.first, b.first));
}

fn store_stats(slot: u32, s: BlockStats) {
    aux[slot] = bitcast<u32>(s.sum);
    aux[slot + 1u] = s.count;
    aux[slot + 2u] = s.bad;
    aux[slot + 3u] = s.first;
}

fn load_stats(slot: u32) -> BlockStats {
    return BlockStats(bitcast<f32>(aux[slot]), aux[slot + 1u], aux[slot + 2u], aux[slot + 3u]);
}

// This invocation's share of `groups` blocks' stats stored from word
// `first_slot` on, folded in block order (blocks lid, lid + STATS_WG, ...)
// before the tree: ceil(groups / STATS_WG) loop trips.
fn fold_blocks(lid: u32, first_slot: u32, groups: u32) -> BlockStats {
    var s = BlockStats(0.0, 0u, 0u, NO_POSITION);
    for (var g = lid; g < groups; g += STATS_WG) {
        s = stats_add(s, load_stats(first_slot + STATS_WORDS * g));
    }
    return s;
}

// Fixed-order tree over the workgroup: the sums of sum, count and bad and
// the min of first; every invocation gets the total. Call from uniform
// control flow.
fn workgroup_stats(lid: u32, s: BlockStats) -> BlockStats {
    // Every invocation has read the previous call's total.
    workgroupBarrier();
    st_sum[lid] = s.sum;
    st_count[lid] = s.count;
    st_bad[lid] = s.bad;
    st_first[lid] = s.first;
    workgroupBarrier();
    for (var off = STATS_WG / 2u; off > 0u; off >>= 1u) {
        if (lid < off) {
            let total = stats_add(
                BlockStats(st_sum[lid], st_count[lid], st_bad[lid], st_first[lid]),
                BlockStats(st_sum[lid + off], st_count[lid + off], st_bad[lid + off], st_first[lid + off]),
            );
            st_sum[lid] = total.sum;
            st_count[lid] = total.count;
            st_bad[lid] = total.bad;
            st_first[lid] = total.first;
        }
        workgroupBarrier();
    }
    return BlockStats(st_sum[0], st_count[0], st_bad[0], st_first[0]);
}
