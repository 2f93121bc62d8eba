//! A random case of the cross-entropy family, shared by the property tests
//! that hold a call of it (unsharded, or split over vocabulary shards) to
//! the CPU twin: its data drawn from a seed in one fixed order (so a seed
//! names the same case in every test), the options it is run with, and the
//! checks of the outputs.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use xent::{
    CrossEntropyOptions, CrossEntropyOutput, InputKind, Layout, Reduction, Returns, Targets,
    Tolerance, Weights,
};

use super::generators::TargetKind;
use super::{to_kind, Rng};

/// The class the drawn targets ignore, when ignoring.
pub const IGNORE_INDEX: i64 = 255;

/// A case's inputs: the input of a kind, class ids (as i64, i32, u8),
/// probabilities, class and sample weights.
pub struct FamilyCase {
    pub x: Vec<f32>,
    idx: Vec<i64>,
    idx32: Vec<i32>,
    idx8: Vec<u8>,
    probs: Vec<f32>,
    cw: Vec<f32>,
    sw: Vec<f32>,
    classes: usize,
}

impl FamilyCase {
    /// Draws the case for `dims` from `seed`; with `ignore`, about one row
    /// in four targets [`IGNORE_INDEX`].
    pub fn draw(dims: &[usize], seed: u64, input: InputKind, ignore: bool) -> Self {
        let layout = Layout::from_dims(dims).unwrap();
        let mut rng = Rng(seed);
        let mut x: Vec<f32> = (0..layout.len()).map(|_| rng.uniform(-8.0, 8.0)).collect();
        to_kind(&mut x, dims, input);
        let class = |rng: &mut Rng| {
            if ignore && rng.below(4) == 0 {
                IGNORE_INDEX
            } else {
                rng.below(layout.classes) as i64
            }
        };
        let idx: Vec<i64> = (0..layout.rows()).map(|_| class(&mut rng)).collect();
        let mut probs: Vec<f32> = (0..layout.len()).map(|_| rng.uniform(0.0, 1.0)).collect();
        to_kind(&mut probs, dims, InputKind::Probs);
        let cw: Vec<f32> = (0..layout.classes).map(|_| rng.uniform(0.2, 2.0)).collect();
        let sw: Vec<f32> = (0..layout.rows()).map(|_| rng.uniform(0.0, 2.0)).collect();
        Self {
            x,
            idx32: idx.iter().map(|&t| t as i32).collect(),
            idx8: idx.iter().map(|&t| t as u8).collect(),
            idx,
            probs,
            cw,
            sw,
            classes: layout.classes,
        }
    }

    /// The targets of `kind` (u8 ids only where every class fits a u8, else
    /// i64).
    pub fn targets(&self, kind: TargetKind) -> Targets<'_> {
        match kind {
            TargetKind::I64 => Targets::I64(&self.idx),
            TargetKind::I32 => Targets::I32(&self.idx32),
            TargetKind::U8 if self.classes <= 255 => Targets::U8(&self.idx8),
            TargetKind::U8 => Targets::I64(&self.idx),
            TargetKind::Probs => Targets::Probs(&self.probs),
        }
    }

    /// The class and the sample weights, each when asked for.
    pub fn weights(&self, class: bool, sample: bool) -> Weights<'_> {
        Weights {
            class: class.then_some(&self.cw[..]),
            sample: sample.then_some(&self.sw[..]),
        }
    }
}

/// The options of a case drawn by the property tests.
#[derive(Debug, Clone, Copy)]
pub struct FamilyOptions {
    pub target_kind: TargetKind,
    pub input: InputKind,
    pub reduction: Reduction,
    pub label_smoothing: f64,
    pub z_loss: f64,
    pub softcap: Option<f64>,
    /// The temperature (logits only).
    pub temperature: f64,
    /// The lse and the argmax count asked for.
    pub extras: bool,
}

impl FamilyOptions {
    /// The call's options and returns: z-loss, soft-capping and the lse for
    /// logits only; probability targets refuse a class to ignore (as
    /// PyTorch), so they ignore none.
    pub fn call(&self) -> (CrossEntropyOptions, Returns) {
        let logits_only = self.input == InputKind::Logits;
        let opts = CrossEntropyOptions {
            reduction: self.reduction,
            ignore_index: match self.target_kind {
                TargetKind::Probs => -100,
                _ => IGNORE_INDEX,
            },
            label_smoothing: self.label_smoothing,
            input: self.input,
            z_loss: if logits_only { self.z_loss } else { 0.0 },
            softcap: self.softcap.filter(|_| logits_only),
            temperature: if logits_only { self.temperature } else { 1.0 },
            ..Default::default()
        };
        let returns = Returns {
            lse: self.extras && logits_only,
            correct: self.extras,
            argmax: self.extras && logits_only,
            entropy: self.extras && logits_only,
            ..Default::default()
        };
        (opts, returns)
    }

    /// Holds the GPU's outputs to the twin's: the loss's shape and values,
    /// the gradient, the lse, entropy and predicted classes where both have
    /// them (exactly, but for the twin's near ties), and the argmax count
    /// (the twin counts always; the GPU when asked) within the twin's slack.
    pub fn check(
        &self,
        gpu: &CrossEntropyOutput<f32>,
        want: &CrossEntropyOutput<f64>,
    ) -> Result<(), TestCaseError> {
        let tol = Tolerance::default();
        let fail = |e: xent::Error| TestCaseError::fail(e.to_string());
        prop_assert_eq!(&gpu.loss_dims, &want.loss_dims);
        tol.check("loss", &gpu.loss, &want.loss_reference())
            .map_err(fail)?;
        let grad = gpu.grad.as_deref().unwrap();
        tol.check("grad", grad, &want.grad_reference().unwrap())
            .map_err(fail)?;
        prop_assert_eq!(gpu.correct.is_some(), self.extras);
        prop_assert_eq!(gpu.argmax.is_some(), gpu.lse.is_some());
        prop_assert_eq!(gpu.entropy.is_some(), gpu.lse.is_some());
        tol.compare_cross_entropy(gpu, want, &tol).map_err(fail)
    }
}
