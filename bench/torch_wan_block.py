"""PyTorch's time for one Wan2.1 block forward + backward, all block parameters trainable, or
(--frozen) for its forward alone with every parameter frozen, as a frozen block of a retrain.

The block is the float64 reference's (tests/reference/wan_reference.py) run in float32, or
with --dtype bf16 in bfloat16 throughout (weights, activations and the RoPE angles), so both
sides compute the same equations; runs on --threads threads (intra-op; inter-op 1); prints
the median seconds per step on stdout.
"""
import argparse
import math
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "reference"))
import wan_reference as ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=1536)
    ap.add_argument("--ffn", type=int, default=8960)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--grid", type=int, nargs=3, default=[4, 16, 16])
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--frozen", action="store_true", help="forward only, no parameter trains")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    torch.manual_seed(0)
    cfg = ref.WanConfig(dim=a.dim, ffn_dim=a.ffn, freq_dim=256, num_heads=a.heads, num_layers=1,
                        in_dim=16, out_dim=16, text_dim=4096, text_len=a.context,
                        patch_size=(1, 2, 2), eps=1e-6, qk_norm=True, cross_attn_norm=True)
    params = {k: (torch.randn(s) / math.sqrt(s[-1])).to(dtype).requires_grad_(not a.frozen)
              for k, s in ref.parameter_shapes(cfg).items() if k.startswith("blocks.0.")}
    tokens = math.prod(a.grid)
    x = torch.randn(tokens, a.dim).to(dtype)
    e0 = (torch.randn(6, a.dim) * 0.1).to(dtype)
    ctx = torch.randn(a.context, a.dim).to(dtype)
    angles = ref.rope_angles(cfg.head_dim, tuple(a.grid)).to(dtype)
    upstream = torch.randn(tokens, a.dim).to(dtype)

    def step():
        if a.frozen:
            with torch.no_grad():
                ref.block(cfg, params, 0, x, e0, ctx, angles)
            return
        for p in params.values():
            p.grad = None
        (ref.block(cfg, params, 0, x, e0, ctx, angles) * upstream).sum().backward()

    step()  # warm-up
    times = []
    for _ in range(a.runs):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    print(statistics.median(times))


if __name__ == "__main__":
    main()
