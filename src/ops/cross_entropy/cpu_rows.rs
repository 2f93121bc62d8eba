//! The cross-entropy twin's rows: what a call's rows share, each row's
//! log-sum-exp, argmax, loss terms and gradient, in f64 with their
//! magnitudes. The fused linear twin takes the class-weight and soft-cap
//! pieces from here.

use crate::core::reference::{
    flushable, log_magnitude, rel, row_stats, top_two, widen, F32_UNIT, LOG_TERM,
};
use crate::core::shape::Layout;
use crate::ops::cross_entropy::options::{CrossEntropyOptions, InputKind};
use crate::ops::cross_entropy::targets::Targets;

/// Class weights `w`, 1 for every class without them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClassWeights<'a>(pub(crate) Option<&'a [f64]>);

impl ClassWeights<'_> {
    /// `w[c]`.
    pub(crate) fn at(self, c: usize) -> f64 {
        self.0.map_or(1.0, |w| w[c])
    }

    /// `W = Σ_c w[c]` over `classes` classes, summed in class order.
    pub(crate) fn sum(self, classes: usize) -> f64 {
        (0..classes).map(|c| self.at(c)).sum()
    }
}

/// `Σ_c w[c]·q[c]` for a class-index target of weight `wt` among `c_f`
/// classes: `(1 − ε)·w[t] + (ε/C)·W`.
pub(crate) fn class_weight_total(eps: f64, wt: f64, c_f: f64, weight_sum: f64) -> f64 {
    (1.0 - eps) * wt + eps / c_f * weight_sum
}

/// `x / t` as an f32 kernel writes it where that differs in kind: past
/// f32's range, the infinity.
fn divided(x: f64, t: f64) -> f64 {
    let y = x / t;
    if f64::from(y as f32).is_infinite() {
        f64::INFINITY.copysign(y)
    } else {
        y
    }
}

/// A logit soft-capped: `cap·tanh(x / cap)`.
pub(crate) fn softcap(x: f64, cap: f64) -> f64 {
    cap * (x / cap).tanh()
}

/// What every row of a call shares.
pub(super) struct Twin<'a> {
    /// The input, soft-capped when asked.
    pub x: Vec<f64>,
    pub layout: Layout,
    pub class_w: ClassWeights<'a>,
    pub sample_w: Option<&'a [f64]>,
    /// Targets as either a class per row (None = ignored) or probabilities.
    pub class_of: Option<Vec<Option<usize>>>,
    pub probs: Option<Vec<f64>>,
    pub opts: &'a CrossEntropyOptions,
    /// `W = Σ_c w[c]`.
    pub weight_sum: f64,
    /// The f32 division by the temperature's error per unit of a logit, in
    /// units of the tolerance's `rel` (0 without a temperature): WGSL's
    /// `x / T` is within 2.5 ulp.
    pub div_err: f64,
}

/// Every row's outputs, before the reduction.
pub(super) struct Rows {
    pub loss: Vec<f64>,
    pub mag: Vec<f64>,
    /// Each row loss's flush factor (see `Tolerance`).
    pub loss_flush: Vec<f64>,
    pub lse: Vec<f64>,
    pub lse_mag: Vec<f64>,
    /// Each row's predicted class, as `torch.argmax` (row outputs).
    pub argmax: Vec<i64>,
    /// Each row's entropy of its softmax, and its magnitude.
    pub entropy: Vec<f64>,
    pub entropy_mag: Vec<f64>,
    pub correct: u64,
    /// Counted rows whose two largest logits (as the loss sees them) are
    /// within the f32 rounding of the cap and the temperature's division:
    /// their argmax may differ on the GPU.
    pub correct_slack: u64,
    /// Rows whose predicted class may be any of several (near ties).
    pub argmax_ties: Vec<(usize, Vec<i64>)>,
    pub grad: Vec<f64>,
    pub grad_mag: Vec<f64>,
    pub grad_flush: Vec<f64>,
}

impl<'a> Twin<'a> {
    pub(super) fn new<T: Copy + Into<f64>>(
        input: &[T],
        layout: Layout,
        targets: Targets<'_, T>,
        class_w: ClassWeights<'a>,
        sample_w: Option<&'a [f64]>,
        opts: &'a CrossEntropyOptions,
    ) -> Self {
        // The temperature, then soft-capping, act before everything; the
        // gradient takes their slope (`Twin::slope`).
        let t = opts.f32_temperature();
        let x: Vec<f64> = match opts.softcap {
            Some(cap) => widen(input)
                .iter()
                .map(|&x| softcap(divided(x, t), cap))
                .collect(),
            None if t != 1.0 => widen(input).iter().map(|&x| divided(x, t)).collect(),
            None => widen(input),
        };
        let div_err = if t == 1.0 {
            0.0
        } else {
            2.5 * F32_UNIT / rel()
        };
        let class_of = targets.class_indices().map(|t| {
            t.iter()
                .map(|&t| (t != opts.ignore_index).then_some(t as usize))
                .collect()
        });
        let probs = match targets {
            Targets::Probs(y) => Some(widen(y)),
            _ => None,
        };
        let weight_sum = class_w.sum(layout.classes);
        Self {
            x,
            layout,
            class_w,
            sample_w,
            class_of,
            probs,
            opts,
            weight_sum,
            div_err,
        }
    }

    /// The sample weight `sᵢ` of a row.
    pub(super) fn sw(&self, row: usize) -> f64 {
        self.sample_w.map_or(1.0, |s| s[row])
    }

    fn c_f(&self) -> f64 {
        self.layout.classes as f64
    }

    /// The slope of a logit as the loss sees it at its capped value `xc`:
    /// the cap's (1 without one) over the temperature.
    fn slope(&self, xc: f64) -> f64 {
        let cap = self
            .opts
            .softcap
            .map_or(1.0, |cap| 1.0 - (xc / cap).powi(2));
        cap / self.opts.f32_temperature()
    }

    /// Every row's outputs; `scale` multiplies each row's gradient (with its
    /// sample weight). Every output the host call can return: the twin
    /// returns them all.
    pub(super) fn run(&self, scale: f64) -> Rows {
        let rows = self.layout.rows();
        let mut out = Rows {
            loss: vec![0.0; rows],
            mag: vec![0.0; rows],
            loss_flush: vec![0.0; rows],
            lse: vec![0.0; rows],
            lse_mag: vec![0.0; rows],
            argmax: vec![0; rows],
            entropy: vec![0.0; rows],
            entropy_mag: vec![0.0; rows],
            correct: 0,
            correct_slack: 0,
            argmax_ties: Vec::new(),
            grad: vec![0.0; self.x.len()],
            grad_mag: vec![0.0; self.x.len()],
            grad_flush: vec![0.0; self.x.len()],
        };
        for row in 0..rows {
            self.row(row, scale, &mut out);
        }
        out
    }

    /// One row's outputs; an ignored row keeps its zeros (but has a lse).
    fn row(&self, row: usize, scale: f64, out: &mut Rows) {
        let r = Row::new(self, row);
        out.lse[row] = r.lse;
        out.lse_mag[row] = r.lse_mag;
        out.argmax[row] = r.argmax().map_or(0, |c| c as i64);
        out.argmax_ties.extend(r.ties().map(|t| (row, t)));
        (out.entropy[row], out.entropy_mag[row]) = r.entropy();
        let Some(terms) = r.terms() else { return };
        out.correct += u64::from(terms.hit);
        out.correct_slack += u64::from(r.near_tie());
        let (sw, z, lse) = (self.sw(row), self.opts.z_loss, r.lse);
        out.loss[row] = sw * (terms.loss + terms.r * z * lse * lse);
        out.mag[row] = (sw.abs() * (terms.loss_mag + (terms.r * z).abs() * r.lse_mag.powi(2)))
            .max(out.loss[row].abs());
        // z·lse² (lse and its square may be flushed), times sᵢ, then the product.
        let z_flush = (terms.r * z).abs() * (2.0 * lse.abs() + 2.0);
        out.loss_flush[row] = sw.abs() * (terms.loss_flush + z_flush) + 1.0;
        r.gradient(&terms, scale * sw, out);
    }
}

/// A row's target distribution q.
enum Dist {
    /// `(1 − ε)·onehot(t) + ε/C`.
    Class(usize),
    /// `(1 − ε)·y + ε/C`, with the row's `y`.
    Probs(Vec<f64>),
}

/// A row's target distribution q, z-loss row weight r, Σ w·q, loss, the
/// loss's magnitude and flush factor, and whether its argmax is its target's.
struct RowTerms {
    q: Dist,
    r: f64,
    q_sum: f64,
    loss: f64,
    loss_mag: f64,
    loss_flush: f64,
    hit: bool,
}

/// One row of a call, with its max `m`, sum of exponentials `s` and
/// log-sum-exp.
pub(super) struct Row<'t, 'a> {
    pub(super) twin: &'t Twin<'a>,
    pub(super) row: usize,
    pub(super) m: f64,
    pub(super) s: f64,
    pub(super) lse: f64,
    pub(super) lse_mag: f64,
}

impl<'t, 'a> Row<'t, 'a> {
    fn new(twin: &'t Twin<'a>, row: usize) -> Self {
        let (m, s) = row_stats(&twin.x, &twin.layout, row);
        let at = |c: usize| twin.x[twin.layout.element(row, c)];
        // log-sum-exp of an all -inf row is -inf (as torch.logsumexp), not
        // the NaN of -inf + ln(NaN); a row with a NaN stays NaN (`row_stats`'
        // max skips NaN, so m alone cannot tell).
        let lse = if m == f64::NEG_INFINITY && !(0..twin.layout.classes).any(|c| at(c).is_nan()) {
            f64::NEG_INFINITY
        } else {
            m + s.ln()
        };
        Self {
            twin,
            row,
            m,
            s,
            lse,
            // The division by the temperature moves the lse by up to its
            // error times the largest logit.
            lse_mag: m.abs() * (1.0 + twin.div_err) + log_magnitude(s),
        }
    }

    pub(super) fn at(&self, c: usize) -> f64 {
        self.twin.x[self.twin.layout.element(self.row, c)]
    }

    /// Whether the row's two largest logits (as the loss sees them) lie
    /// within the f32 rounding of the soft-cap (the kernels' tanh, a few
    /// ulps of the cap) and of the division by the temperature (2.5 ulp of
    /// the quotient), so that an f32 kernel may order them either way.
    pub(super) fn near_tie(&self) -> bool {
        self.tie_floor().is_some()
    }

    /// For a near tie (see [`Row::near_tie`]), the value past which a class
    /// may be the f32 kernels' argmax.
    pub(super) fn tie_floor(&self) -> Option<f64> {
        let opts = self.twin.opts;
        if (opts.softcap.is_none() && opts.temperature == 1.0) || self.twin.layout.classes < 2 {
            return None;
        }
        let top = top_two((0..self.twin.layout.classes).map(|c| self.at(c)));
        let slack = 8.0 * F32_UNIT * (top[0].abs() + opts.softcap.unwrap_or(0.0));
        (top[0] - top[1] <= slack).then_some(top[0] - slack)
    }

    pub(super) fn argmax(&self) -> Option<usize> {
        let classes = self.twin.layout.classes;
        // With a cap or a temperature, of the logits as f32 holds them
        // (saturated or rounded ones tie).
        let opts = self.twin.opts;
        match opts.softcap.is_some() || opts.temperature != 1.0 {
            true => first_argmax((0..classes).map(|c| f64::from(self.at(c) as f32))),
            false => first_argmax((0..classes).map(|c| self.at(c))),
        }
    }

    fn logp(&self, c: usize) -> f64 {
        match self.twin.opts.input {
            InputKind::Logits => (self.at(c) - self.m) - self.s.ln(),
            InputKind::LogProbs => self.at(c),
            InputKind::Probs => self.at(c).ln(),
        }
    }

    /// The magnitude of logp's terms (see `Tolerance`).
    fn logp_mag(&self, c: usize) -> f64 {
        match self.twin.opts.input {
            InputKind::Logits => {
                (self.at(c) - self.m).abs()
                    + log_magnitude(self.s)
                    + self.twin.div_err * (self.at(c).abs() + self.m.abs())
            }
            InputKind::LogProbs => self.at(c).abs(),
            InputKind::Probs => self.at(c).ln().abs() + LOG_TERM,
        }
    }

    /// `q[c]` of the distribution `q`.
    fn q(&self, q: &Dist, c: usize) -> f64 {
        let (eps, c_f) = (self.twin.opts.label_smoothing, self.twin.c_f());
        match q {
            Dist::Class(t) => (1.0 - eps) * f64::from(u8::from(c == *t)) + eps / c_f,
            Dist::Probs(y) => y[c] * (1.0 - eps) + eps / c_f,
        }
    }

    /// The row's loss terms; `None` for an ignored row.
    fn terms(&self) -> Option<RowTerms> {
        let argmax = self.argmax();
        match (&self.twin.class_of, &self.twin.probs) {
            (Some(ts), _) => ts[self.row].map(|t| self.class_terms(t, argmax)),
            (None, Some(y)) => Some(self.prob_terms(y, argmax)),
            (None, None) => unreachable!("targets are class indices or probabilities"),
        }
    }

    /// Class index `t`: PyTorch's `(1 − ε)·(−w[t]·logp[t]) + (ε/C)·(−Σ w·logp)`.
    fn class_terms(&self, t: usize, argmax: Option<usize>) -> RowTerms {
        let twin = self.twin;
        let (eps, c_f, classes) = (twin.opts.label_smoothing, twin.c_f(), twin.layout.classes);
        let w = |c: usize| twin.class_w.at(c);
        let mut loss = -(1.0 - eps) * w(t) * self.logp(t);
        let mut loss_mag = ((1.0 - eps) * w(t)).abs() * self.logp_mag(t);
        // logp (x − m may be flushed) times its weight, the products and sums.
        let mut loss_flush = 2.0 * ((1.0 - eps) * w(t)).abs() + 2.0;
        if eps != 0.0 {
            loss_flush += 2.0 * eps / c_f * (0..classes).map(|c| w(c).abs()).sum::<f64>() + c_f;
            loss -= eps / c_f * (0..classes).map(|c| w(c) * self.logp(c)).sum::<f64>();
            loss_mag += eps / c_f
                * (0..classes)
                    .map(|c| w(c).abs() * self.logp_mag(c))
                    .sum::<f64>();
        }
        RowTerms {
            q: Dist::Class(t),
            r: w(t),
            q_sum: class_weight_total(eps, w(t), c_f, twin.weight_sum),
            loss,
            loss_mag,
            loss_flush,
            hit: argmax == Some(t),
        }
    }

    /// Probabilities `y` (of the whole input): `−Σ w·q·logp`.
    fn prob_terms(&self, y: &[f64], argmax: Option<usize>) -> RowTerms {
        let (classes, layout) = (self.twin.layout.classes, &self.twin.layout);
        let w = |c: usize| self.twin.class_w.at(c);
        let y_row: Vec<f64> = (0..classes)
            .map(|c| y[layout.element(self.row, c)])
            .collect();
        let hit = argmax == first_argmax(y_row.iter().copied());
        let q = Dist::Probs(y_row);
        let q_sum = (0..classes).map(|c| w(c) * self.q(&q, c)).sum();
        let loss = -(0..classes)
            .map(|c| w(c) * self.q(&q, c) * self.logp(c))
            .sum::<f64>();
        let loss_mag = (0..classes)
            .map(|c| (w(c) * self.q(&q, c)).abs() * self.logp_mag(c))
            .sum::<f64>();
        // A y or w·q that may be flushed (nonzero, below 2⁻¹²⁶) times
        // w·logp; each product and sum.
        let loss_flush = (0..classes)
            .map(|c| {
                let q = self.q(&q, c);
                let flushed = flushable(q) || flushable(w(c) * q);
                let logp = if flushed { self.logp(c).abs() } else { 0.0 };
                w(c).abs() * (logp + 2.0) + 2.0
            })
            .sum::<f64>();
        RowTerms {
            q,
            r: 1.0,
            q_sum,
            loss,
            loss_mag,
            loss_flush,
            hit,
        }
    }

    /// Writes the row's gradient, its magnitudes and flush factors; `a` is
    /// the scale times the row's sample weight.
    fn gradient(&self, terms: &RowTerms, a: f64, out: &mut Rows) {
        for c in 0..self.twin.layout.classes {
            let i = self.twin.layout.element(self.row, c);
            let (gi, mag) = self.grad_element(terms, a, c);
            // The temperature's 1/T scales the terms and what a flush leaves
            // (the division itself may flush too).
            let t = self.twin.opts.f32_temperature();
            out.grad[i] = gi;
            out.grad_mag[i] = (a.abs() * mag / t).max(gi.abs());
            out.grad_flush[i] = self.grad_flush(terms, a, c) / t + f64::from(u8::from(t != 1.0));
        }
    }

    /// Class `c`'s gradient's flush factor: `e^(x − m)` and `p` (each may be
    /// flushed) times p's coefficient `Σw·q + 2r·z·lse`, a flushed target
    /// probability times its weight, z-loss's `2r·z·p` times lse, and the
    /// products and sums, all times `a`; `1/x` more for probabilities.
    fn grad_flush(&self, terms: &RowTerms, a: f64, c: usize) -> f64 {
        let w = self.twin.class_w.at(c).abs();
        let structural = self.q(&terms.q, c) == 0.0;
        let f = match self.twin.opts.input {
            // NLL writes exact zeros where q = 0.
            InputKind::LogProbs | InputKind::Probs if structural => 0.0,
            InputKind::Logits => {
                let zr = terms.r * 2.0 * self.twin.opts.z_loss;
                let coefficient = terms.q_sum.abs() + (zr * self.lse).abs();
                let zp = if zr == 0.0 { 0.0 } else { self.lse.abs() };
                a.abs() * (2.0 * coefficient + w + zp + 4.0) + 2.0
            }
            InputKind::LogProbs => a.abs() * (w + 1.0) + 1.0,
            InputKind::Probs => (a.abs() * (w + 1.0) + 1.0) / self.at(c).abs() + 1.0,
        };
        if f.is_finite() {
            f
        } else {
            0.0
        }
    }

    /// Class `c`'s gradient and the magnitude of its terms before `a`.
    fn grad_element(&self, terms: &RowTerms, a: f64, c: usize) -> (f64, f64) {
        let input = self.twin.opts.input;
        let q = self.q(&terms.q, c);
        let wq = self.twin.class_w.at(c) * q;
        let (v, mag) = match input {
            InputKind::Logits => {
                let p = (self.at(c) - self.m).exp() / self.s;
                let zp = terms.r * 2.0 * self.twin.opts.z_loss * p;
                // The temperature's division moves p relatively by its
                // error times |x_c| + |m|.
                let divided = 1.0 + self.twin.div_err * (self.at(c).abs() + self.m.abs());
                (
                    p * terms.q_sum - wq + zp * self.lse,
                    (p * terms.q_sum.abs() + zp.abs() * self.lse_mag) * divided + wq.abs(),
                )
            }
            InputKind::LogProbs | InputKind::Probs => (-wq, wq.abs()),
        };
        let g = match input {
            InputKind::Logits => a * v * self.twin.slope(self.at(c)),
            // PyTorch's nll_loss writes only where q > 0: the others
            // stay 0 whatever the scale (inf for a zero denominator).
            InputKind::LogProbs if q == 0.0 => 0.0,
            InputKind::LogProbs => a * v,
            // Divided by x after: NaN where x is 0 or NaN, as torch.log's backward.
            InputKind::Probs if q == 0.0 => 0.0 / self.at(c),
            InputKind::Probs => a * v / self.at(c),
        };
        let mag = match input {
            InputKind::Probs => mag / self.at(c).abs(),
            _ => mag,
        };
        (g, mag)
    }
}

/// Index of the first largest value as `torch.argmax` gives it: a NaN is
/// larger than every number (the first NaN wins), an all −∞ row gives 0;
/// `None` for no values. The GPU kernels follow the same rule
/// (`order_key` in `shaders/cross_entropy/pass1.wgsl`).
pub(super) fn first_argmax(values: impl Iterator<Item = f64>) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, v) in values.enumerate() {
        let better = match best {
            None => true,
            Some((_, b)) => !b.is_nan() && (v.is_nan() || v > b),
        };
        if better {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}
