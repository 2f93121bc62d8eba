"""Reference values for tests/elementwise_examples.rs, computed with PyTorch (float64).

Run `python3 tests/data/reference_elementwise.py | rustfmt --edition 2021 >
tests/data/elementwise_values.rs` to regenerate (the file is kept as
`cargo fmt` leaves it; needs `pip install torch`; mpmath, which torch installs
with sympy, gives the exact values of the extreme-logit cases). Every input is
rounded through float32 first, so PyTorch sees exactly the f32 values the
Rust side rebuilds from the same literal lists and closed forms.

Each case runs with reduction none, mean and sum; the gradient is that of
`loss.sum()` (the reduced loss, or the sum of the elements' losses for
none), by autograd.
"""
import math

import mpmath
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
mpmath.mp.dps = 60


def f32(v):
    """v (nested lists or a number) as the float64 tensor of its float32 rounding."""
    return torch.tensor(v, dtype=torch.float32).double()


def lit(v):
    if math.isnan(v):
        return "f64::NAN"
    if math.isinf(v):
        return "f64::INFINITY" if v > 0 else "f64::NEG_INFINITY"
    return repr(float(v))


def rust_slice(values):
    flat = torch.as_tensor(values).flatten().tolist()
    return "&[" + ", ".join(lit(v) for v in flat) + "]"


# The shared inputs (the Rust side spells the same lists).
# (3, 4) logits of both signs; soft and hard targets.
LOGITS = [[1.5, -2.0, 0.25, 3.0], [-0.5, 0.0, 4.0, -1.25], [2.0, -3.5, 0.75, -0.1]]
PROB_TARGETS = [[1.0, 0.0, 0.3, 1.0], [0.0, 1.0, 0.5, 0.0], [0.3, 0.7, 1.0, 0.0]]
# (3, 4) probabilities for bce.
PROBS = [[0.1, 0.9, 0.5, 0.25], [0.75, 0.01, 0.99, 0.6], [0.3, 0.45, 0.2, 0.8]]
# (3, 4) regression input and target: x - y is 0, ±0.5, ±1, ±2 (every beta
# and delta below is hit exactly), and others.
REG_INPUT = [[1.5, -2.0, 0.25, 3.0], [-0.5, 0.0, 4.0, -1.25], [2.0, -3.5, 0.75, -0.1]]
REG_TARGET = [[1.5, -1.0, -0.25, 1.0], [0.0, 0.0, 2.0, 1.0], [0.5, -3.0, 0.8, 0.3]]
FULL_WEIGHT = [[1.0, 0.5, 2.0, 0.0], [1.5, 1.0, 0.25, 3.0], [2.0, 1.0, 0.75, 0.5]]
LAST_WEIGHT = [0.5, 2.0, 1.0, 1.5]
POS_WEIGHT = [3.0, 0.5, 1.0, 2.0]
# (2, 3, 2): closed forms.
N3 = 12
X3 = [math.sin(0.9 * i) * 2.5 for i in range(N3)]
Y3 = [math.cos(0.4 * i) * 1.5 for i in range(N3)]
T3 = [(math.cos(0.4 * i) + 1.0) / 2.0 for i in range(N3)]  # targets in [0, 1]
P3 = [(math.sin(0.9 * i) + 1.1) / 2.2 for i in range(N3)]  # probabilities in (0, 1)
W3 = [0.5, 2.0]
PW3 = [1.5, 0.25]
# Extreme logits: each row the logits below, the rows' targets 0, 0.3, 1.
EXTREME_LOGITS = [-100.0, -30.0, 0.0, 30.0, 100.0]
EXTREME_TARGETS = [0.0, 0.3, 1.0]
# bce's edges: 0 and 1 (the logarithm clamped at -100), 1e-30, the
# subnormal 1e-40 (ln is -92.1, not clamped), 1 - 2^-24; rows' targets 0, 0.3, 1.
EDGE_PROBS = [0.0, 1.0, 1e-30, 1e-40, 1.0 - 2.0**-24]
EDGE_TARGETS = [0.0, 0.3, 1.0]


def grid(row, col):
    """Inputs: `row` repeated for each of `col`; targets: each row one value of `col`."""
    return [list(row) for _ in col], [[t] * len(row) for t in col]


BCEL = "BceWithLogits"
BCE = "Bce"


def call(loss, x, y, weight, pos_weight, reduction):
    kind, param = loss
    if kind == BCEL:
        return F.binary_cross_entropy_with_logits(x, y, weight=weight, pos_weight=pos_weight, reduction=reduction)
    if kind == BCE:
        return F.binary_cross_entropy(x, y, weight=weight, reduction=reduction)
    if kind == "Mse":
        return F.mse_loss(x, y, reduction=reduction)
    if kind == "L1":
        return F.l1_loss(x, y, reduction=reduction)
    if kind == "SmoothL1":
        return F.smooth_l1_loss(x, y, reduction=reduction, beta=param)
    if kind == "Huber":
        return F.huber_loss(x, y, reduction=reduction, delta=param)
    raise ValueError(kind)


def run(loss, x, y, weight=None, pos_weight=None):
    """{reduction: (loss, grad)} of one case."""
    out = {}
    for reduction in ["none", "mean", "sum"]:
        xg = x.clone().requires_grad_(True)
        value = call(loss, xg, y, weight, pos_weight, reduction)
        value.sum().backward()
        out[reduction] = (value.detach(), xg.grad)
    return out


REG_LOSSES = [
    ("mse", ("Mse", None)),
    ("l1", ("L1", None)),
    ("smooth_l1", ("SmoothL1", 1.0)),
    ("smooth_l1_beta0", ("SmoothL1", 0.0)),
    ("smooth_l1_beta0.5", ("SmoothL1", 0.5)),
    ("huber", ("Huber", 1.0)),
    ("huber_delta0.5", ("Huber", 0.5)),
    ("huber_delta2", ("Huber", 2.0)),
]

ex_x, ex_y = grid(EXTREME_LOGITS, EXTREME_TARGETS)
edge_x, edge_y = grid(EDGE_PROBS, EDGE_TARGETS)

# (name, loss, input, target, weight, pos_weight): the Rust side's case list, by name.
CASES = [
    ("bcel batch", (BCEL, None), f32(LOGITS), f32(PROB_TARGETS), None, None),
    ("bcel batch, full weight", (BCEL, None), f32(LOGITS), f32(PROB_TARGETS), f32(FULL_WEIGHT), None),
    ("bcel batch, pos_weight", (BCEL, None), f32(LOGITS), f32(PROB_TARGETS), None, f32(POS_WEIGHT)),
    ("bcel batch, last-axis weight and pos_weight", (BCEL, None), f32(LOGITS), f32(PROB_TARGETS),
     f32(LAST_WEIGHT), f32(POS_WEIGHT)),
    ("bcel 3-d, last-axis weight and pos_weight", (BCEL, None), f32(X3).reshape(2, 3, 2),
     f32(T3).reshape(2, 3, 2), f32(W3), f32(PW3)),
    ("bcel 0-d, weight and pos_weight", (BCEL, None), f32(-1.75), f32(0.3), f32(2.5), f32(4.0)),
    ("bcel extreme logits", (BCEL, None), f32(ex_x), f32(ex_y), None, None),
    ("bcel extreme logits, last-axis weight and pos_weight", (BCEL, None), f32(ex_x), f32(ex_y),
     f32([0.5, 2.0, 1.0, 1.5, 3.0]), f32([2.0, 0.5, 3.0, 1.5, 0.25])),
    ("bce batch", (BCE, None), f32(PROBS), f32(PROB_TARGETS), None, None),
    ("bce batch, full weight", (BCE, None), f32(PROBS), f32(PROB_TARGETS), f32(FULL_WEIGHT), None),
    ("bce batch, last-axis weight", (BCE, None), f32(PROBS), f32(PROB_TARGETS), f32(LAST_WEIGHT), None),
    ("bce 3-d, last-axis weight", (BCE, None), f32(P3).reshape(2, 3, 2), f32(T3).reshape(2, 3, 2), f32(W3), None),
    ("bce 0-d, weight", (BCE, None), f32(0.625), f32(0.3), f32(1.5), None),
    ("bce edges", (BCE, None), f32(edge_x), f32(edge_y), None, None),
    ("bce edges, last-axis weight", (BCE, None), f32(edge_x), f32(edge_y), f32([0.5, 2.0, 1.0, 1.5, 3.0]), None),
]
for tag, loss in REG_LOSSES:
    CASES += [
        (f"{tag} batch", loss, f32(REG_INPUT), f32(REG_TARGET), None, None),
        (f"{tag} 3-d", loss, f32(X3).reshape(2, 3, 2), f32(Y3).reshape(2, 3, 2), None, None),
        (f"{tag} 0-d", loss, f32(1.25), f32(-0.5), None, None),
    ]


def exact_bce_with_logits(xs, ys, ws, pws):
    """mpmath's loss and gradient per element: w (pw y softplus(-x) + (1 - y) softplus(x)),
    w ((1 - y) sigmoid(x) - pw y sigmoid(-x))."""
    losses, grads = [], []
    for x, y, w, pw in zip(xs, ys, ws, pws):
        x, y, w, pw = (mpmath.mpf(float(v)) for v in (x, y, w, pw))
        sp = lambda v: mpmath.log1p(mpmath.exp(v))
        sig = lambda v: 1 / (1 + mpmath.exp(-v))
        losses.append(w * (pw * y * sp(-x) + (1 - y) * sp(x)))
        grads.append(w * ((1 - y) * sig(x) - pw * y * sig(-x)))
    n = len(xs)
    total = mpmath.fsum(losses)
    return {
        "none": (losses, grads),
        "mean": ([total / n], [g / n for g in grads]),
        "sum": ([total], grads),
    }


print("// Generated by tests/data/reference_elementwise.py with PyTorch", torch.__version__)
print("#![allow(clippy::approx_constant, clippy::excessive_precision, clippy::unreadable_literal, dead_code)]")
print()
print("/// (case, reduction, PyTorch's loss, PyTorch's gradient of `loss.sum()`), float64.")
print("pub const VALUES: &[(&str, &str, &[f64], &[f64])] = &[")
for name, loss, x, y, w, pw in CASES:
    for reduction, (value, grad) in run(loss, x, y, w, pw).items():
        print(f"    ({name!r}, {reduction!r}, {rust_slice(value)}, {rust_slice(grad)}),".replace("'", '"'))
print("];")
print()
print("/// The extreme-logit cases' exact values (mpmath, 60 digits, rounded to f64):")
print("/// where PyTorch's float64 formulas cancel ((1 - y) x - log σ(x) at x = -30,")
print("/// y = 0; σ(x) - y at x = 30, y = 1) these are what f32 is held to.")
print("pub const EXACT: &[(&str, &str, &[f64], &[f64])] = &[")
for name, loss, x, y, w, pw in CASES:
    if "extreme" not in name:
        continue
    n = x.numel()
    ws = (w.expand_as(x) if w is not None else torch.ones_like(x)).flatten().tolist()
    pws = (pw.expand_as(x) if pw is not None else torch.ones_like(x)).flatten().tolist()
    exact = exact_bce_with_logits(x.flatten().tolist(), y.flatten().tolist(), ws, pws)
    for reduction, (value, grad) in exact.items():
        vs = "&[" + ", ".join(lit(float(v)) for v in value) + "]"
        gs = "&[" + ", ".join(lit(float(g)) for g in grad) + "]"
        print(f"    ({name!r}, {reduction!r}, {vs}, {gs}),".replace("'", '"'))
print("];")
print()
print("/// Every loss on an empty (0, 3) input: (loss, mean, sum) from PyTorch.")
print("pub const EMPTY: &[(&str, f64, f64)] = &[")
empty = torch.empty(0, 3)
for kind in [(BCEL, None), (BCE, None), ("Mse", None), ("L1", None), ("SmoothL1", 1.0), ("Huber", 1.0)]:
    mean = call(kind, empty, empty, None, None, "mean").item()
    total = call(kind, empty, empty, None, None, "sum").item()
    print(f'    ("{kind[0]}", {lit(mean)}, {lit(total)}),')
print("];")
