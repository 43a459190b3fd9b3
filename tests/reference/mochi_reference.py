#!/usr/bin/env python3
"""Independent float64 reference of the Mochi-1 transformer (diffusers' MochiTransformer3DModel).

Written from the equations in /work/shared/MOCHI.md (section names below cite it), not from
vditkit's C++ code. Every tensor is float64; plain torch functional ops; torch autograd.

  mochi_reference.py forward WEIGHTS.h5 INPUT.h5 OUTPUT.h5
  mochi_reference.py make-random WEIGHTS.h5 INPUT.h5 [--heads 2 --head-dim 8 ... --grad]

File layouts: reference_common.py. The context mask [L] marks real rows (1) and padding (0);
padding rows take no part in the caption pooling or the joint attention.
"""

import math
import os
import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_common as common  # noqa: E402
from reference_common import DTYPE, linear, rms  # noqa: E402
from wan_reference import patchify, timestep_sinusoid, unpatchify  # noqa: E402

CLASS_NAME = "MochiTransformer3DModel"
POOL_HEADS = 8            # "Conditioning" 2: the caption pooler's heads
ROPE_AREA = 192 * 192     # "Patches and positions": spatial coordinates span this area
EPS_NORM = 1e-6           # the modulated RMS norms and the output LayerNorm
EPS_QK = 1e-5             # the per-head query/key RMS norms


@dataclass(frozen=True)
class MochiConfig:
    patch_size: int
    num_attention_heads: int
    attention_head_dim: int
    num_layers: int
    pooled_projection_dim: int
    in_channels: int
    out_channels: int
    text_embed_dim: int
    time_embed_dim: int
    max_sequence_length: int

    @property
    def dim(self):
        return self.num_attention_heads * self.attention_head_dim

    @property
    def ff_inner(self):
        return (4 * self.dim * 2) // 3

    @property
    def ff_context_inner(self):
        return (4 * self.pooled_projection_dim * 2) // 3


INT_KEYS = ("patch_size", "num_attention_heads", "attention_head_dim", "num_layers",
            "pooled_projection_dim", "in_channels", "text_embed_dim", "time_embed_dim",
            "max_sequence_length")


def config_from_json(raw):
    if raw.get("_class_name") != CLASS_NAME:
        raise ValueError(f"_class_name {raw.get('_class_name')!r}, expected {CLASS_NAME}")
    for key, value in (("qk_norm", "rms_norm"), ("activation_fn", "swiglu")):
        if raw.get(key, value) != value:
            raise ValueError(f"{key} {raw[key]!r}: only {value!r} is implemented")
    out = raw.get("out_channels")
    cfg = MochiConfig(**{k: int(raw[k]) for k in INT_KEYS},
                      out_channels=int(raw["in_channels"] if out is None else out))
    if cfg.attention_head_dim % 2 or cfg.text_embed_dim % POOL_HEADS:
        raise ValueError(f"attention_head_dim {cfg.attention_head_dim} must be even and "
                         f"text_embed_dim {cfg.text_embed_dim} a multiple of {POOL_HEADS}")
    return cfg


def config_to_json(cfg):
    return {"_class_name": CLASS_NAME, **{k: getattr(cfg, k) for k in INT_KEYS},
            "out_channels": cfg.out_channels, "qk_norm": "rms_norm", "activation_fn": "swiglu"}


def parameter_shapes(cfg):
    """Every parameter of the diffusers layout with its shape ("Parameter names")."""
    d, dc, T, p, shapes = cfg.dim, cfg.pooled_projection_dim, cfg.text_embed_dim, cfg.patch_size, {}

    def lin(name, n_out, n_in, bias=True):
        shapes[f"{name}.weight"] = (n_out, n_in)
        if bias:
            shapes[f"{name}.bias"] = (n_out,)

    shapes["patch_embed.proj.weight"] = (d, cfg.in_channels, p, p)
    shapes["patch_embed.proj.bias"] = (d,)
    shapes["pos_frequencies"] = (3, cfg.num_attention_heads, cfg.attention_head_dim // 2)
    lin("time_embed.timestep_embedder.linear_1", d, cfg.time_embed_dim)
    lin("time_embed.timestep_embedder.linear_2", d, d)
    lin("time_embed.pooler.to_kv", 2 * T, T)
    lin("time_embed.pooler.to_q", T, T)
    lin("time_embed.pooler.to_out", d, T)
    lin("time_embed.caption_proj", dc, T)
    for i in range(cfg.num_layers):
        b, last = f"transformer_blocks.{i}", i == cfg.num_layers - 1
        lin(f"{b}.norm1.linear", 4 * d, d)
        if last:
            lin(f"{b}.norm1_context.linear_1", dc, d)
        else:
            lin(f"{b}.norm1_context.linear", 4 * dc, d)
        for proj in ("to_q", "to_k", "to_v"):
            lin(f"{b}.attn1.{proj}", d, d, bias=False)
        for proj in ("add_q_proj", "add_k_proj", "add_v_proj"):
            lin(f"{b}.attn1.{proj}", d, dc, bias=False)
        for norm in ("norm_q", "norm_k", "norm_added_q", "norm_added_k"):
            shapes[f"{b}.attn1.{norm}.weight"] = (cfg.attention_head_dim,)
        lin(f"{b}.attn1.to_out.0", d, d)
        lin(f"{b}.ff.net.0.proj", 2 * cfg.ff_inner, d, bias=False)
        lin(f"{b}.ff.net.2", d, cfg.ff_inner, bias=False)
        if not last:
            lin(f"{b}.attn1.to_add_out", dc, d)
            lin(f"{b}.ff_context.net.0.proj", 2 * cfg.ff_context_inner, dc, bias=False)
            lin(f"{b}.ff_context.net.2", dc, cfg.ff_context_inner, bias=False)
    lin("norm_out.linear", 2 * d, d)
    lin("proj_out", p * p * cfg.out_channels, d)
    return shapes


# ---------------------------------------------------------------- conditioning


def real_rows(context, mask):
    """The rows of context the mask calls real (all rows without a mask)."""
    if mask is None:
        return context
    if not torch.all((mask == 0) | (mask == 1)) or mask.sum() < 1:
        raise ValueError("context_mask must hold 0s and 1s with at least one real row")
    return context[mask.bool()]


def caption_pool(cfg, p, text, mask):
    """"Conditioning" 2: one query (the mean of the real rows) attends over [mean; real rows]."""
    T, hd = cfg.text_embed_dim, cfg.text_embed_dim // POOL_HEADS
    real = real_rows(text, mask)
    pool = real.mean(dim=0)
    kv = linear(p, "time_embed.pooler.to_kv", torch.cat([pool[None], real]))
    k, v = kv[:, :T].reshape(-1, POOL_HEADS, hd), kv[:, T:].reshape(-1, POOL_HEADS, hd)
    q = linear(p, "time_embed.pooler.to_q", pool).reshape(POOL_HEADS, hd)
    weights = torch.softmax(torch.einsum("nh,knh->nk", q, k) / math.sqrt(hd), dim=-1)
    return linear(p, "time_embed.pooler.to_out", torch.einsum("nk,knh->nh", weights, v).reshape(T))


def conditioning(cfg, p, t, text, mask):
    """"Conditioning" 1-3: c = temb + pooled [d]."""
    s = timestep_sinusoid(t, cfg.time_embed_dim)
    temb = linear(p, "time_embed.timestep_embedder.linear_2",
                  F.silu(linear(p, "time_embed.timestep_embedder.linear_1", s)))
    return temb + caption_pool(cfg, p, text, mask)


# ---------------------------------------------------------------- positions


def rope_positions(grid):
    """[tokens, 3]: (frame, y, x); y and x are cell midpoints of a grid rescaled to ROPE_AREA
    and centred on 0."""
    frames, gh, gw = grid
    s = math.sqrt(ROPE_AREA / (gh * gw))

    def centres(n):
        edges = torch.linspace(-n * s / 2, n * s / 2, n + 1, dtype=DTYPE)
        return (edges[:-1] + edges[1:]) / 2

    f, y, x = torch.meshgrid(torch.arange(frames, dtype=DTYPE), centres(gh), centres(gw), indexing="ij")
    return torch.stack([f, y, x], dim=-1).reshape(-1, 3)


def rope_angles(freqs, grid):
    """[tokens, heads, hd/2]: sum over (f, y, x) of position times the learned frequency."""
    return torch.einsum("tk,knj->tnj", rope_positions(grid), freqs)


def apply_rope(x, angles):
    """x [T, n, hd]; adjacent pairs (x[2j], x[2j+1]) turn by angles [T, n, hd/2]."""
    pairs = x.reshape(*x.shape[:-1], -1, 2)
    re, im = pairs[..., 0], pairs[..., 1]
    cos, sin = torch.cos(angles), torch.sin(angles)
    return torch.stack([re * cos - im * sin, re * sin + im * cos], dim=-1).reshape(x.shape)


# ---------------------------------------------------------------- block


def swiglu(p, name, x):
    a, g = linear(p, f"{name}.net.0.proj", x).chunk(2, dim=-1)
    return linear(p, f"{name}.net.2", a * F.silu(g))


def joint_attention(cfg, p, b, nx, nc, mask, angles):
    """Block step 3: visual rows and the real text rows in one softmax. Returns the visual
    output after to_out.0 and the text rows [L, d] before to_add_out (padding rows zero)."""
    n, hd = cfg.num_attention_heads, cfg.attention_head_dim

    def heads(z):
        return z.reshape(z.shape[0], n, hd)

    def normed(proj, norm, z):
        return rms(heads(linear(p, f"{b}.attn1.{proj}", z)), EPS_QK) * p[f"{b}.attn1.{norm}.weight"]

    real = real_rows(nc, mask)
    q = torch.cat([apply_rope(normed("to_q", "norm_q", nx), angles), normed("add_q_proj", "norm_added_q", real)])
    k = torch.cat([apply_rope(normed("to_k", "norm_k", nx), angles), normed("add_k_proj", "norm_added_k", real)])
    v = torch.cat([heads(linear(p, f"{b}.attn1.to_v", nx)), heads(linear(p, f"{b}.attn1.add_v_proj", real))])
    a = common.tempered_attention(p, b, q, k, v).reshape(q.shape[0], cfg.dim)
    tokens = nx.shape[0]
    text = a[tokens:]
    if mask is not None:
        text = a.new_zeros(nc.shape[0], cfg.dim).index_copy(0, torch.nonzero(mask).flatten(), text)
    return linear(p, f"{b}.attn1.to_out.0", a[:tokens]), text


def block(cfg, p, i, x, cap, c, mask, angles):
    """"Block i": the visual stream x [T, d] and the text stream cap [L, dc]."""
    b, last = f"transformer_blocks.{i}", i == cfg.num_layers - 1
    sc = F.silu(c)
    scale_msa, gate_msa, scale_mlp, gate_mlp = linear(p, f"{b}.norm1.linear", sc).chunk(4)
    nx = rms(x, EPS_NORM) * (1 + scale_msa)
    if last:
        nc = rms(cap, EPS_NORM) * (1 + linear(p, f"{b}.norm1_context.linear_1", sc))
    else:
        e_scale_msa, e_gate_msa, e_scale_mlp, e_gate_mlp = linear(p, f"{b}.norm1_context.linear", sc).chunk(4)
        nc = rms(cap, EPS_NORM) * (1 + e_scale_msa)
    visual, text = joint_attention(cfg, p, b, nx, nc, mask, angles)
    x = x + rms(visual, EPS_NORM) * torch.tanh(gate_msa)
    x = x + rms(swiglu(p, f"{b}.ff", rms(x, EPS_NORM) * (1 + scale_mlp)), EPS_NORM) * torch.tanh(gate_mlp)
    if last:  # context_pre_only: the text stream ends here
        return x, None
    cap = cap + rms(linear(p, f"{b}.attn1.to_add_out", text), EPS_NORM) * torch.tanh(e_gate_msa)
    ff = swiglu(p, f"{b}.ff_context", rms(cap, EPS_NORM) * (1 + e_scale_mlp))
    return x, cap + rms(ff, EPS_NORM) * torch.tanh(e_gate_mlp)


def forward(cfg, p, latents, timestep, context, mask=None):
    """latents [C, F, H, W], context [L, text_embed_dim], mask [L] or None -> velocity."""
    if context.shape[0] > cfg.max_sequence_length:
        raise ValueError(f"context has {context.shape[0]} rows, max_sequence_length is {cfg.max_sequence_length}")
    if mask is not None and tuple(mask.shape) != (context.shape[0],):
        raise ValueError(f"context_mask {tuple(mask.shape)} does not match context {tuple(context.shape)}")
    patch = (1, cfg.patch_size, cfg.patch_size)
    x, grid = patchify(latents, p["patch_embed.proj.weight"][:, :, None], p["patch_embed.proj.bias"])
    c = conditioning(cfg, p, timestep, context, mask)
    cap = linear(p, "time_embed.caption_proj", context)
    angles = rope_angles(p["pos_frequencies"], grid)
    for i in range(cfg.num_layers):
        x, cap = block(cfg, p, i, x, cap, c, mask, angles)
    scale, shift = linear(p, "norm_out.linear", F.silu(c)).chunk(2)     # "Output": scale first
    out = linear(p, "proj_out", F.layer_norm(x, (cfg.dim,), eps=EPS_NORM) * (1 + scale) + shift)
    return unpatchify(out, grid, patch, cfg.out_channels)


# ---------------------------------------------------------------- random fixtures


def std_of(key, shape):
    if key == "pos_frequencies":
        return 0.05
    if ".norm_" in key:
        return None
    if key.endswith(".bias"):
        return 0.1
    # Modulations small, so that scales stay near 1 and gates near 0.5.
    modulation = "norm1" in key or key.startswith("norm_out")
    return common.fan_in_std(shape, 0.5 if modulation else 1.0)


def make_random(a, gen):
    cfg = MochiConfig(patch_size=a.patch, num_attention_heads=a.heads, attention_head_dim=a.head_dim,
                      num_layers=a.layers, pooled_projection_dim=a.text_width, in_channels=a.channels,
                      out_channels=a.channels, text_embed_dim=a.text_dim, time_embed_dim=a.time_dim,
                      max_sequence_length=a.max_len)
    params = common.random_parameters(parameter_shapes(cfg), gen, std_of)
    timestep, inputs = common.random_inputs(gen, (cfg.in_channels, a.frames, a.height, a.width), cfg.out_channels,
                                            a.ctx_len, cfg.text_embed_dim, a.real_rows or a.ctx_len, a.grad)
    if a.temperature:
        params.update(common.random_temperatures(gen, cfg.num_layers, cfg.num_attention_heads, a.temperature))
    return config_to_json(cfg), params, timestep, inputs


MODEL_FLAGS = (("patch", 2), ("heads", 2), ("head-dim", 8), ("layers", 2), ("text-width", 12),
               ("channels", 3), ("text-dim", 16), ("time-dim", 8), ("max-len", 8))
INPUT_FLAGS = (("frames", 2), ("height", 4), ("width", 6), ("ctx-len", 5), ("real-rows", 0))

if __name__ == "__main__":
    common.main(sys.modules[__name__], sys.argv[1:], MODEL_FLAGS, INPUT_FLAGS)
