// Addressing shared by the ops' modules: which work item a workgroup is,
// and where a row of an (outer, classes, inner) tensor lies.

// The workgroup's index in a grid that spills past the per-dimension limit
// into y (`Context::grid` in src/core/binding.rs): x + y * (x's count).
fn flat_workgroup(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// Where row `row` (one (n, s) pair of an (outer, classes, inner) tensor)
// has its class 0; class c is c * inner further on.
fn row_start(row: u32, classes: u32, inner: u32) -> u32 {
    let n = row / inner;
    let s = row - n * inner;
    return n * classes * inner + s;
}
