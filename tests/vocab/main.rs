//! Vocabulary-parallel cross-entropy, one module per concern in
//! `tests/vocab/`: random splits against the unsharded twin, the records'
//! layout, bit-reproducibility and errors.

#[path = "../common/mod.rs"]
mod common;

mod errors;
mod properties;
mod records;
mod same_bits;
mod splits;
