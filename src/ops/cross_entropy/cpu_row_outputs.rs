//! The twin's per-row outputs besides the loss: the classes a near tie may
//! predict (the predicted class itself is `Row::argmax`) and the entropy of
//! the row's softmax, of the logits as the loss sees them (after the
//! temperature and the soft-cap), every row, ignored ones included.

use super::cpu_rows::Row;
use crate::core::reference::log_magnitude;

impl Row<'_, '_> {
    /// The classes the f32 kernels may predict for a near tie (see
    /// [`Row::near_tie`]): those whose logit as the loss sees it reaches
    /// past the tie's floor.
    pub(super) fn ties(&self) -> Option<Vec<i64>> {
        let floor = self.tie_floor()?;
        let classes = 0..self.twin.layout.classes;
        Some(
            classes
                .filter(|&c| self.at(c) >= floor)
                .map(|c| c as i64)
                .collect(),
        )
    }

    /// The entropy `−Σ p·log p = Σ_c p_c·(lse − x_c)` of the row's softmax
    /// (a class of `p = 0` adds 0, as `Categorical.entropy`), and the
    /// magnitude of its terms: `|ln s|` and `Σ p·|x − m|`, with the
    /// temperature's division's share.
    pub(super) fn entropy(&self) -> (f64, f64) {
        let classes = self.twin.layout.classes;
        let (mut h, mut mag) = (0.0, log_magnitude(self.s));
        for c in 0..classes {
            let x = self.at(c);
            let p = (x - self.lse).exp();
            if p == 0.0 {
                continue;
            }
            h += p * (self.lse - x);
            let divided = self.twin.div_err * (x.abs() + self.m.abs());
            mag += p * ((x - self.m).abs() + divided);
        }
        (h, mag.max(h.abs()))
    }
}
