//! Vocabulary-parallel cross-entropy, one module per concern in
//! `tests/vocab/`: random splits against the unsharded twin, the records'
//! layout, bit-reproducibility, errors, and the split as a benchmark case.

mod common;

// An inline module, so that its modules' files are in `tests/vocab/`.
mod vocab {
    mod bench;
    mod errors;
    mod properties;
    mod records;
    mod same_bits;
    mod splits;
}
