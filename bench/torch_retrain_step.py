"""PyTorch's time and peak memory for one retraining step of a 1.3B-shaped Wan2.1 model:
every parameter frozen (requires_grad False) except one block's, flow-matching loss,
backward, AdamW step. The model is the reference (tests/reference/wan_reference.py) run in
float32. Prints "seconds peak_mib" on stdout.
"""
import argparse
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "reference"))
import wan_reference as ref  # noqa: E402

ref.DTYPE = torch.float32  # the reference's float64 tables become float32 like the weights


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--train-block", type=int, default=20)
    ap.add_argument("--grid", type=int, nargs=3, default=[4, 32, 32], help="latent F H W")
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = ref.WanConfig(dim=1536, ffn_dim=8960, freq_dim=256, num_heads=12, num_layers=a.layers,
                        in_dim=16, out_dim=16, text_dim=4096, text_len=512, patch_size=(1, 2, 2),
                        eps=1e-6, qk_norm=True, cross_attn_norm=True)
    trained = f"blocks.{a.train_block}."
    params = {}
    for k, s in ref.parameter_shapes(cfg).items():
        bound = math.sqrt(3.0 / s[-1])  # std 1/sqrt(fan_in), as the C++ side draws them
        params[k] = ((torch.rand(s) * 2 - 1) * bound).requires_grad_(k.startswith(trained))
    trainable = [p for p in params.values() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-5)
    x0 = torch.randn(16, *a.grid)
    context = torch.randn(a.context, 4096)

    def step():
        sigma = float(torch.rand(()))
        noise = torch.randn_like(x0)
        x = (1 - sigma) * x0 + sigma * noise
        v = ref.forward(cfg, params, x, 1000 * sigma, context)
        F.mse_loss(v, noise - x0).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up (also creates the optimizer's moments)
    times = []
    for _ in range(a.runs):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(statistics.median(times), peak_mib)


if __name__ == "__main__":
    main()
