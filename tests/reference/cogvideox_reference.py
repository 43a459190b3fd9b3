#!/usr/bin/env python3
"""Independent float64 reference of CogVideoX-2b (diffusers' CogVideoXTransformer3DModel).

Written from the equations in /work/shared/COGVIDEOX.md (section names below cite it), not from
vditkit's C++ code. Every tensor is float64; plain torch functional ops; torch autograd.

  cogvideox_reference.py forward WEIGHTS.h5 INPUT.h5 OUTPUT.h5
  cogvideox_reference.py make-random WEIGHTS.h5 INPUT.h5 [--heads 2 --head-dim 8 ... --grad]

File layouts: reference_common.py. The text must have exactly max_text_seq_length rows; padding
rows are ordinary tokens here (nothing is masked), so a context_mask is ignored.
"""

import math
import os
import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_common as common  # noqa: E402
from reference_common import DTYPE, linear  # noqa: E402
from wan_reference import patchify, timestep_sinusoid  # noqa: E402

CLASS_NAME = "CogVideoXTransformer3DModel"
EPS_QK = 1e-6  # the per-head query/key LayerNorms
# The 2b variant's fixed choices; a config.json that says otherwise is refused.
REQUIRED = (("flip_sin_to_cos", True), ("freq_shift", 0), ("attention_bias", True),
            ("activation_fn", "gelu-approximate"), ("timestep_activation_fn", "silu"),
            ("norm_elementwise_affine", True), ("use_rotary_positional_embeddings", False),
            ("use_learned_positional_embeddings", False), ("patch_size_t", None), ("patch_bias", True),
            ("ofs_embed_dim", None))


@dataclass(frozen=True)
class CogVideoXConfig:
    num_attention_heads: int
    attention_head_dim: int
    in_channels: int
    out_channels: int
    time_embed_dim: int
    text_embed_dim: int
    num_layers: int
    patch_size: int
    max_text_seq_length: int
    norm_eps: float
    spatial_interpolation_scale: float
    temporal_interpolation_scale: float

    @property
    def dim(self):
        return self.num_attention_heads * self.attention_head_dim


INT_KEYS = ("num_attention_heads", "attention_head_dim", "in_channels", "out_channels",
            "time_embed_dim", "text_embed_dim", "num_layers", "patch_size", "max_text_seq_length")
FLOAT_KEYS = ("norm_eps", "spatial_interpolation_scale", "temporal_interpolation_scale")


def config_from_json(raw):
    if raw.get("_class_name") != CLASS_NAME:
        raise ValueError(f"_class_name {raw.get('_class_name')!r}, expected {CLASS_NAME}")
    for key, value in REQUIRED:
        if raw.get(key, value) != value:
            raise ValueError(f"{key} {raw[key]!r}: only {value!r} (CogVideoX-2b) is implemented")
    cfg = CogVideoXConfig(**{k: int(raw[k]) for k in INT_KEYS}, **{k: float(raw[k]) for k in FLOAT_KEYS})
    if cfg.dim % 16:
        raise ValueError(f"heads x head dim = {cfg.dim} must be a multiple of 16 (sin-cos position widths)")
    return cfg


def config_to_json(cfg):
    return {"_class_name": CLASS_NAME, **{k: getattr(cfg, k) for k in INT_KEYS + FLOAT_KEYS},
            **dict(REQUIRED)}


def parameter_shapes(cfg):
    """Every parameter of the diffusers layout with its shape ("Parameter names")."""
    d, ted, p, shapes = cfg.dim, cfg.time_embed_dim, cfg.patch_size, {}

    def lin(name, n_out, n_in):
        shapes[f"{name}.weight"] = (n_out, n_in)
        shapes[f"{name}.bias"] = (n_out,)

    def norm(name, width):
        shapes[f"{name}.weight"] = (width,)
        shapes[f"{name}.bias"] = (width,)

    shapes["patch_embed.proj.weight"] = (d, cfg.in_channels, p, p)
    shapes["patch_embed.proj.bias"] = (d,)
    lin("patch_embed.text_proj", d, cfg.text_embed_dim)
    lin("time_embedding.linear_1", ted, d)
    lin("time_embedding.linear_2", ted, ted)
    for i in range(cfg.num_layers):
        b = f"transformer_blocks.{i}"
        for n in ("norm1", "norm2"):
            lin(f"{b}.{n}.linear", 6 * d, ted)
            norm(f"{b}.{n}.norm", d)
        for proj in ("to_q", "to_k", "to_v", "to_out.0"):
            lin(f"{b}.attn1.{proj}", d, d)
        norm(f"{b}.attn1.norm_q", cfg.attention_head_dim)
        norm(f"{b}.attn1.norm_k", cfg.attention_head_dim)
        lin(f"{b}.ff.net.0.proj", 4 * d, d)
        lin(f"{b}.ff.net.2", d, 4 * d)
    norm("norm_final", d)
    lin("norm_out.linear", 2 * d, ted)
    norm("norm_out.norm", d)
    lin("proj_out", p * p * cfg.out_channels, d)
    return shapes


# ---------------------------------------------------------------- positions


def sincos(width, pos):
    """[sin(pos om), cos(pos om)], om_i = 10000^(-i / (width/2)), i < width/2."""
    om = 10000.0 ** (-torch.arange(width // 2, dtype=DTYPE) / (width / 2))
    angles = torch.outer(pos, om)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


def positions(cfg, grid):
    """[tokens, d] = [temporal (d/4) | spatial (3d/8 of the column, 3d/8 of the row)]."""
    f, h, w = (a.flatten().to(DTYPE) for a in torch.meshgrid(*(torch.arange(n) for n in grid), indexing="ij"))
    d, s = cfg.dim, cfg.spatial_interpolation_scale
    return torch.cat([sincos(d // 4, f / cfg.temporal_interpolation_scale),
                      sincos(3 * d // 8, w / s), sincos(3 * d // 8, h / s)], dim=-1)


def unpatchify(out, grid, patch, channels):
    """"Output": each token's values are ordered (channel, row, column), channel slowest."""
    frames, gh, gw = grid
    u = out.reshape(frames, gh, gw, channels, patch, patch).permute(3, 0, 1, 4, 2, 5)
    return u.reshape(channels, frames, gh * patch, gw * patch)


# ---------------------------------------------------------------- block


def layer_norm(cfg, p, name, x, eps=None):
    return F.layer_norm(x, (x.shape[-1],), p[f"{name}.weight"], p[f"{name}.bias"],
                        cfg.norm_eps if eps is None else eps)


def modulated(cfg, p, name, txt, vid, emb):
    """Block steps 1 and 3: one LayerNorm for both streams, each with its own shift and scale."""
    shift, scale, gate, e_shift, e_scale, e_gate = linear(p, f"{name}.linear", F.silu(emb)).chunk(6)
    nt = layer_norm(cfg, p, f"{name}.norm", txt) * (1 + e_scale) + e_shift
    nv = layer_norm(cfg, p, f"{name}.norm", vid) * (1 + scale) + shift
    return torch.cat([nt, nv]), e_gate, gate


def attention(cfg, p, b, z):
    n, hd = cfg.num_attention_heads, cfg.attention_head_dim

    def heads(proj):
        return linear(p, f"{b}.attn1.{proj}", z).reshape(z.shape[0], n, hd)

    q = layer_norm(cfg, p, f"{b}.attn1.norm_q", heads("to_q"), EPS_QK)
    k = layer_norm(cfg, p, f"{b}.attn1.norm_k", heads("to_k"), EPS_QK)
    a = common.tempered_attention(p, b, q, k, heads("to_v")).reshape(z.shape[0], cfg.dim)
    return linear(p, f"{b}.attn1.to_out.0", a)


def block(cfg, p, i, txt, vid, emb):
    b, L = f"transformer_blocks.{i}", txt.shape[0]
    z, e_gate, gate = modulated(cfg, p, f"{b}.norm1", txt, vid, emb)
    o = attention(cfg, p, b, z)
    txt, vid = txt + e_gate * o[:L], vid + gate * o[L:]
    z, e_gate, gate = modulated(cfg, p, f"{b}.norm2", txt, vid, emb)
    f = linear(p, f"{b}.ff.net.2", F.gelu(linear(p, f"{b}.ff.net.0.proj", z), approximate="tanh"))
    return txt + e_gate * f[:L], vid + gate * f[L:]


def forward(cfg, p, latents, timestep, context, mask=None):
    """latents [C, F, H, W], context [max_text_seq_length, text_embed_dim] -> velocity."""
    del mask  # CogVideoX attends to every text row
    if context.shape[0] != cfg.max_text_seq_length:
        raise ValueError(f"context has {context.shape[0]} rows, CogVideoX needs exactly "
                         f"max_text_seq_length {cfg.max_text_seq_length}")
    emb = linear(p, "time_embedding.linear_2",
                 F.silu(linear(p, "time_embedding.linear_1", timestep_sinusoid(timestep, cfg.dim))))
    txt = linear(p, "patch_embed.text_proj", context)
    vid, grid = patchify(latents, p["patch_embed.proj.weight"][:, :, None], p["patch_embed.proj.bias"])
    vid = vid + positions(cfg, grid)
    for i in range(cfg.num_layers):
        txt, vid = block(cfg, p, i, txt, vid, emb)
    vid = layer_norm(cfg, p, "norm_final", vid)
    shift, scale = linear(p, "norm_out.linear", F.silu(emb)).chunk(2)    # "Output": shift first
    vid = layer_norm(cfg, p, "norm_out.norm", vid) * (1 + scale) + shift
    return unpatchify(linear(p, "proj_out", vid), grid, cfg.patch_size, cfg.out_channels)


# ---------------------------------------------------------------- random fixtures


def std_of(key, shape):
    if len(shape) == 1 and ("norm" in key) and key.endswith(".weight"):
        return None
    if key.endswith(".bias"):
        return 0.1
    modulation = key.endswith("norm1.linear.weight") or key.endswith("norm2.linear.weight") \
        or key.startswith("norm_out.linear")
    return common.fan_in_std(shape, 0.5 if modulation else 1.0)


def make_random(a, gen):
    cfg = CogVideoXConfig(num_attention_heads=a.heads, attention_head_dim=a.head_dim, in_channels=a.channels,
                          out_channels=a.channels, time_embed_dim=a.time_dim, text_embed_dim=a.text_dim,
                          num_layers=a.layers, patch_size=a.patch, max_text_seq_length=a.text_len,
                          norm_eps=1e-5, spatial_interpolation_scale=a.spatial_scale_x8 / 8,
                          temporal_interpolation_scale=1.0)
    params = common.random_parameters(parameter_shapes(cfg), gen, std_of)
    timestep, inputs = common.random_inputs(gen, (cfg.in_channels, a.frames, a.height, a.width), cfg.out_channels,
                                            cfg.max_text_seq_length, cfg.text_embed_dim,
                                            cfg.max_text_seq_length, a.grad)
    if a.temperature:
        params.update(common.random_temperatures(gen, cfg.num_layers, cfg.num_attention_heads, a.temperature))
    return config_to_json(cfg), params, timestep, inputs


# spatial_interpolation_scale is given in eighths (15 = the released 1.875).
MODEL_FLAGS = (("patch", 2), ("heads", 2), ("head-dim", 8), ("layers", 2), ("channels", 3),
               ("text-dim", 10), ("time-dim", 12), ("text-len", 5), ("spatial-scale-x8", 15))
INPUT_FLAGS = (("frames", 2), ("height", 4), ("width", 6))

if __name__ == "__main__":
    common.main(sys.modules[__name__], sys.argv[1:], MODEL_FLAGS, INPUT_FLAGS)
