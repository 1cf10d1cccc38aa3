"""NumPy references for kcourse.layers, and the fixed cases stored in references/.

Each case is a dict of arrays: inputs and weights (float32, drawn from a seeded
NumPy generator) and the expected outputs, computed here in float64. The
stored files let every backend be compared with the same numbers; regenerate
them (only after a deliberate change of the references) with

    python tests/layers/layers_reference.py
"""

import math
from pathlib import Path

import numpy as np

REFERENCES = Path(__file__).parent / "references"

_erf = np.vectorize(math.erf)


def softmax(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def layer_norm(x, gamma, beta, eps=1e-5):
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


def gelu(x):  # exact (erf) GELU, as torch.nn.GELU()
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def mhsa(x, wq, wk, wv, wo, n_heads, mask=None, causal=False, bq=0.0, bk=0.0, bv=0.0, bo=0.0):
    """Multi-head self-attention; weights as Keras Dense kernels (y = x @ W + b).
    Returns (out (B, L, d), weights (B, H, L, L)); disallowed keys weigh 0, and
    a row with no allowed key is all zeros."""
    x = x.astype(np.float64)
    B, L, d = x.shape
    dh = d // n_heads

    def heads(t):
        return t.reshape(B, L, n_heads, dh).transpose(0, 2, 1, 3)

    q, k, v = heads(x @ wq + bq), heads(x @ wk + bk), heads(x @ wv + bv)
    s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh)
    allowed = np.ones((B, 1, L, L), bool)
    if mask is not None:
        mask = np.asarray(mask).astype(bool)
        allowed = allowed & (mask[:, None, None, :] if mask.ndim == 2 else mask[:, None])
    if causal:
        allowed = allowed & np.tril(np.ones((L, L), bool))
    with np.errstate(invalid="ignore"):  # rows with no allowed key: nan, then 0
        w = softmax(np.where(allowed, s, -np.inf))
    w = np.where(allowed, w, 0.0)
    out = (w @ v).transpose(0, 2, 1, 3).reshape(B, L, d) @ wo + bo
    return out, w


def sinusoidal_table(length, d_model):
    pos = np.arange(length, dtype=np.float64)[:, None]
    j = np.arange(d_model)
    angle = pos / 10000.0 ** (2 * (j // 2) / d_model)
    return np.where(j % 2 == 0, np.sin(angle), np.cos(angle))


def encoder_block(x, p, n_heads, mask=None):
    """Pre-LN block: x + Attn(LN1(x)), then x + MLP(LN2(x))."""
    x = x.astype(np.float64)
    weights = (p["wq"], p["wk"], p["wv"], p["wo"])
    y, w = mhsa(layer_norm(x, p["ln1_g"], p["ln1_b"]), *weights, n_heads, mask)
    x = x + y
    h = gelu(layer_norm(x, p["ln2_g"], p["ln2_b"]) @ p["fc1_w"] + p["fc1_b"])
    return x + h @ p["fc2_w"] + p["fc2_b"], w


def skip_gram_loss(in_embed, out_embed, center, pos, neg):
    """Per-example SGNS loss -[sum_p log s(u.v_p) + sum_k log s(-u.v_n)]."""
    log_sigmoid = lambda z: -np.logaddexp(0.0, -z)  # noqa: E731
    u = in_embed.astype(np.float64)[center]  # (B, D)
    v = out_embed.astype(np.float64)
    pos_score = np.einsum("bd,bpd->bp", u, v[pos])
    neg_score = np.einsum("bd,bkd->bk", u, v[neg])
    return -(log_sigmoid(pos_score).sum(-1) + log_sigmoid(-neg_score).sum(-1))


def classification_head(x, w1, b1, w2, b2):
    return np.maximum(x.astype(np.float64) @ w1 + b1, 0.0) @ w2 + b2


def make_cases():
    """The fixed cases: {name: {array name: array}}."""
    rng = np.random.default_rng(20251016)

    def f32(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    cases = {}

    # Attention: B=2, L=5, d=8, 2 heads; padding in sample 1; a (B, L, L) mask
    # whose row (0, 2) has no allowed key.
    B, L, d, H = 2, 5, 8, 2
    a = dict(x=f32(B, L, d), **{n: f32(d, d, scale=d**-0.5) for n in ("wq", "wk", "wv", "wo")})
    a.update({n: f32(d, scale=0.1) for n in ("bq", "bk", "bv", "bo")})
    a["pad_mask"] = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], np.int32)
    full = (rng.random((B, L, L)) < 0.6).astype(np.int32)
    full[:, :, 0] = 1
    full[0, 2, :] = 0
    a["full_mask"] = full
    w = {n: a[n] for n in ("wq", "wk", "wv", "wo")}
    b = {n: a[n] for n in ("bq", "bk", "bv", "bo")}
    a["out_pad"], a["w_pad"] = mhsa(a["x"], **w, n_heads=H, mask=a["pad_mask"])
    a["out_causal"], a["w_causal"] = mhsa(a["x"], **w, n_heads=H, mask=a["pad_mask"], causal=True)
    a["out_full"], a["w_full"] = mhsa(a["x"], **w, n_heads=H, mask=a["full_mask"])
    a["out_bias"], a["w_bias"] = mhsa(a["x"], **w, **b, n_heads=H)
    cases["multi_head_self_attention"] = a

    # Encoder block: d=8, 2 heads, mlp_ratio=2 (hidden 16).
    h = 16
    e = dict(x=f32(B, L, d), pad_mask=a["pad_mask"])
    e.update({n: f32(d, d, scale=d**-0.5) for n in ("wq", "wk", "wv", "wo")})
    e.update(ln1_g=1 + f32(d, scale=0.1), ln1_b=f32(d, scale=0.1))
    e.update(ln2_g=1 + f32(d, scale=0.1), ln2_b=f32(d, scale=0.1))
    e.update(fc1_w=f32(d, h, scale=d**-0.5), fc1_b=f32(h, scale=0.1))
    e.update(fc2_w=f32(h, d, scale=h**-0.5), fc2_b=f32(d, scale=0.1))
    e["out"], e["weights"] = encoder_block(e["x"], e, H, e["pad_mask"])
    cases["encoder_block"] = e

    # Sinusoidal positional encoding, even and odd widths.
    p = dict(x_even=f32(2, 16, 10), x_odd=f32(2, 16, 7))
    p["table_even"], p["table_odd"] = sinusoidal_table(16, 10), sinusoidal_table(16, 7)
    p["out_even"], p["out_odd"] = p["x_even"] + p["table_even"], p["x_odd"] + p["table_odd"]
    cases["positional_encoding"] = p

    # Skip-gram: vocab 12, dim 4, B=3, P=2, K=4.
    s = dict(in_embed=f32(12, 4), out_embed=f32(12, 4))
    s["center"] = rng.integers(0, 12, 3).astype(np.int32)
    s["pos"] = rng.integers(0, 12, (3, 2)).astype(np.int32)
    s["neg"] = rng.integers(0, 12, (3, 4)).astype(np.int32)
    s["loss"] = skip_gram_loss(s["in_embed"], s["out_embed"], s["center"], s["pos"], s["neg"])
    cases["skip_gram"] = s

    # Classification head: D=6 -> H=5 -> C=3.
    c = dict(x=f32(4, 6), w1=f32(6, 5), b1=f32(5), w2=f32(5, 3), b2=f32(3))
    c["logits"] = classification_head(c["x"], c["w1"], c["b1"], c["w2"], c["b2"])
    cases["classification_head"] = c
    return cases


def load(name):
    with np.load(REFERENCES / f"{name}.npz") as f:
        return dict(f)


def write():
    REFERENCES.mkdir(exist_ok=True)
    for name, arrays in make_cases().items():
        np.savez_compressed(REFERENCES / f"{name}.npz", **arrays)


if __name__ == "__main__":
    write()
    print("wrote", sorted(p.name for p in REFERENCES.glob("*.npz")))
