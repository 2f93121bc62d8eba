//! The vocabulary split as a benchmark case (`vocab-split-K`): its sampled
//! rows held to the CPU path, its byte count against the unsharded call's
//! minimum, and what it refuses.

use crate::common::ctx;
use xent::bench::{profile_case, BenchCase, BenchOp, Prepared};
use xent::{Error, Precision, Strategy};

/// Splits into one shard, several, and more shards than classes (empty
/// ones), in f32 and bf16 (odd shard widths: pieces that start mid-word):
/// every row agrees with the CPU path, and the count is the unsharded
/// call's minimum with each row read twice (by the partial and the finish).
#[test]
fn split_cases_check_their_rows_and_count_their_bytes() {
    let Some(ctx) = ctx() else { return };
    for (dims, k) in [
        ([16, 1000], 1),
        ([9, 1001], 3),
        ([5, 7], 9),
        ([64, 4099], 4),
    ] {
        for precision in [Precision::F32, Precision::BF16] {
            let case = BenchCase::of(BenchOp::VocabSplit(k), &dims).with_precision(precision);
            let split = Prepared::new(ctx, &case).unwrap();
            let (rows, diff) = split.check_rows(dims[0]).unwrap();
            assert_eq!(rows, dims[0], "{}", case.name);
            assert!(diff < 1e-3, "{}: {diff}", case.name);
            let traffic = split.traffic().unwrap();
            let whole = BenchCase::new(&dims).with_precision(precision);
            let unsharded = Prepared::new(ctx, &whole).unwrap().traffic().unwrap();
            assert_eq!(traffic.minimum, unsharded.minimum, "{}", case.name);
            let passes = traffic.passes();
            assert_eq!(passes[0], "split_partial", "{}", case.name);
            assert!(passes.contains(&"vocab_merge") && passes.contains(&"vocab_grad"));
            let logits = (dims[0] * dims[1]) as u64 * precision.size();
            let read: u64 = traffic
                .transfers
                .iter()
                .filter(|t| t.buffer == "input")
                .map(|t| t.read)
                .sum();
            assert_eq!(read, 2 * logits, "{}", case.name);
        }
    }
}

/// A forced strategy and a per-dispatch profile are typed errors.
#[test]
fn split_cases_refuse_what_they_cannot_run() {
    let Some(ctx) = ctx() else { return };
    let case = BenchCase::of(BenchOp::VocabSplit(2), &[8, 100]);
    let forced = case.clone().with_strategy(Strategy::Wide);
    assert!(matches!(
        Prepared::new(ctx, &forced),
        Err(Error::InvalidOption {
            name: "strategy",
            ..
        })
    ));
    let timestamps = ctx
        .device()
        .features()
        .contains(wgpu::Features::TIMESTAMP_QUERY);
    if timestamps {
        assert!(matches!(
            profile_case(ctx, &case, 1),
            Err(Error::Unsupported { .. })
        ));
    }
}
