#!/usr/bin/env python3
"""Independent float64 reference of the Wan2.1 text-to-video transformer.

Written from the equations in /work/shared/WAN21.md (section numbers below cite its "Forward
pass"), not from vditkit's C++ code, so that parity tests compare two readings of the spec.
Every tensor is float64; plain torch functional ops; gradients come from torch autograd.

  wan_reference.py forward WEIGHTS.h5 INPUT.h5 OUTPUT.h5
  wan_reference.py sparsity WEIGHTS.h5 OUTPUT.h5 --keep 0.5,0.1 INPUT.h5...
  wan_reference.py make-random OUT_WEIGHTS.h5 OUT_INPUT.h5 [--dim 24 ... --seed 0 --grad]

WEIGHTS: one dataset per parameter named by its original Wan key, config as root attributes
(dim, ffn_dim, freq_dim, num_heads, num_layers, in_dim, out_dim, text_dim, text_len,
patch_size[3], eps, qk_norm, cross_attn_norm, model_type); optional per-head
"blocks.i.self_attn.temperature" divides that block's self-attention logits.
INPUT: latents [in_dim, F, H, W], scalar timestep, context [L, text_dim], optional
grad_velocity [out_dim, F, H, W]. OUTPUT: velocity, and with grad_velocity "grad/<key>" =
dL/d<key> for L = sum(velocity * grad_velocity), for every weight, latents and context.
"""

import argparse
import math
import sys
from dataclasses import dataclass

import h5py
import numpy as np
import torch
import torch.nn.functional as F

DTYPE = torch.float64
ROPE_THETA = 10000.0
SINUSOID_BASE = 10000.0


@dataclass(frozen=True)
class WanConfig:
    dim: int
    ffn_dim: int
    freq_dim: int
    num_heads: int
    num_layers: int
    in_dim: int
    out_dim: int
    text_dim: int
    text_len: int
    patch_size: tuple
    eps: float
    qk_norm: bool
    cross_attn_norm: bool
    model_type: str = "t2v"

    @property
    def head_dim(self):
        return self.dim // self.num_heads


INT_ATTRS = ("dim", "ffn_dim", "freq_dim", "num_heads", "num_layers", "in_dim", "out_dim",
             "text_dim", "text_len")


def temperature_key(i):
    return f"blocks.{i}.self_attn.temperature"


def parameter_shapes(cfg):
    """Every parameter of the original key layout with its shape (WAN21.md, "Parameters")."""
    d, shapes = cfg.dim, {}

    def linear(name, n_out, n_in):
        shapes[f"{name}.weight"] = (n_out, n_in)
        shapes[f"{name}.bias"] = (n_out,)

    shapes["patch_embedding.weight"] = (d, cfg.in_dim, *cfg.patch_size)
    shapes["patch_embedding.bias"] = (d,)
    linear("text_embedding.0", d, cfg.text_dim)
    linear("text_embedding.2", d, d)
    linear("time_embedding.0", d, cfg.freq_dim)
    linear("time_embedding.2", d, d)
    linear("time_projection.1", 6 * d, d)
    for i in range(cfg.num_layers):
        b = f"blocks.{i}"
        shapes[f"{b}.modulation"] = (1, 6, d)
        for attn in ("self_attn", "cross_attn"):
            for proj in "qkvo":
                linear(f"{b}.{attn}.{proj}", d, d)
            if cfg.qk_norm:
                shapes[f"{b}.{attn}.norm_q.weight"] = (d,)
                shapes[f"{b}.{attn}.norm_k.weight"] = (d,)
        if cfg.cross_attn_norm:
            shapes[f"{b}.norm3.weight"] = (d,)
            shapes[f"{b}.norm3.bias"] = (d,)
        linear(f"{b}.ffn.0", cfg.ffn_dim, d)
        linear(f"{b}.ffn.2", d, cfg.ffn_dim)
    shapes["head.modulation"] = (1, 2, d)
    linear("head.head", math.prod(cfg.patch_size) * cfg.out_dim, d)
    return shapes


def check_parameters(cfg, params):
    """Fail naming the key: every parameter present with its shape, nothing unexpected."""
    expected = parameter_shapes(cfg)
    optional = {temperature_key(i): (cfg.num_heads,) for i in range(cfg.num_layers)}
    for key in expected:
        if key not in params:
            raise ValueError(f"missing parameter {key}")
    for key, value in params.items():
        shape = expected.get(key, optional.get(key))
        if shape is None:
            raise ValueError(f"unexpected parameter {key}")
        if tuple(value.shape) != tuple(shape):
            raise ValueError(f"parameter {key} has shape {tuple(value.shape)}, expected {shape}")


# ---------------------------------------------------------------- files


def read_config(attrs):
    model_type = attrs.get("model_type", "t2v")
    if isinstance(model_type, bytes):
        model_type = model_type.decode()
    cfg = WanConfig(**{k: int(attrs[k]) for k in INT_ATTRS},
                    patch_size=tuple(int(p) for p in attrs["patch_size"]),
                    eps=float(attrs["eps"]), qk_norm=bool(attrs["qk_norm"]),
                    cross_attn_norm=bool(attrs["cross_attn_norm"]), model_type=str(model_type))
    if cfg.model_type != "t2v":
        raise ValueError(f"model_type {cfg.model_type!r}: only t2v is implemented")
    if cfg.dim % cfg.num_heads or cfg.head_dim % 2 or cfg.freq_dim % 2:
        raise ValueError(f"dim {cfg.dim} / heads {cfg.num_heads} / freq_dim {cfg.freq_dim} "
                         "must give an even head width and an even freq_dim")
    return cfg


def write_config(attrs, cfg):
    for k in INT_ATTRS:
        attrs[k] = getattr(cfg, k)
    attrs["patch_size"] = np.array(cfg.patch_size, dtype=np.int64)
    attrs["eps"] = cfg.eps
    attrs["qk_norm"] = int(cfg.qk_norm)
    attrs["cross_attn_norm"] = int(cfg.cross_attn_norm)
    attrs["model_type"] = cfg.model_type


def load_weights(path):
    with h5py.File(path, "r") as f:
        cfg = read_config(f.attrs)
        params = {k: torch.from_numpy(np.asarray(f[k], dtype=np.float64)) for k in f.keys()}
    check_parameters(cfg, params)
    return cfg, params


def load_inputs(path):
    with h5py.File(path, "r") as f:
        def tensor(k):
            return torch.from_numpy(np.asarray(f[k], dtype=np.float64))
        grad = tensor("grad_velocity") if "grad_velocity" in f else None
        return tensor("latents"), float(f["timestep"][()]), tensor("context"), grad


# ---------------------------------------------------------------- embeddings


def patchify(x, weight, bias):
    """Step 1: the Conv3d with kernel = stride = patch, as a reshape and one matmul.
    x [C, F, H, W] -> tokens [T, d] in (f, h, w) order, w fastest; also the grid."""
    d, c, pt, ph, pw = weight.shape
    _, nf, nh, nw = x.shape
    if nf % pt or nh % ph or nw % pw:
        raise ValueError(f"latents {tuple(x.shape)} not divisible by patch {(pt, ph, pw)}")
    grid = (nf // pt, nh // ph, nw // pw)
    patches = x.reshape(c, grid[0], pt, grid[1], ph, grid[2], pw)
    patches = patches.permute(1, 3, 5, 0, 2, 4, 6).reshape(math.prod(grid), c * pt * ph * pw)
    return F.linear(patches, weight.reshape(d, -1), bias), grid


def unpatchify(out, grid, patch, out_dim):
    """Step 6: token outputs ordered (p_t, p_h, p_w, c), c fastest -> [c, F, H, W]."""
    u = out.reshape(*grid, *patch, out_dim)           # f h w pt ph pw c
    u = u.permute(6, 0, 3, 1, 4, 2, 5)                # c f pt h ph w pw
    return u.reshape(out_dim, *(g * p for g, p in zip(grid, patch)))


def timestep_sinusoid(t, freq_dim):
    """Step 2: cosines first, w_j = 10000^(-j/half), in float64."""
    half = freq_dim // 2
    angles = t * SINUSOID_BASE ** (-torch.arange(half, dtype=DTYPE) / half)
    return torch.cat([torch.cos(angles), torch.sin(angles)])


def gelu_tanh(x):
    return F.gelu(x, approximate="tanh")


def linear(p, name, x):
    return F.linear(x, p[f"{name}.weight"], p[f"{name}.bias"])


def time_embedding(cfg, p, t):
    """Step 2: e [d] (used by the head) and e0 [6, d] (used by the blocks)."""
    e = linear(p, "time_embedding.2", F.silu(linear(p, "time_embedding.0",
                                                    timestep_sinusoid(t, cfg.freq_dim))))
    e0 = linear(p, "time_projection.1", F.silu(e)).reshape(6, cfg.dim)
    return e, e0


def text_embedding(cfg, p, context):
    """Step 3: zero rows up to text_len BEFORE the embedding; nothing is masked later."""
    if context.shape[0] > cfg.text_len:
        raise ValueError(f"context has {context.shape[0]} rows, text_len is {cfg.text_len}")
    padded = F.pad(context, (0, 0, 0, cfg.text_len - context.shape[0]))
    return linear(p, "text_embedding.2", gelu_tanh(linear(p, "text_embedding.0", padded)))


# ---------------------------------------------------------------- 3D RoPE


def rope_pair_split(head_dim):
    """Complex pairs per axis (frame, height, width): c - 2(c//3), c//3, c//3."""
    c = head_dim // 2
    return (c - 2 * (c // 3), c // 3, c // 3)


def rope_angles(head_dim, grid):
    """[T, head_dim/2] rotation angles; pair j of an axis with D = 2*pairs real dims turns by
    pos * theta^(-2j/D), pos being the token's index along that axis."""
    per_axis = []
    for axis, (pairs, size) in enumerate(zip(rope_pair_split(head_dim), grid)):
        freqs = ROPE_THETA ** (-2.0 * torch.arange(pairs, dtype=DTYPE) / (2 * pairs))
        table = torch.outer(torch.arange(size, dtype=DTYPE), freqs)      # [size, pairs]
        shape = [1, 1, 1, pairs]
        shape[axis] = size
        per_axis.append(table.reshape(shape).expand(*grid, pairs))
    return torch.cat(per_axis, dim=-1).reshape(math.prod(grid), head_dim // 2)


def apply_rope(x, angles):
    """x [T, n, hd]; rotates ADJACENT pairs (x[2j], x[2j+1]) as complex numbers."""
    pairs = x.reshape(*x.shape[:-1], -1, 2)
    re, im = pairs[..., 0], pairs[..., 1]
    cos, sin = torch.cos(angles)[:, None, :], torch.sin(angles)[:, None, :]
    return torch.stack([re * cos - im * sin, re * sin + im * cos], dim=-1).reshape(x.shape)


# ---------------------------------------------------------------- block


def rms_norm(x, weight, eps):
    """RMSNorm over the whole width d (not per head), with weight; identity without one."""
    if weight is None:
        return x
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


def layer_norm(x, eps, weight=None, bias=None):
    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)


def keep_top(probs, keep):
    """Each query (row) keeps its `keep` most probable keys, ties to the lower key index,
    renormalised over them."""
    order = torch.sort(probs, dim=-1, descending=True, stable=True).indices[..., :keep]
    kept = torch.zeros_like(probs).scatter(-1, order, 1.0) * probs
    return kept / kept.sum(dim=-1, keepdim=True)


def attention(cfg, p, name, x, kv, angles=None, temperature=None, keep=None):
    """Multi-head attention with RMS-normed q, k; RoPE only when angles are given; logits
    scaled by 1/sqrt(hd) and divided per head by temperature when given; with `keep`, each
    query attends only to its `keep` most probable keys (keep_top)."""
    n, hd = cfg.num_heads, cfg.head_dim
    q = rms_norm(linear(p, f"{name}.q", x), p.get(f"{name}.norm_q.weight"), cfg.eps)
    k = rms_norm(linear(p, f"{name}.k", kv), p.get(f"{name}.norm_k.weight"), cfg.eps)
    v = linear(p, f"{name}.v", kv)
    q, k, v = (z.reshape(z.shape[0], n, hd) for z in (q, k, v))
    if angles is not None:
        q, k = apply_rope(q, angles), apply_rope(k, angles)
    logits = torch.einsum("qnh,knh->nqk", q, k) / math.sqrt(hd)
    if temperature is not None:
        logits = logits / temperature[:, None, None]
    probs = torch.softmax(logits, dim=-1)
    if keep is not None:
        probs = keep_top(probs, keep)
    a = torch.einsum("nqk,knh->qnh", probs, v)
    return linear(p, f"{name}.o", a.reshape(x.shape[0], cfg.dim))


def block(cfg, p, i, x, e0, ctx, angles, keep=None):
    """Step 4; `keep` sparsifies the self-attention (keep_top)."""
    b = f"blocks.{i}"
    shift_sa, scale_sa, gate_sa, shift_ffn, scale_ffn, gate_ffn = (p[f"{b}.modulation"][0] + e0)
    h = layer_norm(x, cfg.eps) * (1 + scale_sa) + shift_sa
    x = x + attention(cfg, p, f"{b}.self_attn", h, h, angles, p.get(temperature_key(i)), keep) * gate_sa
    if cfg.cross_attn_norm:  # otherwise norm3 is the identity, not a parameter-free LN
        h = layer_norm(x, cfg.eps, p[f"{b}.norm3.weight"], p[f"{b}.norm3.bias"])
    else:
        h = x
    x = x + attention(cfg, p, f"{b}.cross_attn", h, ctx)            # no gate
    h = layer_norm(x, cfg.eps) * (1 + scale_ffn) + shift_ffn
    return x + linear(p, f"{b}.ffn.2", gelu_tanh(linear(p, f"{b}.ffn.0", h))) * gate_ffn


def forward(cfg, p, latents, timestep, context, keep=None, sparse_blocks=(), outputs=None):
    """The whole model: latents [in_dim, F, H, W], context [L, text_dim] -> velocity
    [out_dim, F, H, W]. The blocks in `sparse_blocks` keep `keep` keys per query in their
    self-attention; `outputs` (a list) gets every block's output."""
    x, grid = patchify(latents, p["patch_embedding.weight"], p["patch_embedding.bias"])
    e, e0 = time_embedding(cfg, p, timestep)
    ctx = text_embedding(cfg, p, context)
    angles = rope_angles(cfg.head_dim, grid)
    for i in range(cfg.num_layers):
        x = block(cfg, p, i, x, e0, ctx, angles, keep if i in sparse_blocks else None)
        if outputs is not None:
            outputs.append(x)
    shift, scale = p["head.modulation"][0] + e                        # step 5: e, not e0
    out = linear(p, "head.head", layer_norm(x, cfg.eps) * (1 + scale) + shift)
    return unpatchify(out, grid, cfg.patch_size, cfg.out_dim)


def forward_and_gradients(cfg, params, latents, timestep, context, grad_velocity):
    """velocity, and with grad_velocity the gradients of L = sum(velocity * grad_velocity)
    w.r.t. every parameter and both inputs (keys as written under "grad/")."""
    if grad_velocity is None:
        with torch.no_grad():
            return forward(cfg, params, latents, timestep, context), {}
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    leaves["latents"] = latents.clone().requires_grad_(True)
    leaves["context"] = context.clone().requires_grad_(True)
    velocity = forward(cfg, leaves, leaves["latents"], timestep, leaves["context"])
    names = list(leaves)
    grads = torch.autograd.grad((velocity * grad_velocity).sum(), [leaves[k] for k in names])
    return velocity.detach(), dict(zip(names, grads))


def run_forward(weights_path, input_path, output_path):
    cfg, params = load_weights(weights_path)
    latents, timestep, context, grad_velocity = load_inputs(input_path)
    velocity, grads = forward_and_gradients(cfg, params, latents, timestep, context,
                                            grad_velocity)
    with h5py.File(output_path, "w") as f:
        f["velocity"] = velocity.numpy()
        for key, g in grads.items():
            f[f"grad/{key}"] = g.numpy()


def relative_errors(pairs):
    """sqrt(sum (masked - dense)^2) / sqrt(sum dense^2) over (masked, dense) pairs."""
    diff = sum(float(((m - d) ** 2).sum()) for m, d in pairs)
    norm = sum(float((d ** 2).sum()) for _, d in pairs)
    return math.sqrt(diff / norm)


def run_sparsity(weights_path, output_path, keeps, input_paths):
    """The sparsity study of issue 16 on the given inputs (each one probe sample at one noise
    level): velocity_error and block_output_error [blocks, levels] with one block's
    self-attention sparsified, all_blocks_velocity_error [levels] with every block's."""
    cfg, params = load_weights(weights_path)
    inputs = [load_inputs(path)[:3] for path in input_paths]
    blocks = range(cfg.num_layers)
    with torch.no_grad():
        dense = []
        for latents, t, ctx in inputs:
            outs = []
            dense.append((forward(cfg, params, latents, t, ctx, outputs=outs), outs))
        velocity, output, all_blocks = [], [], []
        for fraction in keeps:
            tokens = dense[0][1][0].shape[0]
            keep = min(max(math.ceil(fraction * tokens - 1e-9), 1), tokens)
            v_row, o_row = [], []
            for b in blocks:
                v_pairs, o_pairs = [], []
                for (latents, t, ctx), (v, outs) in zip(inputs, dense):
                    masked_outs = []
                    v_pairs.append((forward(cfg, params, latents, t, ctx, keep, (b,), masked_outs), v))
                    o_pairs.append((masked_outs[b], outs[b]))
                v_row.append(relative_errors(v_pairs))
                o_row.append(relative_errors(o_pairs))
            velocity.append(v_row)
            output.append(o_row)
            all_blocks.append(relative_errors(
                [(forward(cfg, params, latents, t, ctx, keep, tuple(blocks)), v)
                 for (latents, t, ctx), (v, _) in zip(inputs, dense)]))
    with h5py.File(output_path, "w") as f:
        f["velocity_error"] = np.array(velocity).T
        f["block_output_error"] = np.array(output).T
        f["all_blocks_velocity_error"] = np.array(all_blocks)


# ---------------------------------------------------------------- random fixtures


def random_parameters(cfg, gen, temperature):
    """Normal weights with std 1/sqrt(fan_in) so activations stay O(1); norm weights near 1;
    modulation and time_projection small so that scales and gates stay near their identity."""
    def normal(shape, std):
        return torch.randn(shape, generator=gen, dtype=DTYPE) * std

    params = {}
    for key, shape in parameter_shapes(cfg).items():
        if "norm" in key and key.endswith(".weight"):
            params[key] = 1 + normal(shape, 0.1)
        elif key.endswith("modulation"):
            params[key] = normal(shape, 0.1)
        elif key.endswith(".weight"):
            fan_in = math.prod(shape[1:])
            small = 0.2 if key.startswith("time_projection") else 1.0
            params[key] = normal(shape, small / math.sqrt(fan_in))
        else:
            params[key] = normal(shape, 0.1)
    if temperature:
        for i in range(cfg.num_layers):
            params[temperature_key(i)] = 0.5 + torch.rand(cfg.num_heads, generator=gen,
                                                          dtype=DTYPE)
    return params


def random_inputs(cfg, gen, frames, height, width, ctx_len, grad):
    latents = torch.randn(cfg.in_dim, frames, height, width, generator=gen, dtype=DTYPE)
    timestep = float(torch.rand((), generator=gen, dtype=DTYPE)) * 1000
    context = torch.randn(ctx_len, cfg.text_dim, generator=gen, dtype=DTYPE)
    grad_velocity = torch.randn(cfg.out_dim, *latents.shape[1:], generator=gen,
                                dtype=DTYPE) if grad else None
    return latents, timestep, context, grad_velocity


def write_random(weights_path, input_path, cfg, params, inputs):
    with h5py.File(weights_path, "w") as f:
        write_config(f.attrs, cfg)
        for key, value in params.items():
            f[key] = value.numpy().astype(np.float32)
    latents, timestep, context, grad_velocity = inputs
    with h5py.File(input_path, "w") as f:
        f["latents"] = latents.numpy().astype(np.float32)
        f["timestep"] = np.float32(timestep)
        f["context"] = context.numpy().astype(np.float32)
        if grad_velocity is not None:
            f["grad_velocity"] = grad_velocity.numpy().astype(np.float32)


def config_from_args(a):
    return WanConfig(dim=a.dim, ffn_dim=a.ffn, freq_dim=a.freq, num_heads=a.heads,
                     num_layers=a.layers, in_dim=a.in_dim, out_dim=a.out_dim,
                     text_dim=a.text_dim, text_len=a.text_len, patch_size=tuple(a.patch),
                     eps=a.eps, qk_norm=not a.no_qk_norm,
                     cross_attn_norm=not a.no_cross_attn_norm)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fwd = sub.add_parser("forward", help="velocity (and gradients) of one sample")
    for name in ("weights", "input", "output"):
        fwd.add_argument(name)
    sp = sub.add_parser("sparsity", help="the sparsity study's errors over some inputs")
    sp.add_argument("weights")
    sp.add_argument("output")
    sp.add_argument("--keep", required=True, help="fractions of keys kept, comma-separated")
    sp.add_argument("inputs", nargs="+")
    rnd = sub.add_parser("make-random", help="random float32 weights and inputs")
    rnd.add_argument("weights")
    rnd.add_argument("input")
    for flag, default in (("dim", 24), ("heads", 2), ("layers", 2), ("ffn", 40), ("freq", 16),
                          ("in-dim", 4), ("out-dim", 4), ("text-dim", 12), ("text-len", 7),
                          ("frames", 2), ("height", 6), ("width", 4), ("ctx-len", 5),
                          ("seed", 0)):
        rnd.add_argument(f"--{flag}", type=int, default=default)
    rnd.add_argument("--patch", type=int, nargs=3, default=[1, 2, 2])
    rnd.add_argument("--eps", type=float, default=1e-6)
    rnd.add_argument("--no-qk-norm", action="store_true")
    rnd.add_argument("--no-cross-attn-norm", action="store_true")
    rnd.add_argument("--temperature", action="store_true",
                     help="add per-head self-attention temperatures")
    rnd.add_argument("--grad", action="store_true", help="add grad_velocity to the input")
    return parser.parse_args(argv)


def main(argv):
    a = parse_args(argv)
    if a.command == "forward":
        run_forward(a.weights, a.input, a.output)
        return
    if a.command == "sparsity":
        run_sparsity(a.weights, a.output, [float(k) for k in a.keep.split(",")], a.inputs)
        return
    cfg = config_from_args(a)
    gen = torch.Generator().manual_seed(a.seed)
    params = random_parameters(cfg, gen, a.temperature)
    inputs = random_inputs(cfg, gen, a.frames, a.height, a.width, a.ctx_len, a.grad)
    write_random(a.weights, a.input, cfg, params, inputs)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (ValueError, KeyError, OSError) as err:
        sys.exit(f"wan_reference.py: {err}")
