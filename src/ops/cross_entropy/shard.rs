//! A class range's passes: the building blocks the vocabulary-parallel
//! split (`ops/vocab/`) is made of. Cross-entropy's preparation records a
//! range's partial records or its finish from merged records (kernels in
//! `shaders/cross_entropy/vocab.wgsl`); the record's layout is
//! [`VOCAB_RECORD_WORDS`]'s documentation.

use super::options::CrossEntropyOptions;
use crate::error::{Error, Result};

/// 32-bit words per row of a shard's partial record (and of the merged
/// record): `rows × VOCAB_RECORD_WORDS` words, little-endian, row after row.
/// An all-gather of K shards' records, shard after shard in class order, is
/// what [`Context::record_vocab_merge`](crate::Context::record_vocab_merge)
/// reads. Per row, for the shard's classes `[c0, c1)`:
///
/// | word | type | value | merged (shard order) |
/// |---|---|---|---|
/// | 0 | f32 | `m`: the largest (soft-capped) input, `−f32::MAX` for none | max |
/// | 1 | f32 | `s`: `Σ exp(x − m)` | `Σ s_k·exp(m_k − m)` |
/// | 2 | f32 | the input at the row's class-index target if in range, else 0 | sum |
/// | 3 | f32 | the target's class weight if in range (1 without weights), else 0 | sum |
/// | 4 | f32 | `a = Σ w_c·q_c·(ℓ_c − m)`, `ℓ` the input (logits, log-probabilities) or `ln x` (probabilities), `m` 0 for those two; `q_c` 1 for class-index targets | `Σ a_k + b_k·(m_k − m)` (logits; a sum otherwise) |
/// | 5 | f32 | `b = Σ w_c·q_c` | sum |
/// | 6 | u32 | the argmax (a class of the whole call; `u32::MAX` for none) | first index of the largest key |
/// | 7 | u32 | its value's order key (0 for none) | max |
/// | 8 | u32 | the probability target's argmax, as word 6 (none for class-index targets) | as word 6 |
/// | 9 | u32 | its value's order key (0 for none) | max |
/// | 10 | u32 | `c1 − c0` | sum |
/// | 11 | u32 | `c0 + (c0 + 1) + … + (c1 − 1)`, wrapping mod 2³² | sum (wrapping) |
/// | 12 | f32 | `t = Σ exp(x − m)·(x − m)` (the entropy's sum) | `Σ exp(m_k − m)·(t_k + (m_k − m)·s_k)` |
///
/// An order key orders values as `torch.argmax` does, in unsigned integer
/// order: every NaN `u32::MAX`, ±0 `0x8000_0000`, another value `x` its
/// bits with the top bit set when positive, all bits flipped when
/// negative; 0 is below every value.
///
/// Every word is always written; words 4 and 5 are 0 without smoothing or
/// probability targets. An empty range's record is the merge's identity:
/// `m = −f32::MAX`, words 1 to 5 and 10 to 12 zero, both argmaxes none
/// (`u32::MAX`) at key 0.
/// Words 10 and 11 let the finish check that the merged records cover each
/// of the `C` classes once (a count of `C` and a class sum of `C(C − 1)/2`).
///
/// xent's merge is the all-gather form, which keeps the shard order and so
/// repeats bit for bit. Every value but `m` and the argmaxes is a sum over
/// shards once brought to the common maximum, so an engine with MAX and
/// SUM all-reduces but no all-gather can merge too:
/// 1. MAX over word 0: the merged `m`;
/// 2. each shard rescales its record to it: word 1 to `s_k·exp(m_k − m)`,
///    word 12 to `exp(m_k − m)·(t_k + (m_k − m)·s_k)`, taken as 0 wherever
///    `exp(m_k − m)` is 0 (so that `−∞·0` never makes a NaN: an empty
///    record, or a shard whose inputs are all `−∞`), and, for logits, word
///    4 to `a_k + b_k·(m_k − m)` (an empty record stays as it is: its `s`
///    and `b` are 0);
/// 3. SUM over words 1 to 5 and 10 to 12 (11 wrapping);
/// 4. MAXLOC over (word 7, word 6) and over (word 9, word 8): the largest
///    key, the lowest class among equals, "none" (`u32::MAX`) counting as
///    the largest class. For MPI's `MPI_MAXLOC` on (i32, i32) pairs
///    (`MPI_2INT`), flip each key's top bit (its unsigned order becomes
///    the signed one) and map `u32::MAX` to `i32::MAX` before, and back
///    after.
///
/// The result matches the all-gather merge up to rounding (its sums run in
/// the engine's order); `tests/vocab.rs` runs this recipe against it.
///
/// ```
/// assert_eq!(xent::VOCAB_RECORD_BYTES, 4 * xent::VOCAB_RECORD_WORDS as u64);
/// ```
pub const VOCAB_RECORD_WORDS: usize = 13;

/// Bytes per row of a record: `4 · VOCAB_RECORD_WORDS`.
///
/// ```
/// // A merge's gathered records for 8 rows of 2 shards.
/// assert_eq!(xent::MergeDims { rows: 8, shards: 2 }.gathered_bytes(), 16 * xent::VOCAB_RECORD_BYTES);
/// ```
pub const VOCAB_RECORD_BYTES: u64 = 4 * VOCAB_RECORD_WORDS as u64;

/// A contiguous range `[start, end)` of a call's classes: one shard's
/// vocabulary (possibly empty).
///
/// ```
/// let ranges = xent::ClassRange::split(10, 4)?;
/// assert_eq!(ranges[0], xent::ClassRange::new(0, 3));
/// assert_eq!(ranges[3], xent::ClassRange::new(9, 10));
/// // More shards than classes: the extra ranges are empty.
/// assert!(xent::ClassRange::split(2, 3)?[2].is_empty());
/// # Ok::<(), xent::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassRange {
    /// The first class.
    pub start: usize,
    /// One past the last class.
    pub end: usize,
}

impl ClassRange {
    /// `[start, end)`.
    ///
    /// ```
    /// let r = xent::ClassRange::new(3, 7);
    /// assert_eq!((r.start, r.end, r.len()), (3, 7, 4));
    /// ```
    pub fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// The range's class count.
    ///
    /// ```
    /// // GPT-2's vocabulary over 4 shards: ⌈50 257 / 4⌉ = 12 565 classes, the last 12 562.
    /// let ranges = xent::ClassRange::split(50_257, 4)?;
    /// assert_eq!((ranges[0].len(), ranges[3].len()), (12_565, 12_562));
    /// assert_eq!(ranges.iter().map(|r| r.len()).sum::<usize>(), 50_257);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// Whether the range holds no class.
    ///
    /// ```
    /// assert!(xent::ClassRange::new(5, 5).is_empty());
    /// assert!(!xent::ClassRange::new(4, 5).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `shards` ranges covering `[0, classes)` in order, Megatron's split:
    /// `⌈classes / shards⌉` classes each, the last ones fewer or none.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for 0 shards.
    ///
    /// ```
    /// use xent::ClassRange;
    /// let ranges = ClassRange::split(10, 3)?; // ⌈10 / 3⌉ = 4 classes each
    /// assert_eq!(ranges, [ClassRange::new(0, 4), ClassRange::new(4, 8), ClassRange::new(8, 10)]);
    /// assert!(matches!(ClassRange::split(10, 0), Err(xent::Error::InvalidOption { .. })));
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn split(classes: usize, shards: usize) -> Result<Vec<ClassRange>> {
        if shards == 0 {
            return Err(Error::InvalidOption {
                name: "vocab_shards",
                value: "0".into(),
                expected: "at least 1 shard",
            });
        }
        let per = classes.div_ceil(shards);
        Ok((0..shards)
            .map(|k| ClassRange::new((k * per).min(classes), ((k + 1) * per).min(classes)))
            .collect())
    }

    /// [`Error::InvalidOption`] unless `start ≤ end ≤ classes`.
    pub(crate) fn check(&self, classes: usize) -> Result<()> {
        if self.start > self.end || self.end > classes {
            return Err(Error::InvalidOption {
                name: "class range",
                value: format!("[{}, {}) of {classes} classes", self.start, self.end),
                expected: "start <= end <= the call's class count",
            });
        }
        Ok(())
    }
}

/// Which of a shard's passes a cross-entropy preparation records.
pub(crate) struct ShardPass<'a> {
    pub range: ClassRange,
    pub stage: ShardStage<'a>,
}

pub(crate) enum ShardStage<'a> {
    /// Writes the range's records into `out`.
    Partial { out: wgpu::BufferSlice<'a> },
    /// Reads the merged records.
    Finish { merged: wgpu::BufferSlice<'a> },
}

/// Whether a shard's partial runs `vocab_sums` (each span's weighted sums
/// for the records' `a` and `b`): with label smoothing or probability
/// targets (bound a chunk at a time, as the input).
pub(crate) fn partial_sums(opts: &CrossEntropyOptions, chunked_targets: bool) -> bool {
    opts.label_smoothing != 0.0 || chunked_targets
}
