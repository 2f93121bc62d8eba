//! The byte yardstick of an elementwise loss (`src/core/traffic.rs`): one
//! pass reads the input and the target and writes the gradient (and, for
//! `none`, the loss terms) with each block's statistics; the fold and the
//! reduce read those statistics. The minimum is the same tensors read and
//! written once, and the loss.

use super::buffers::ElementwiseBuffers;
use super::options::WeightShape;
use super::plan::{ElementwisePlan, STATS_WORDS};
use super::validate::Elements;
use crate::core::status::STATUS_SIZE;
use crate::core::traffic::Traffic;
use crate::core::Reduction;

/// What the count needs of a call besides its plan.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ElementwiseTraffic {
    /// Elements, and the length of the last axis (a last-axis weight's).
    pub len: u64,
    pub last: u64,
    /// Bytes per input, target and gradient element.
    pub elem: u64,
    pub weight: Option<WeightShape>,
    pub pos_weight: bool,
    pub write_grad: bool,
    pub reduction: Reduction,
}

impl ElementwiseTraffic {
    /// What the count needs of a call of `shape` on `b`.
    pub(crate) fn of(
        shape: &Elements,
        b: &ElementwiseBuffers<'_>,
        weight: Option<WeightShape>,
        reduction: Reduction,
    ) -> Self {
        Self {
            len: shape.len as u64,
            last: shape.last as u64,
            elem: b.precision.size(),
            weight,
            pos_weight: b.pos_weight.is_some(),
            write_grad: b.grad.is_some(),
            reduction,
        }
    }

    /// The count of `plan`'s passes; `reduces`: whether the blocks'
    /// statistics are reduced (not for `none` of a loss without an input
    /// check). A last-axis weight, read by every row, counts its bytes
    /// once: a vector that small stays in cache.
    pub(crate) fn count(&self, plan: &ElementwisePlan, reduces: bool) -> Traffic {
        let mut traffic = Traffic::new(self.minimum());
        let (len, elem) = (self.len, self.elem);
        let entry = plan.entry();
        traffic.read(entry, "input", len * elem);
        traffic.read(entry, "target", len * elem);
        traffic.read(entry, "weight", self.weight_bytes());
        traffic.read(
            entry,
            "pos_weight",
            4 * self.last * u64::from(self.pos_weight),
        );
        traffic.write(entry, "grad", len * elem * u64::from(self.write_grad));
        if self.reduction == Reduction::None {
            traffic.write(entry, "loss", 4 * len);
        }
        let stats = (STATS_WORDS * 4) as u64;
        traffic.write(entry, "scratch", stats * plan.blocks as u64);
        if reduces && plan.folds > 0 {
            traffic.read("elementwise_fold", "scratch", stats * plan.blocks as u64);
            traffic.write("elementwise_fold", "scratch", stats * plan.folds as u64);
        }
        let (_, reduced) = plan.reduced();
        if reduces {
            traffic.read("elementwise_reduce", "scratch", stats * reduced as u64);
        }
        if self.reduction != Reduction::None {
            traffic.write("elementwise_reduce", "loss", 4);
        }
        traffic.write("elementwise_reduce", "status", STATUS_SIZE);
        traffic
    }

    fn weight_bytes(&self) -> u64 {
        match self.weight {
            Some(WeightShape::Full) => 4 * self.len,
            Some(WeightShape::LastAxis) => 4 * self.last,
            None => 0,
        }
    }

    /// The tensors read once, the gradient and the loss written once.
    fn minimum(&self) -> u64 {
        let loss = match self.reduction {
            Reduction::None => 4 * self.len,
            _ => 4,
        };
        let grad = self.len * self.elem * u64::from(self.write_grad);
        2 * self.len * self.elem
            + self.weight_bytes()
            + 4 * self.last * u64::from(self.pos_weight)
            + grad
            + loss
            + STATUS_SIZE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bce-with-logits on 4096 × 4096 (the reference case) in f32: one
    /// pass over the tensors, then 16 bytes of statistics per block of
    /// 4 096 elements folded and reduced: a plan within 0.1 % of the
    /// minimum.
    #[test]
    fn the_reference_case_reads_each_tensor_once() {
        let len = 4096 * 4096u64;
        let plan = ElementwisePlan {
            chunks: vec![(0, len as usize)],
            vec4: true,
            blocks: 4096,
            folds: 1,
        };
        let t = ElementwiseTraffic {
            len,
            last: 4096,
            elem: 4,
            weight: None,
            pos_weight: false,
            write_grad: true,
            reduction: Reduction::Mean,
        }
        .count(&plan, true);
        assert_eq!(t.minimum, 12 * len + 4 + 16);
        // The blocks' statistics written, read by the fold, the fold's read by the reduce.
        assert_eq!(t.planned() - t.minimum, 2 * 16 * 4096 + 2 * 16);
        assert!(t.ratio() < 1.001);
        let passes = ["elementwise4", "elementwise_fold", "elementwise_reduce"];
        assert_eq!(t.passes(), passes);
    }
}
