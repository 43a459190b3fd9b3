"""PyTorch's time and memory for one Mochi-1 or CogVideoX-2b block forward + backward
(`vditkit-bench families`), every block parameter trainable.

The block is the float64 reference's (tests/reference/mochi_reference.py, cogvideox_reference.py,
written from MOCHI.md and COGVIDEOX.md) run in float32 on the CPU; with --device cuda: float32
master weights under bfloat16 autocast, as torch_gpu.py runs Wan. The references' attention
(which forms the whole map) is replaced by F.scaled_dot_product_attention wherever PyTorch has
it (2.0 on; PyTorch's fastest attention: its fused kernels), on both devices. Block 0 of the released config (not the last block: Mochi's text stream goes on); the step
is the backward of sum(visual * u) + sum(text * u_text). Mochi's caption has no padding (mask
None; vditkit passes none either for a caption without padding). Prints the median seconds per
step and the peak memory (MiB), and on the GPU what the forward holds for the backward (MiB):
on the CPU the resident set's peak above what the process held before the block's parameters,
on the GPU the most allocated during a step above what was allocated before it.

--check WEIGHTS.h5 INPUTS.h5 OUT.h5 runs one float32 CPU step on the weights a reference's
make-random wrote and the block inputs in INPUTS.h5, and writes the block's outputs and the
gradients "grad/<key>" of block 0's parameters (tests/test_torch_family_block.cpp).
"""
import argparse
import contextlib
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "reference"))
import cogvideox_reference as cogvideox  # noqa: E402
import mochi_reference as mochi  # noqa: E402
import reference_common as common  # noqa: E402

BLOCK = "transformer_blocks.0."


class Mochi:
    reference = mochi
    # diffusers' MochiTransformer3DModel config of genmo/mochi-1-preview (MOCHI.md, "Config").
    released = {"_class_name": mochi.CLASS_NAME, "patch_size": 2, "num_attention_heads": 24,
                "attention_head_dim": 128, "num_layers": 48, "pooled_projection_dim": 1536, "in_channels": 12,
                "out_channels": None, "text_embed_dim": 4096, "time_embed_dim": 256, "max_sequence_length": 256}

    @staticmethod
    def input_shapes(cfg, tokens, text_rows):
        return {"visual": (tokens, cfg.dim), "text": (text_rows, cfg.pooled_projection_dim), "c": (cfg.dim,),
                "pos_frequencies": (3, cfg.num_attention_heads, cfg.attention_head_dim // 2)}

    @staticmethod
    def runner(cfg, inputs, grid):
        """The block as a function of its parameters: (visual, text) out."""
        angles = mochi.rope_angles(inputs["pos_frequencies"].cpu().double(), grid).to(inputs["c"])
        return lambda p: mochi.block(cfg, p, 0, inputs["visual"], inputs["text"], inputs["c"], None, angles)


class CogVideoX:
    reference = cogvideox
    # diffusers' CogVideoXTransformer3DModel config of THUDM/CogVideoX-2b (COGVIDEOX.md, "Config").
    released = {"_class_name": cogvideox.CLASS_NAME, "num_attention_heads": 30, "attention_head_dim": 64,
                "in_channels": 16, "out_channels": 16, "time_embed_dim": 512, "text_embed_dim": 4096,
                "num_layers": 30, "patch_size": 2, "max_text_seq_length": 226, "norm_eps": 1e-5,
                "spatial_interpolation_scale": 1.875, "temporal_interpolation_scale": 1.0}

    @staticmethod
    def input_shapes(cfg, tokens, text_rows):
        return {"visual": (tokens, cfg.dim), "text": (text_rows, cfg.dim), "c": (cfg.time_embed_dim,)}

    @staticmethod
    def runner(cfg, inputs, grid):
        def run(p):
            text, video = cogvideox.block(cfg, p, 0, inputs["text"], inputs["visual"], inputs["c"])
            return video, text
        return run


FAMILIES = {"mochi": Mochi, "cogvideox": CogVideoX}


def sdpa(p, block, q, k, v):
    """reference_common.tempered_attention through scaled_dot_product_attention ([T, n, hd]);
    the benchmarked blocks have no temperature. As [1, n, T, hd]: PyTorch's fused kernels take
    4-dimensional inputs only and fall back to materialising the map for any other."""
    assert f"{block}.{common.TEMPERATURE}" not in p
    heads_first = [t.transpose(0, 1).unsqueeze(0) for t in (q, k, v)]
    return F.scaled_dot_product_attention(*heads_first).squeeze(0).transpose(0, 1)


def loss(run, params, upstream):
    visual, text = run(params)
    return (visual.float() * upstream["visual"]).sum() + (text.float() * upstream["text"]).sum()


def resident_mib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return math.nan


def check(family, weights_path, inputs_path, out_path):
    import h5py
    import numpy as np

    cfg, params = common.load_weights(weights_path, family.reference)
    params = {k: v.float().requires_grad_(k.startswith(BLOCK)) for k, v in params.items()}
    with h5py.File(inputs_path, "r") as f:
        inputs = {k: torch.from_numpy(np.asarray(f[k], dtype=np.float32)) for k in f.keys() if k != "grid"}
        grid = tuple(int(n) for n in f["grid"][()])
    upstream = {k: inputs.pop("upstream_" + k) for k in ("visual", "text")}
    run = family.runner(cfg, inputs, grid)
    visual, text = run(params)
    ((visual * upstream["visual"]).sum() + (text * upstream["text"]).sum()).backward()
    with h5py.File(out_path, "w") as f:
        f["visual"], f["text"] = visual.detach().numpy(), text.detach().numpy()
        for k, v in params.items():
            if v.requires_grad:
                f[f"grad/{k}"] = v.grad.numpy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", choices=sorted(FAMILIES), required=True)
    ap.add_argument("--grid", type=int, nargs=3, default=[4, 32, 32], help="video tokens per frame, row, column")
    ap.add_argument("--text", type=int, help="caption rows (default: the config's maximum)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--check", nargs=3, metavar=("WEIGHTS", "INPUTS", "OUT"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    family = FAMILIES[a.family]
    if a.check:
        check(family, *a.check)
        return
    cuda = a.device == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit("torch_family_block.py: PyTorch sees no CUDA device")
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
    if hasattr(F, "scaled_dot_product_attention"):
        common.tempered_attention = sdpa
    else:
        print("torch_family_block.py: PyTorch", torch.__version__, "has no scaled_dot_product_attention;"
              " the reference's attention (the whole map) is timed", file=sys.stderr)
    torch.manual_seed(0)
    cpu_base = resident_mib("VmRSS")  # PyTorch loaded, nothing of the block yet
    cfg = family.reference.config_from_json(family.released)
    text_rows = a.text or getattr(cfg, "max_sequence_length", None) or cfg.max_text_seq_length
    device = torch.device(a.device)
    params = {k: (torch.randn(s, device=device) / math.sqrt(s[-1])).requires_grad_(True)
              for k, s in family.reference.parameter_shapes(cfg).items() if k.startswith(BLOCK)}
    activations = torch.bfloat16 if cuda else torch.float32
    shapes = family.input_shapes(cfg, math.prod(a.grid), text_rows)
    inputs = {k: (torch.randn(s, device=device) * (0.05 if k == "pos_frequencies" else 1)).to(
        torch.float32 if k in ("c", "pos_frequencies") else activations) for k, s in shapes.items()}
    upstream = {k: torch.randn(shapes[k], device=device) for k in ("visual", "text")}
    run = family.runner(cfg, inputs, tuple(a.grid))

    def step():
        for p in params.values():
            p.grad = None
        with torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext():
            value = loss(run, params, upstream)
        value.backward()
        if cuda:
            torch.cuda.synchronize()

    step()  # warm-up
    for p in params.values():
        p.grad = None
    if cuda:
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(a.runs):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    if not cuda:
        print(statistics.median(times), max(resident_mib("VmHWM"), resident_mib("VmRSS")) - cpu_base)
        return
    peak = (torch.cuda.max_memory_allocated() - before) / 2**20
    # What the forward leaves for the backward (activations), as vditkit-bench reports its own.
    for p in params.values():
        p.grad = None
    before = torch.cuda.memory_allocated()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        value = loss(run, params, upstream)
    torch.cuda.synchronize()
    held = (torch.cuda.memory_allocated() - before) / 2**20
    value.backward()
    print(statistics.median(times), peak, held)


if __name__ == "__main__":
    main()
