"""Reference values for tests/worked_examples.rs, derived outside the crate.

Prints each case twice: from PyTorch's F.cross_entropy (float64) and from an
independent f64 implementation of the formulas in plain Python. Run with
`python3 tests/data/reference.py` (PyTorch optional: `pip install torch`).
"""
import math

X = [[10, 2, 1, -2, -3], [-1, -6, 0, -3, -5], [-5, 4, 8, 2, 1]]
CASES = [
    ("mean", [1, 3, 2], None, -100, 0.0, "mean"),
    ("weights", [1, 3, 2], [1, 2, 3, 4, 5], -100, 0.0, "mean"),
    ("ignore -100", [1, -100, 2], None, -100, 0.0, "mean"),
    ("ignore 3", [1, 3, 2], None, 3, 0.0, "mean"),
    ("smoothing 0.1", [1, 3, 2], None, -100, 0.1, "mean"),
    ("smoothing 0.2, weights, ignored", [1, 3, -100], [1, 2, 3, 4, 5], -100, 0.2, "mean"),
    ("sum", [1, 3, 2], None, -100, 0.0, "sum"),
    ("none", [1, 3, 2], None, -100, 0.0, "none"),
]


def log_softmax(row):
    m = max(row)
    s = sum(math.exp(v - m) for v in row)
    return [v - m - math.log(s) for v in row]


def plain(targets, w, ignore, eps, red):
    c_n = len(X[0])
    w = w or [1.0] * c_n
    losses, grads, den = [], [], 0.0
    for x, t in zip(X, targets):
        if t == ignore:
            losses.append(0.0)
            grads.append([0.0] * c_n)
            continue
        lp = log_softmax(x)
        p = [math.exp(v) for v in lp]
        losses.append((1 - eps) * -w[t] * lp[t] + eps / c_n * -sum(w[c] * lp[c] for c in range(c_n)))
        grads.append([(1 - eps) * w[t] * (p[c] - (c == t)) + eps / c_n * (sum(w) * p[c] - w[c]) for c in range(c_n)])
        den += w[t]
    if red == "none":
        return losses, grads
    if red == "sum":
        return sum(losses), grads
    return sum(losses) / den, [[g / den for g in r] for r in grads]


def torch_ref(targets, w, ignore, eps, red):
    import torch
    import torch.nn.functional as F

    x = torch.tensor(X, dtype=torch.float64, requires_grad=True)
    loss = F.cross_entropy(
        x,
        torch.tensor(targets),
        weight=None if w is None else torch.tensor(w, dtype=torch.float64),
        ignore_index=ignore,
        reduction=red,
        label_smoothing=eps,
    )
    loss.sum().backward()
    return loss.tolist(), x.grad.tolist()


if __name__ == "__main__":
    print("log_softmax row 0:", log_softmax(X[0]))
    for name, *args in CASES:
        print(f"== {name}")
        print("  plain:", plain(*args))
        try:
            print("  torch:", torch_ref(*args))
        except ImportError:
            print("  torch: not installed")
