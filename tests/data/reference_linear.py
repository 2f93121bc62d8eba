"""Reference values for fused linear + cross-entropy and logit soft-capping,
computed with PyTorch (float64) and checked against an independent NumPy
float64 implementation written from the formulas.

Run `python3 tests/data/reference_linear.py > tests/data/linear_values.rs` to
regenerate (needs `pip install numpy torch`). The inputs are simple closed
forms (exact dyadic values) so the Rust side rebuilds them without a data file:

    hidden  h[n, k] = (((n*7 + k*13) % 17) - 8) / 8          (N, H)
    weight  W[v, k] = (((v*5 + k*11) % 19) - 9) / 16         (V, H)
    bias    b[v]    = (((v*3) % 7) - 3) / 4                  (V)
    class weights cw[v] = 0.5 + ((v*7) % 5) / 4              (V)
    targets t[n]    = (n*31 + 7) % V, then t[n] = ignore_index for n in ignored_rows

    z = h @ W.T (+ b);  with softcap: z = cap * tanh(z / cap)
    per_row = F.cross_entropy(z, t, weight, ignore_index, 'none', label_smoothing)
              + r * zl * logsumexp(z)^2   (r = cw[t] or 1; 0 on ignored rows)
    none -> per_row; sum -> per_row.sum(); mean -> per_row.sum() / sum(r over kept rows)

Note: a row whose formula target already equals ignore_index is ignored too
(PyTorch compares target == ignore_index), whether or not it is listed.
"""
import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

TOL = 1e-12


def fmt(x):
    return repr(float(x))


def fmt_list(values):
    return "[" + ", ".join(fmt(v) for v in values) + "]"


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


def make_inputs(n, h, v, ignore_index, ignored_rows):
    hid = np.array([[(((i * 7 + k * 13) % 17) - 8) / 8 for k in range(h)] for i in range(n)], dtype=np.float64)
    vv = np.arange(v)[:, None]
    kk = np.arange(h)[None, :]
    w = ((((vv * 5 + kk * 11) % 19) - 9) / 16).astype(np.float64)
    b = ((((np.arange(v) * 3) % 7) - 3) / 4).astype(np.float64)
    cw = (0.5 + ((np.arange(v) * 7) % 5) / 4).astype(np.float64)
    t = np.array([(i * 31 + 7) % v for i in range(n)], dtype=np.int64)
    for r in ignored_rows:
        t[r] = ignore_index
    return hid, w, b, cw, t


# ---------------------------------------------------------------------------
# PyTorch reference
# ---------------------------------------------------------------------------


def torch_loss_from_logits(z, t, weight, ignore_index, eps, zl, reduction):
    """z: capped logits (N, V). Returns the reduced loss (tensor) and the denominator."""
    ce = F.cross_entropy(z, t, weight=weight, ignore_index=ignore_index, reduction="none", label_smoothing=eps)
    keep = t != ignore_index
    safe_t = torch.where(keep, t, torch.zeros_like(t))
    r = weight[safe_t] if weight is not None else torch.ones(z.shape[0])
    r = torch.where(keep, r, torch.zeros_like(r))
    lse = torch.logsumexp(z, dim=1)
    zterm = torch.where(keep, r * zl * lse**2, torch.zeros_like(lse))
    per_row = ce + zterm
    denom = r.sum()
    if reduction == "none":
        out = per_row
    elif reduction == "sum":
        out = per_row.sum()
    elif reduction == "mean":
        out = per_row.sum() / denom
        # Consistency with PyTorch's own mean (no z-loss term).
        ref_mean = F.cross_entropy(z, t, weight=weight, ignore_index=ignore_index, reduction="mean", label_smoothing=eps)
        ours = ce.sum() / denom
        d = abs(float(ref_mean.detach()) - float(ours.detach()))
        assert d <= 1e-15 * max(1.0, abs(float(ref_mean.detach()))), f"mean mismatch vs F.cross_entropy: {d}"
    else:
        raise ValueError(reduction)
    # Also check our 'sum' matches PyTorch's sum without z-loss.
    ref_sum = F.cross_entropy(z, t, weight=weight, ignore_index=ignore_index, reduction="sum", label_smoothing=eps)
    d = abs(float(ref_sum.detach()) - float(ce.sum().detach()))
    assert d <= 1e-13 * max(1.0, abs(float(ref_sum.detach()))), f"sum mismatch vs F.cross_entropy: {d}"
    return out


def apply_cap(z, cap):
    if cap is None:
        return z
    return cap * torch.tanh(z / cap)


def torch_linear_case(hid, w, b, cw, t, bias, class_weights, ignore_index, eps, zl, cap, reduction):
    hid_t = torch.tensor(hid, requires_grad=True)
    w_t = torch.tensor(w, requires_grad=True)
    b_t = torch.tensor(b, requires_grad=True)
    z = hid_t @ w_t.T
    if bias:
        z = z + b_t
    z = apply_cap(z, cap)
    weight = torch.tensor(cw) if class_weights else None
    out = torch_loss_from_logits(z, torch.tensor(t), weight, ignore_index, eps, zl, reduction)
    out.sum().backward()
    gb = b_t.grad.numpy() if bias else None
    return out.detach().numpy().reshape(-1), hid_t.grad.numpy(), w_t.grad.numpy(), gb


# ---------------------------------------------------------------------------
# Independent NumPy implementation (from the formulas)
# ---------------------------------------------------------------------------


def np_loss_and_dz(zc, t, cw, ignore_index, eps, zl, reduction):
    """zc: capped logits. Returns (loss values, dLoss/dzc)."""
    n, v = zc.shape
    m = zc.max(axis=1, keepdims=True)
    e = np.exp(zc - m)
    s = e.sum(axis=1, keepdims=True)
    lse = (m + np.log(s))[:, 0]
    logp = zc - lse[:, None]
    p = e / s
    keep = t != ignore_index
    wv = cw if cw is not None else np.ones(v)
    per_row = np.zeros(n)
    dz = np.zeros((n, v))
    r = np.zeros(n)
    for i in range(n):
        if not keep[i]:
            continue
        onehot = np.zeros(v)
        onehot[t[i]] = 1.0
        # PyTorch: (1-eps) * w[t] * (-logp[t]) + eps/V * sum_c w[c] * (-logp[c])
        a = (1.0 - eps) * wv[t[i]] * onehot + (eps / v) * wv
        r[i] = wv[t[i]]
        per_row[i] = -(a * logp[i]).sum() + r[i] * zl * lse[i] ** 2
        dz[i] = a.sum() * p[i] - a + r[i] * zl * 2.0 * lse[i] * p[i]
    if reduction == "none":
        return per_row, dz
    if reduction == "sum":
        return np.array([per_row.sum()]), dz
    if reduction == "mean":
        denom = r.sum()
        return np.array([per_row.sum() / denom]), dz / denom
    raise ValueError(reduction)


def np_linear_case(hid, w, b, cw, t, bias, class_weights, ignore_index, eps, zl, cap, reduction):
    z = hid @ w.T
    if bias:
        z = z + b
    if cap is not None:
        th = np.tanh(z / cap)
        zc = cap * th
    else:
        zc = z
    loss, dzc = np_loss_and_dz(zc, t, cw if class_weights else None, ignore_index, eps, zl, reduction)
    g = dzc * (1.0 - th**2) if cap is not None else dzc
    return loss, g @ w, g.T @ hid, g.sum(axis=0) if bias else None


def check(name, what, ours, ref):
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape, f"{name}: {what} shape {ours.shape} vs {ref.shape}"
    scale = max(1.0, float(np.abs(ref).max()) if ref.size else 1.0)
    diff = float(np.abs(ours - ref).max()) if ref.size else 0.0
    if not diff <= TOL * scale:
        raise SystemExit(f"MISMATCH in {name} / {what}: max abs diff {diff} (scale {scale})")


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

LINEAR_CASES = [
    # name, N, H, V, bias, class_weights, ignore_index, ignored_rows, eps, zl, softcap, reduction
    ("plain mean", 5, 8, 11, True, False, -100, [], 0.0, 0.0, None, "mean"),
    ("ignore smoothing weights sum", 6, 8, 11, True, True, 3, [1, 4], 0.1, 0.0, None, "sum"),
    ("z-loss softcap none", 5, 8, 11, True, False, -100, [2], 0.0, 1e-3, 5.0, "none"),
    ("softcap smoothing weights mean", 7, 12, 13, False, True, -1, [0], 0.2, 0.0, 2.0, "mean"),
    ("gpt2 vocab", 4, 16, 50257, True, False, -100, [3], 0.1, 1e-4, 30.0, "mean"),
    ("gpt2 vocab sum plain", 3, 16, 50257, False, False, -100, [], 0.0, 0.0, None, "sum"),
]

SOFTCAP_LOGITS = np.array([[10.0, 2, 1, -2, -3], [-1, -6, 0, -3, -5], [-5, 4, 8, 2, 1]])
SOFTCAP_TARGETS = np.array([1, 3, 2], dtype=np.int64)
SOFTCAP_CASES = [
    # name, cap, z_loss, label_smoothing, reduction
    ("cap 3 mean", 3.0, 0.0, 0.0, "mean"),
    ("cap 8 z-loss sum", 8.0, 1e-2, 0.0, "sum"),
    ("cap 0.5 smoothing none", 0.5, 0.0, 0.1, "none"),
    ("cap 1e6 mean (no effect)", 1e6, 0.0, 0.0, "mean"),
]


def sampled_classes(v, t, ignore_index):
    if v <= 64:
        return list(range(v))
    s = {0, 1, v // 2, v - 1}
    s.update(int(x) for x in t if x != ignore_index)
    return sorted(s)


def main():
    out = []
    out.append(f"// Generated by tests/data/reference_linear.py with PyTorch {torch.__version__}")
    out.append("#![allow(clippy::excessive_precision, clippy::unreadable_literal, dead_code)]")
    out.append("")
    out.append("pub struct LinearCase {")
    out.append("    pub name: &'static str,")
    out.append("    pub n: usize,")
    out.append("    pub h: usize,")
    out.append("    pub v: usize,")
    out.append("    pub bias: bool,")
    out.append("    pub class_weights: bool,")
    out.append("    pub ignore_index: i64,")
    out.append("    pub ignored_rows: &'static [usize],")
    out.append("    pub label_smoothing: f64,")
    out.append("    pub z_loss: f64,")
    out.append("    pub softcap: Option<f64>,")
    out.append('    /// "mean", "sum" or "none"')
    out.append("    pub reduction: &'static str,")
    out.append("    /// 1 value for mean/sum, n for none")
    out.append("    pub loss: &'static [f64],")
    out.append("    /// n*h values, row-major")
    out.append("    pub grad_hidden: &'static [f64],")
    out.append("    /// (v, value) at sampled classes")
    out.append("    pub grad_bias_at: &'static [(usize, f64)],")
    out.append("    /// (v, k, value) at sampled entries")
    out.append("    pub grad_weight_at: &'static [(usize, usize, f64)],")
    out.append("}")
    out.append("")
    out.append("pub const LINEAR_CASES: &[LinearCase] = &[")
    for name, n, h, v, bias, class_w, ii, ignored, eps, zl, cap, red in LINEAR_CASES:
        hid, w, b, cw, t = make_inputs(n, h, v, ii, ignored)
        args = (hid, w, b, cw, t, bias, class_w, ii, eps, zl, cap, red)
        loss, gh, gw, gb = torch_linear_case(*args)
        nloss, ngh, ngw, ngb = np_linear_case(*args)
        check(name, "loss", nloss, loss)
        check(name, "grad_hidden", ngh, gh)
        check(name, "grad_weight", ngw, gw)
        if bias:
            check(name, "grad_bias", ngb, gb)
        assert len(loss) == (n if red == "none" else 1)
        classes = sampled_classes(v, t, ii)
        ks = list(range(h)) if v <= 64 else [0, h - 1]
        gb_at = [(c, gb[c]) for c in classes] if bias else []
        gw_at = [(c, k, gw[c, k]) for c in classes for k in ks]
        out.append("    LinearCase {")
        out.append(f'        name: "{name}",')
        out.append(f"        n: {n},")
        out.append(f"        h: {h},")
        out.append(f"        v: {v},")
        out.append(f"        bias: {'true' if bias else 'false'},")
        out.append(f"        class_weights: {'true' if class_w else 'false'},")
        out.append(f"        ignore_index: {ii},")
        out.append(f"        ignored_rows: &[{', '.join(str(r) for r in ignored)}],")
        out.append(f"        label_smoothing: {fmt(eps)},")
        out.append(f"        z_loss: {fmt(zl)},")
        out.append(f"        softcap: {'None' if cap is None else f'Some({fmt(cap)})'},")
        out.append(f'        reduction: "{red}",')
        out.append(f"        loss: &{fmt_list(loss)},")
        out.append(f"        grad_hidden: &{fmt_list(gh.reshape(-1))},")
        out.append("        grad_bias_at: &[" + ", ".join(f"({c}, {fmt(x)})" for c, x in gb_at) + "],")
        out.append("        grad_weight_at: &[" + ", ".join(f"({c}, {k}, {fmt(x)})" for c, k, x in gw_at) + "],")
        out.append("    },")
    out.append("];")
    out.append("")
    out.append("pub struct SoftcapCase {")
    out.append("    pub name: &'static str,")
    out.append("    pub softcap: f64,")
    out.append("    pub z_loss: f64,")
    out.append("    pub label_smoothing: f64,")
    out.append("    pub reduction: &'static str,")
    out.append("    pub loss: &'static [f64],")
    out.append("    pub grad: [f64; 15],")
    out.append("}")
    out.append("")
    out.append("pub const SOFTCAP_CASES: &[SoftcapCase] = &[")
    for name, cap, zl, eps, red in SOFTCAP_CASES:
        x = torch.tensor(SOFTCAP_LOGITS, requires_grad=True)
        t = torch.tensor(SOFTCAP_TARGETS)
        loss_t = torch_loss_from_logits(apply_cap(x, cap), t, None, -100, eps, zl, red)
        loss_t.sum().backward()
        loss = loss_t.detach().numpy().reshape(-1)
        grad = x.grad.numpy()
        th = np.tanh(SOFTCAP_LOGITS / cap)
        nloss, ndz = np_loss_and_dz(cap * th, SOFTCAP_TARGETS, None, -100, eps, zl, red)
        check(name, "loss", nloss, loss)
        check(name, "grad", ndz * (1.0 - th**2), grad)
        assert grad.size == 15
        out.append("    SoftcapCase {")
        out.append(f'        name: "{name}",')
        out.append(f"        softcap: {fmt(cap)},")
        out.append(f"        z_loss: {fmt(zl)},")
        out.append(f"        label_smoothing: {fmt(eps)},")
        out.append(f'        reduction: "{red}",')
        out.append(f"        loss: &{fmt_list(loss)},")
        out.append(f"        grad: {fmt_list(grad.reshape(-1))},")
        out.append("    },")
    out.append("];")
    print("\n".join(out))


if __name__ == "__main__":
    main()
