"""Float64 NumPy reference of the NT v3 architecture (pre-trained and species-conditioned post-trained).

Written from the architecture (NTv3 paper and the README "NT v3" section) and checked against the official JAX/Flax code on
tiny random configs (max relative difference <1e-6 vs the official code in float32, ~1e-15 vs it in x64).
It is the ground truth our torch model is tested against; it needs only NumPy.

Interchange layout: ``params`` maps the official flat NNX parameter paths ('.'-joined, e.g.
``conv_tower_blocks.0.conv.conv.kernel``) to arrays. Layouts: ``Linear.kernel`` [in, out]; ``Conv.kernel``
[k, in, out] (cross-correlation, SAME padding); transposed-conv ``kernel`` [k, out, in] (``lax.conv_transpose``,
``transpose_kernel=False``); ``Embed.embedding`` [vocab, dim]; ``LayerNorm`` ``scale``/``bias`` [dim].
``config`` uses the official config field names (``NTv3PreTrainedConfig`` / ``NTv3PostTrainedConfig``): a config
with ``conditions_vocab_size`` is species-conditioned; one with ``bigwigs_per_species`` also has the track heads.
"""

import itertools
import math

import numpy as np

ROTARY_BASE = 10000.0
CONV_LN_EPS = 1e-5  # LayerNorms of the conv / deconv blocks (fixed in the official code)
HEAD_LN_EPS = 1e-6  # LayerNorms of the bigwig / bed heads (flax default)
MASKED_LOGIT = -1e30


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh approximation (``jax.nn.gelu`` default)."""
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def layer_norm(x: np.ndarray, scale: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over the last axis with the biased (population) variance, as flax ``LayerNorm``."""
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * scale + bias


def conv1d(x: np.ndarray, kernel: np.ndarray, pads: tuple[int, int]) -> np.ndarray:
    """Stride-1 cross-correlation with (left, right) zero padding. x [B, L, Cin], kernel [k, Cin, Cout]."""
    xp = np.pad(x, ((0, 0), pads, (0, 0)))
    out_len = xp.shape[1] - kernel.shape[0] + 1
    return sum(xp[:, j : j + out_len] @ kernel[j] for j in range(kernel.shape[0]))


def conv1d_same(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``nnx.Conv(padding="SAME")``: x [B, L, Cin], kernel [k, Cin, Cout] -> [B, L, Cout].

    SAME pads k - 1 positions in total, (k - 1) // 2 on the left.
    """
    k = kernel.shape[0]
    return conv1d(x, kernel, ((k - 1) // 2, k - 1 - (k - 1) // 2)) + bias


def conv_transpose1d_same(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, stride: int) -> np.ndarray:
    """``lax.conv_transpose(padding="SAME", transpose_kernel=False)``. x [B, L, Cin], kernel [k, Cout, Cin].

    The input is dilated (stride-1 zeros between positions), padded with (a, b), a + b = k + stride - 2,
    a = k - 1 if stride > k - 1 else ceil((k + stride - 2) / 2), then cross-correlated with the UNflipped
    kernel. Output [B, L * stride, Cout].
    """
    k = kernel.shape[0]
    batch, length, c_in = x.shape
    dilated = np.zeros((batch, (length - 1) * stride + 1, c_in))
    dilated[:, ::stride] = x
    total = k + stride - 2
    left = k - 1 if stride > k - 1 else math.ceil(total / 2)
    return conv1d(dilated, kernel.transpose(0, 2, 1), (left, total - left)) + bias


def filter_list(config: dict) -> list[int]:
    """Conv tower widths: linspace(conv_init_embed_dim, embed_dim, n + 1) truncated to int (n + 1 values)."""
    n = config["num_downsamples"]
    return [
        int(v) for v in np.linspace(config["conv_init_embed_dim"], config["embed_dim"], n + 1).astype(int)
    ]


def crop_center(x: np.ndarray, fraction: float) -> np.ndarray:
    """Keep positions [c // 2, L - c // 2) of axis 1, c = int((1 - fraction) * L)."""
    length = x.shape[1]
    crop = int((1.0 - fraction) * length)
    return x[:, crop // 2 : length - crop // 2]


class _Net:
    """Parameter access and the conditioning terms (``conds``: list of [B, D] condition embeddings or [])."""

    def __init__(self, params: dict[str, np.ndarray], conds: list[np.ndarray]):
        self.p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
        self.conds = conds

    def linear(self, x: np.ndarray, name: str) -> np.ndarray:
        y = x @ self.p[f"{name}.kernel"]
        return y + self.p[f"{name}.bias"] if f"{name}.bias" in self.p else y

    def ln(self, x: np.ndarray, name: str, eps: float) -> np.ndarray:
        """(Adaptive) LayerNorm: LN(x) * prod_c (1 + scale_c) + sum_c shift_c, [shift | scale] = Linear_c."""
        y = layer_norm(x, self.p[f"{name}.scale"], self.p[f"{name}.bias"], eps)
        dim = x.shape[-1]
        for i, c in enumerate(self.conds):
            mod = self.linear(c, f"{name}.modulation_layers.{i}")[:, None, :]
            y = y * (1.0 + mod[..., dim:]) + mod[..., :dim]
        return y

    def gate(self, name: str) -> np.ndarray | float:
        """Residual gate prod_c (1 + Linear_c(cond)) [B, 1, dim]; 1 for the unconditioned model."""
        g = 1.0
        for i, c in enumerate(self.conds):
            g = g * (1.0 + self.linear(c, f"{name}.modulation_layers.{i}")[:, None, :])
        return g

    def conv_block(self, x: np.ndarray, name: str, conv) -> np.ndarray:
        """gelu(conv(LN(x))); ``conv(y, kernel, bias)``."""
        y = self.ln(x, f"{name}.layer_norm", CONV_LN_EPS)
        return gelu(conv(y, self.p[f"{name}.conv.kernel"], self.p[f"{name}.conv.bias"]))

    def residual_block(self, x: np.ndarray, name: str, conv) -> np.ndarray:
        return x + self.gate(name) * self.conv_block(x, f"{name}.conv_block", conv)


def _attention(net: _Net, x: np.ndarray, name: str, heads: int, key_mask: np.ndarray | None):
    """MHA with rotary (rotate-half) on q, k. x [B, L, E] -> ([B, L, E], weights [B, H, L, L])."""
    batch, length, _ = x.shape
    q, k, v = (
        net.linear(x, f"{name}.{h}_head.linear").reshape(batch, length, heads, -1)
        for h in ("query", "key", "value")
    )
    d = q.shape[-1]
    angles = np.arange(length)[:, None] * (1.0 / ROTARY_BASE ** (np.arange(0, d, 2) / d))[None, :]
    cos, sin = np.cos(angles)[None, :, None, :], np.sin(angles)[None, :, None, :]

    def rotate(t: np.ndarray) -> np.ndarray:
        t1, t2 = t[..., : d // 2], t[..., d // 2 :]
        return np.concatenate([t1 * cos - t2 * sin, t2 * cos + t1 * sin], axis=-1)

    logits = np.einsum("bthd,bshd->bhts", rotate(q), rotate(k)) / math.sqrt(d)
    if key_mask is not None:
        logits = np.where(key_mask[:, None, None, :], logits, MASKED_LOGIT)
    weights = softmax(logits)
    out = np.einsum("bhts,bshd->bthd", weights, v).reshape(batch, length, -1)
    return net.linear(out, f"{name}.mha_output"), weights


def _transformer_block(net: _Net, x: np.ndarray, i: int, config: dict, key_mask: np.ndarray | None):
    """Pre-LN block: x + MHA(LN(x)), then x + gate * FFN(LN(x)) with FFN = fc2(silu(a) * b), [a | b] = fc1."""
    name, eps = f"transformer_blocks.{i}", config["layer_norm_eps"]
    attn, weights = _attention(
        net,
        net.ln(x, f"{name}.self_attention_layer_norm", eps),
        f"{name}.sa_layer",
        config["attention_heads"],
        key_mask,
    )
    x = x + attn
    a, b = np.split(net.linear(net.ln(x, f"{name}.final_layer_norm", eps), f"{name}.fc1"), 2, axis=-1)
    return x + net.gate(name) * net.linear(silu(a) * b, f"{name}.fc2"), weights


def _upsample(config: dict):
    if config["deconv_upsample_type"] == "conv_transpose":
        return lambda y, kernel, bias: conv_transpose1d_same(y, kernel, bias, stride=2)
    if config["deconv_upsample_type"] == "repeat+conv":
        return lambda y, kernel, bias: conv1d_same(np.repeat(y, 2, axis=1), kernel, bias)
    raise ValueError(
        f"deconv_upsample_type {config['deconv_upsample_type']!r} is not conv_transpose or repeat+conv"
    )


def reference_forward(
    params: dict[str, np.ndarray], config: dict, tokens: np.ndarray, species_tokens: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Float64 forward pass. tokens [B, L] int (L divisible by 2**num_downsamples); species_tokens [B] int.

    Outputs (n = num_downsamples, L' = L / 2**n, E = embed_dim, C0 = conv_init_embed_dim, V = alphabet_size):
    ``before_transformer_embedding`` [B, L', E]; ``embeddings_i`` [B, L', E] (transformer layer i, 1-based);
    ``attention_weights_i`` [B, H, L', L'] (all heads, 0-based head index); ``after_transformer_embedding``
    [B, L', E]; ``embedding`` [B, L, C0] (uncropped); ``logits`` [B, L, V]. Conditioned models add
    ``{name}_logits`` [B, vocab_name] per condition; post-trained ones ``bigwig_tracks_logits`` [B, Lc, T_max]
    (softplus, 0 past a species' own track count) and ``bed_tracks_logits`` [B, Lc, E_bed, 2] (raw logits),
    Lc = the centre crop of keep_target_center_fraction.
    The pre-trained model masks keys of all-`<pad>` blocks of 2**n tokens; conditioned models mask nothing.
    """
    tokens = np.asarray(tokens)
    n = config["num_downsamples"]
    if tokens.shape[1] % 2**n:
        raise ValueError(f"sequence length {tokens.shape[1]} is not divisible by 2**num_downsamples = {2**n}")
    conditioned = "conditions_vocab_size" in config
    conds: list[np.ndarray] = []
    key_mask = None
    if conditioned:
        if species_tokens is None:
            raise ValueError("a species-conditioned config needs species_tokens")
        conds = [
            np.asarray(params["conditions_embed_layers.0.embedding"], np.float64)[np.asarray(species_tokens)]
        ]
    else:
        blocks = tokens.reshape(tokens.shape[0], -1, 2**n)
        key_mask = (blocks != config["pad_token_id"]).any(axis=-1)
    net = _Net(params, conds)
    outs: dict[str, np.ndarray] = {}

    x = net.p["embed_layer.embedding"][tokens]
    x = gelu(conv1d_same(x, net.p["stem.conv.kernel"], net.p["stem.conv.bias"]))
    residuals = []
    for i in range(n):
        residuals.append(x)
        x = net.conv_block(x, f"conv_tower_blocks.{i}.conv", conv1d_same)
        x = net.residual_block(x, f"conv_tower_blocks.{i}.res_conv", conv1d_same)
        x = 0.5 * (x[:, 0::2] + x[:, 1::2])
    outs["before_transformer_embedding"] = x
    for i in range(config["num_layers"]):
        x, outs[f"attention_weights_{i + 1}"] = _transformer_block(net, x, i, config, key_mask)
        outs[f"embeddings_{i + 1}"] = x
    outs["after_transformer_embedding"] = x
    res_conv = lambda y, kernel, bias: conv_transpose1d_same(y, kernel, bias, stride=1)  # noqa: E731
    for i in range(n):
        x = net.conv_block(x, f"deconv_tower_blocks.{i}.conv", _upsample(config))
        x = net.residual_block(x, f"deconv_tower_blocks.{i}.res_conv", res_conv)
        if config.get("use_skip_connection", True):
            x = x + residuals.pop()
    outs["embedding"] = x
    h = gelu(x)
    for j in range(config["num_hidden_layers_head"]):
        h = gelu(net.linear(h, f"lm_head.hidden_layers.{j}"))
    outs["logits"] = net.linear(h, "lm_head.head")

    if conditioned:
        pooled = gelu(outs["after_transformer_embedding"].mean(axis=1))
        names = config.get("conditions_names") or [f"condition_{j}" for j in range(len(conds))]
        for j, name in enumerate(names):
            outs[f"{name}_logits"] = net.linear(pooled, f"conditions_heads.{j}")
    if "bigwigs_per_species" in config:
        outs.update(_track_heads(net, config, outs["embedding"], np.asarray(species_tokens)))
    return outs


def _track_heads(net: _Net, config: dict, embedding: np.ndarray, species_tokens: np.ndarray) -> dict:
    """Bigwig (per-species softplus tracks) and bed heads on the centre-cropped base-resolution embedding."""
    if config["conv_init_embed_dim"] != config["embed_dim"]:
        raise ValueError(
            "the official track heads take embed_dim inputs: conv_init_embed_dim must equal embed_dim"
        )
    x = crop_center(embedding, config["keep_target_center_fraction"])
    outs = {}
    per_species = config["bigwigs_per_species"]
    if per_species:
        order = sorted(per_species, key=lambda s: config["species_to_token_id"][s])
        counts = [len(per_species[s]) for s in order]
        head_index = species_tokens - config["num_species_special_tokens"]
        tracks = np.zeros((*x.shape[:2], max(counts)))
        for i, count in enumerate(counts):
            rows = head_index == i
            if count and rows.any():
                name = f"bigwig_head.species_heads.{i}"
                y = layer_norm(
                    x[rows], net.p[f"{name}.layer_norm.scale"], net.p[f"{name}.layer_norm.bias"], HEAD_LN_EPS
                )
                tracks[rows, :, :count] = softplus(net.linear(y, f"{name}.head"))
        outs["bigwig_tracks_logits"] = tracks
    if config["bed_elements_names"]:
        y = layer_norm(x, net.p["bed_head.layer_norm.scale"], net.p["bed_head.layer_norm.bias"], HEAD_LN_EPS)
        outs["bed_tracks_logits"] = net.linear(y, "bed_head.head").reshape(*x.shape[:2], -1, 2)
    return outs


def official_param_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """Every parameter path of the official model for ``config`` and its shape (the official state layout)."""
    vocab, tok, emb = config["alphabet_size"], config["token_embed_dim"], config["embed_dim"]
    heads = config["attention_heads"]
    key = config.get("key_size") or emb // heads
    cond_dims = [tok for _ in config.get("conditions_vocab_size", [])]
    widths = filter_list(config)
    shapes: dict[str, tuple[int, ...]] = {}

    def ln(name: str, dim: int, adaptive: bool = True) -> None:
        shapes.update({f"{name}.scale": (dim,), f"{name}.bias": (dim,)})
        for i, d in enumerate(cond_dims if adaptive else []):
            linear(f"{name}.modulation_layers.{i}", d, 2 * dim)

    def linear(name: str, d_in: int, d_out: int, bias: bool = True) -> None:
        shapes[f"{name}.kernel"] = (d_in, d_out)
        if bias:
            shapes[f"{name}.bias"] = (d_out,)

    def residual(name: str, dim: int, kernel: tuple[int, int, int]) -> None:
        ln(f"{name}.conv_block.layer_norm", dim)
        shapes.update({f"{name}.conv_block.conv.kernel": kernel, f"{name}.conv_block.conv.bias": (dim,)})
        for i, d in enumerate(cond_dims):
            linear(f"{name}.modulation_layers.{i}", d, dim)

    shapes["embed_layer.embedding"] = (vocab, tok)
    shapes.update({"stem.conv.kernel": (15, tok, widths[0]), "stem.conv.bias": (widths[0],)})
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        ln(f"conv_tower_blocks.{i}.conv.layer_norm", a)
        shapes.update(
            {
                f"conv_tower_blocks.{i}.conv.conv.kernel": (5, a, b),
                f"conv_tower_blocks.{i}.conv.conv.bias": (b,),
            }
        )
        residual(f"conv_tower_blocks.{i}.res_conv", b, (1, b, b))
    for i in range(config["num_layers"]):
        name = f"transformer_blocks.{i}"
        ln(f"{name}.self_attention_layer_norm", emb)
        ln(f"{name}.final_layer_norm", emb)
        for h in ("query", "key", "value"):
            linear(f"{name}.sa_layer.{h}_head.linear", emb, heads * key)
        linear(f"{name}.sa_layer.mha_output", emb, emb)
        linear(f"{name}.fc1", emb, 2 * config["ffn_embed_dim"], bias=False)
        linear(f"{name}.fc2", config["ffn_embed_dim"], emb, bias=False)
        for j, d in enumerate(cond_dims):
            linear(f"{name}.modulation_layers.{j}", d, emb)
    for i, (a, b) in enumerate(itertools.pairwise(widths[::-1])):
        ln(f"deconv_tower_blocks.{i}.conv.layer_norm", a)
        up = (5, b, a) if config["deconv_upsample_type"] == "conv_transpose" else (5, a, b)
        shapes.update(
            {f"deconv_tower_blocks.{i}.conv.conv.kernel": up, f"deconv_tower_blocks.{i}.conv.conv.bias": (b,)}
        )
        residual(f"deconv_tower_blocks.{i}.res_conv", b, (1, b, b))
    for j in range(config["num_hidden_layers_head"]):
        linear(f"lm_head.hidden_layers.{j}", widths[0], widths[0])
    linear("lm_head.head", widths[0], vocab)
    for j, v in enumerate(config.get("conditions_vocab_size", [])):
        shapes[f"conditions_embed_layers.{j}.embedding"] = (v, tok)
        linear(f"conditions_heads.{j}", emb, v)
    per_species = config.get("bigwigs_per_species")
    if per_species:
        order = sorted(per_species, key=lambda s: config["species_to_token_id"][s])
        for i, s in enumerate(order):
            if per_species[s]:
                ln(f"bigwig_head.species_heads.{i}.layer_norm", emb, adaptive=False)
                linear(f"bigwig_head.species_heads.{i}.head", emb, len(per_species[s]))
    if config.get("bed_elements_names"):
        ln("bed_head.layer_norm", emb, adaptive=False)
        linear("bed_head.head", emb, 2 * len(config["bed_elements_names"]))
    return shapes


def random_official_params(config: dict, seed: int, std: float = 0.2) -> dict[str, np.ndarray]:
    """Every official parameter (modulation layers included) drawn from N(0, std**2), float64."""
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape) * std for name, shape in official_param_shapes(config).items()}
