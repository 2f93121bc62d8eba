//! Which op a benchmark case times: [`BenchOp`].

use crate::error::{Error, Result};
use crate::ops::elementwise::ElementwiseLoss;
use crate::ops::softmax::SoftmaxKind;

/// The op a [`BenchCase`](super::BenchCase) times, by the name `xent bench
/// --cases` gives it before the shape (`softmax:4096x4096`).
///
/// ```
/// use xent::bench::BenchOp;
/// let op: BenchOp = "log-softmax-backward".parse()?;
/// assert_eq!(op, BenchOp::SoftmaxBackward(xent::SoftmaxKind::LogSoftmax));
/// assert_eq!(op.name(), "log-softmax-backward");
/// assert_eq!("mse".parse::<BenchOp>()?, BenchOp::Elementwise(xent::ElementwiseLoss::Mse));
/// assert!("soft-max".parse::<BenchOp>().is_err());
/// assert_eq!("vocab-split-4".parse::<BenchOp>()?, BenchOp::VocabSplit(4));
/// assert!("vocab-split-0".parse::<BenchOp>().is_err());
/// # Ok::<(), xent::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BenchOp {
    /// Cross-entropy forward + backward in one call (mean, class-index
    /// targets, the gradient to its own buffer).
    CrossEntropy,
    /// An elementwise loss forward + backward (mean, no weights).
    Elementwise(ElementwiseLoss),
    /// Softmax or log-softmax.
    Softmax(SoftmaxKind),
    /// Their backward, from the forward's output and an upstream gradient.
    SoftmaxBackward(SoftmaxKind),
    /// Cross-entropy split over this many vocabulary shards on one device
    /// (`vocab-split-K`): each shard's partial, the records gathered and
    /// merged, each shard's finish, timed as one unit.
    VocabSplit(usize),
}

impl BenchOp {
    /// Its name in `--cases` and in a case's name (a split's without its
    /// shards: `vocab-split`).
    pub fn name(self) -> &'static str {
        match self {
            BenchOp::CrossEntropy => "cross-entropy",
            BenchOp::VocabSplit(_) => "vocab-split",
            BenchOp::Elementwise(loss) => loss.name(),
            BenchOp::Softmax(SoftmaxKind::Softmax) => "softmax",
            BenchOp::Softmax(SoftmaxKind::LogSoftmax) => "log-softmax",
            BenchOp::SoftmaxBackward(SoftmaxKind::Softmax) => "softmax-backward",
            BenchOp::SoftmaxBackward(SoftmaxKind::LogSoftmax) => "log-softmax-backward",
        }
    }

    /// Tensors of the input's size the op must move at least once: the
    /// logits in and the gradient out (cross-entropy, softmax); an input,
    /// a target and a gradient (elementwise); y and dy in, dx out (softmax
    /// backward).
    pub(crate) fn tensors(self) -> u64 {
        match self {
            BenchOp::CrossEntropy | BenchOp::VocabSplit(_) | BenchOp::Softmax(_) => 2,
            BenchOp::Elementwise(_) | BenchOp::SoftmaxBackward(_) => 3,
        }
    }
}

impl std::str::FromStr for BenchOp {
    type Err = Error;

    /// An op by its [name](BenchOp::name); a split as `vocab-split-K`,
    /// K from 1 to 16 384 shards.
    fn from_str(s: &str) -> Result<Self> {
        if let Some(k) = s.strip_prefix("vocab-split-") {
            return match k.parse::<usize>() {
                Ok(k @ 1..=16_384) => Ok(BenchOp::VocabSplit(k)),
                _ => Err(Error::InvalidOption {
                    name: "vocab-split shards",
                    value: k.to_string(),
                    expected: "1 to 16384 shards, as in vocab-split-4",
                }),
            };
        }
        let kinds = [SoftmaxKind::Softmax, SoftmaxKind::LogSoftmax];
        let ops = std::iter::once(BenchOp::CrossEntropy)
            .chain(ElementwiseLoss::ALL.map(BenchOp::Elementwise))
            .chain(kinds.map(BenchOp::Softmax))
            .chain(kinds.map(BenchOp::SoftmaxBackward));
        ops.into_iter()
            .find(|op| op.name() == s)
            .ok_or_else(|| Error::InvalidOption {
                name: "op",
                value: s.to_string(),
                expected: "cross-entropy, vocab-split-K (K shards), an elementwise loss \
                           (bce-with-logits, bce, mse, l1, smooth-l1, huber), softmax, \
                           log-softmax, softmax-backward or log-softmax-backward",
            })
    }
}
