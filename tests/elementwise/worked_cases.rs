//! The inputs of the elementwise worked examples: the lists and closed
//! forms `tests/data/reference_elementwise.py` uses too, and one case per
//! generated value.

use xent::{ElementwiseLoss, LossWeights, Reduction};

const LOGITS: [f32; 12] = [
    1.5, -2.0, 0.25, 3.0, //
    -0.5, 0.0, 4.0, -1.25, //
    2.0, -3.5, 0.75, -0.1,
];
const PROB_TARGETS: [f32; 12] = [
    1.0, 0.0, 0.3, 1.0, //
    0.0, 1.0, 0.5, 0.0, //
    0.3, 0.7, 1.0, 0.0,
];
const PROBS: [f32; 12] = [
    0.1, 0.9, 0.5, 0.25, //
    0.75, 0.01, 0.99, 0.6, //
    0.3, 0.45, 0.2, 0.8,
];
/// x − y is 0, ±0.5, ±1, ±2 (every beta and delta below exactly), and others.
const REG_INPUT: [f32; 12] = [
    1.5, -2.0, 0.25, 3.0, //
    -0.5, 0.0, 4.0, -1.25, //
    2.0, -3.5, 0.75, -0.1,
];
const REG_TARGET: [f32; 12] = [
    1.5, -1.0, -0.25, 1.0, //
    0.0, 0.0, 2.0, 1.0, //
    0.5, -3.0, 0.8, 0.3,
];
const FULL_WEIGHT: [f32; 12] = [
    1.0, 0.5, 2.0, 0.0, //
    1.5, 1.0, 0.25, 3.0, //
    2.0, 1.0, 0.75, 0.5,
];
const LAST_WEIGHT: [f32; 4] = [0.5, 2.0, 1.0, 1.5];
const POS_WEIGHT: [f32; 4] = [3.0, 0.5, 1.0, 2.0];
const DIMS: [usize; 2] = [3, 4];
const DIMS3: [usize; 3] = [2, 3, 2];
const W3: [f32; 2] = [0.5, 2.0];
const PW3: [f32; 2] = [1.5, 0.25];
const EXTREME_LOGITS: [f32; 5] = [-100.0, -30.0, 0.0, 30.0, 100.0];
/// 0 and 1 (logarithm clamped at −100), 1e-30, the subnormal 1e-40 (whose
/// logarithm −92.1 is not clamped), 1 − 2⁻²⁴.
const EDGE_PROBS: [f32; 5] = [0.0, 1.0, 1e-30, 1e-40, 1.0 - f32::EPSILON / 2.0];
/// The rows' targets of the extreme and edge grids.
const GRID_TARGETS: [f32; 3] = [0.0, 0.3, 1.0];
const GRID_WEIGHT: [f32; 5] = [0.5, 2.0, 1.0, 1.5, 3.0];
const GRID_POS_WEIGHT: [f32; 5] = [2.0, 0.5, 3.0, 1.5, 0.25];
pub const REDUCTIONS: [(Reduction, &str); 3] = [
    (Reduction::None, "none"),
    (Reduction::Mean, "mean"),
    (Reduction::Sum, "sum"),
];

/// The (2, 3, 2) closed forms: regression input, regression target, binary
/// targets in [0, 1], probabilities in (0, 1).
fn closed3(f: impl Fn(f64) -> f64) -> Vec<f32> {
    (0..12).map(|i| f(f64::from(i)) as f32).collect()
}
fn x3() -> Vec<f32> {
    closed3(|i| (0.9 * i).sin() * 2.5)
}
fn y3() -> Vec<f32> {
    closed3(|i| (0.4 * i).cos() * 1.5)
}
fn t3() -> Vec<f32> {
    closed3(|i| ((0.4 * i).cos() + 1.0) / 2.0)
}
fn p3() -> Vec<f32> {
    closed3(|i| ((0.9 * i).sin() + 1.1) / 2.2)
}

/// `row` once per target, and each row's target.
fn grid(row: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let input = GRID_TARGETS
        .iter()
        .flat_map(|_| row.iter().copied())
        .collect();
    let target = GRID_TARGETS
        .iter()
        .flat_map(|&t| std::iter::repeat_n(t, row.len()))
        .collect();
    (input, target)
}

pub struct Case {
    pub name: String,
    pub loss: ElementwiseLoss,
    pub dims: Vec<usize>,
    pub input: Vec<f32>,
    pub target: Vec<f32>,
    pub weight: Option<Vec<f32>>,
    pub pos_weight: Option<Vec<f32>>,
}

impl Case {
    fn new(
        name: &str,
        loss: ElementwiseLoss,
        dims: &[usize],
        input: &[f32],
        target: &[f32],
    ) -> Self {
        Self {
            name: name.to_string(),
            loss,
            dims: dims.to_vec(),
            input: input.to_vec(),
            target: target.to_vec(),
            weight: None,
            pos_weight: None,
        }
    }
    fn weight(mut self, w: &[f32]) -> Self {
        self.weight = Some(w.to_vec());
        self
    }
    fn pos_weight(mut self, pw: &[f32]) -> Self {
        self.pos_weight = Some(pw.to_vec());
        self
    }
    pub fn weights(&self) -> LossWeights<'_> {
        LossWeights {
            weight: self.weight.as_deref(),
            pos_weight: self.pos_weight.as_deref(),
        }
    }
}

/// The script's case list, by the same names.
pub fn cases() -> Vec<Case> {
    [bce_with_logits_cases(), bce_cases(), regression_cases()]
        .into_iter()
        .flatten()
        .collect()
}

/// bce with logits: weights of every shape, 0-d to 3-d, extreme logits.
fn bce_with_logits_cases() -> Vec<Case> {
    use ElementwiseLoss::BceWithLogits;
    let (ex_x, ex_y) = grid(&EXTREME_LOGITS);
    let (x3, t3) = (x3(), t3());
    vec![
        Case::new("bcel batch", BceWithLogits, &DIMS, &LOGITS, &PROB_TARGETS),
        Case::new(
            "bcel batch, full weight",
            BceWithLogits,
            &DIMS,
            &LOGITS,
            &PROB_TARGETS,
        )
        .weight(&FULL_WEIGHT),
        Case::new(
            "bcel batch, pos_weight",
            BceWithLogits,
            &DIMS,
            &LOGITS,
            &PROB_TARGETS,
        )
        .pos_weight(&POS_WEIGHT),
        Case::new(
            "bcel batch, last-axis weight and pos_weight",
            BceWithLogits,
            &DIMS,
            &LOGITS,
            &PROB_TARGETS,
        )
        .weight(&LAST_WEIGHT)
        .pos_weight(&POS_WEIGHT),
        Case::new(
            "bcel 3-d, last-axis weight and pos_weight",
            BceWithLogits,
            &DIMS3,
            &x3,
            &t3,
        )
        .weight(&W3)
        .pos_weight(&PW3),
        Case::new(
            "bcel 0-d, weight and pos_weight",
            BceWithLogits,
            &[],
            &[-1.75],
            &[0.3],
        )
        .weight(&[2.5])
        .pos_weight(&[4.0]),
        Case::new("bcel extreme logits", BceWithLogits, &[3, 5], &ex_x, &ex_y),
        Case::new(
            "bcel extreme logits, last-axis weight and pos_weight",
            BceWithLogits,
            &[3, 5],
            &ex_x,
            &ex_y,
        )
        .weight(&GRID_WEIGHT)
        .pos_weight(&GRID_POS_WEIGHT),
    ]
}

/// bce: weights of every shape, 0-d to 3-d, probabilities at the edges.
fn bce_cases() -> Vec<Case> {
    use ElementwiseLoss::Bce;
    let (edge_x, edge_y) = grid(&EDGE_PROBS);
    let (t3, p3) = (t3(), p3());
    vec![
        Case::new("bce batch", Bce, &DIMS, &PROBS, &PROB_TARGETS),
        Case::new("bce batch, full weight", Bce, &DIMS, &PROBS, &PROB_TARGETS).weight(&FULL_WEIGHT),
        Case::new(
            "bce batch, last-axis weight",
            Bce,
            &DIMS,
            &PROBS,
            &PROB_TARGETS,
        )
        .weight(&LAST_WEIGHT),
        Case::new("bce 3-d, last-axis weight", Bce, &DIMS3, &p3, &t3).weight(&W3),
        Case::new("bce 0-d, weight", Bce, &[], &[0.625], &[0.3]).weight(&[1.5]),
        Case::new("bce edges", Bce, &[3, 5], &edge_x, &edge_y),
        Case::new(
            "bce edges, last-axis weight",
            Bce,
            &[3, 5],
            &edge_x,
            &edge_y,
        )
        .weight(&GRID_WEIGHT),
    ]
}

/// The regression losses, with their parameters, 0-d to 3-d.
fn regression_cases() -> Vec<Case> {
    use ElementwiseLoss::{Huber, SmoothL1, L1};
    let (x3, y3) = (x3(), y3());
    let mut cases = Vec::new();
    let regression = [
        ("mse", ElementwiseLoss::Mse),
        ("l1", L1),
        ("smooth_l1", SmoothL1 { beta: 1.0 }),
        ("smooth_l1_beta0", SmoothL1 { beta: 0.0 }),
        ("smooth_l1_beta0.5", SmoothL1 { beta: 0.5 }),
        ("huber", Huber { delta: 1.0 }),
        ("huber_delta0.5", Huber { delta: 0.5 }),
        ("huber_delta2", Huber { delta: 2.0 }),
    ];
    for (tag, loss) in regression {
        cases.extend([
            Case::new(
                &format!("{tag} batch"),
                loss,
                &DIMS,
                &REG_INPUT,
                &REG_TARGET,
            ),
            Case::new(&format!("{tag} 3-d"), loss, &DIMS3, &x3, &y3),
            Case::new(&format!("{tag} 0-d"), loss, &[], &[1.25], &[-0.5]),
        ]);
    }
    cases
}
