//! The matrix products, one module per concern in `tests/matmul/`: against
//! the CPU twin around the tiles, views and accumulation, and
//! bit-reproducibility.

#[path = "../common/mod.rs"]
mod common;

mod products;
mod same_bits;
