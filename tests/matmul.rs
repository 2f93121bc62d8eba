//! The matrix products, one module per concern in `tests/matmul/`: against
//! the CPU twin around the tiles, views and accumulation,
//! bit-reproducibility, and the cooperative-matrix kernel (emulated).

mod common;

// An inline module, so that its modules' files are in `tests/matmul/`.
mod matmul {
    mod coop;
    mod coop_split;
    mod products;
    mod same_bits;
    mod split;
}
