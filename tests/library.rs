//! The library as a whole rather than one op, one module per concern in
//! `tests/library/`: devices at and below the required limits, buffers the
//! device cannot use, a lost device, and `xent::wgsl::BF16` in a client's
//! shader.

mod common;

// An inline module, so that its modules' files are in `tests/library/`.
mod library {
    mod bad_buffers;
    mod device_limits;
    mod foreign_buffers;
    mod wgsl_bf16;
}
