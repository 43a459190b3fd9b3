"""PyTorch's figures on the GPU for `vditkit-bench gpu`, at the Wan2.1-1.3B shapes.

The Wan block of tests/reference/wan_reference.py written for speed the way PyTorch users run it:
bf16 weights and activations, F.scaled_dot_product_attention, random weights of the 1.3B shapes.
For each token grid prints one line of four numbers on stdout, milliseconds (the median of runs):
  one block forward + backward, all its parameters trainable (fp32 master weights, bf16 compute
      through autocast), backward of sum(out * upstream);
  the 30-block forward, no gradients (bf16 weights);
  scaled_dot_product_attention forward + backward, [1, 12, N, 128];
  the largest GEMM of a block, [N, 1536] x [1536, 8960], bf16.
With --training, instead, per token grid one line of six numbers: the retraining step of block 20
(blocks 0-19 frozen and run without a graph, 21-29 frozen in the graph, the flow-matching loss,
AdamW on block 20's fp32 parameters, autocast bf16) in seconds and its peak GPU memory in GiB, then
the temperature-tuning step (every weight frozen, a log temperature per head of every block's
self-attention learnt with AdamW) likewise, each "nan nan" where it runs out of memory.
Exits non-zero where PyTorch has no CUDA device.
"""
import argparse
import math
import sys

import torch
import torch.nn.functional as F

DIM, FFN, HEADS, TEXT_LEN, TEXT_DIM, LAYERS, EPS = 1536, 8960, 12, 512, 4096, 30, 1e-6
IN_DIM, FREQ_DIM, PATCH, TRAIN_BLOCK = 16, 256, (1, 2, 2), 20
HEAD_DIM = DIM // HEADS


def block_params(dtype, requires_grad):
    def w(*shape):
        return (torch.randn(*shape, device="cuda") / math.sqrt(shape[-1])).to(dtype).requires_grad_(requires_grad)

    p = {"modulation": w(1, 6, DIM), "norm3.weight": w(DIM), "norm3.bias": w(DIM),
         "ffn.0.weight": w(FFN, DIM), "ffn.0.bias": w(FFN), "ffn.2.weight": w(DIM, FFN), "ffn.2.bias": w(DIM)}
    for a in ("self_attn", "cross_attn"):
        for n in "qkvo":
            p[f"{a}.{n}.weight"], p[f"{a}.{n}.bias"] = w(DIM, DIM), w(DIM)
        p[f"{a}.norm_q.weight"], p[f"{a}.norm_k.weight"] = w(DIM), w(DIM)
    return p


def rope_tables(grid):
    c = HEAD_DIM // 2
    pairs = (c - 2 * (c // 3), c // 3, c // 3)
    parts = []
    for axis, (n, size) in enumerate(zip(pairs, grid)):
        freqs = 10000.0 ** (-2.0 * torch.arange(n, dtype=torch.float64) / (2 * n))
        table = torch.outer(torch.arange(size, dtype=torch.float64), freqs)
        shape = [1, 1, 1, n]
        shape[axis] = size
        parts.append(table.reshape(shape).expand(*grid, n))
    angles = torch.cat(parts, dim=-1).reshape(math.prod(grid), c).cuda()
    return torch.cos(angles).float(), torch.sin(angles).float()


def rope(x, cos, sin):  # x [B, N, H, hd], adjacent pairs rotate
    x = x.float().unflatten(-1, (-1, 2))
    a, b = x[..., 0], x[..., 1]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.stack((a * c - b * s, a * s + b * c), dim=-1).flatten(-2)


def rms_norm(x, weight):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + EPS)).to(x.dtype) * weight


def attention(p, name, x, kv, tables=None, log_tau=None):
    b = x.shape[0]
    q = rms_norm(F.linear(x, p[f"{name}.q.weight"], p[f"{name}.q.bias"]), p[f"{name}.norm_q.weight"])
    k = rms_norm(F.linear(kv, p[f"{name}.k.weight"], p[f"{name}.k.bias"]), p[f"{name}.norm_k.weight"])
    v = F.linear(kv, p[f"{name}.v.weight"], p[f"{name}.v.bias"])
    q, k, v = (z.unflatten(-1, (HEADS, HEAD_DIM)) for z in (q, k, v))
    if tables is not None:
        q, k = (rope(z, *tables).to(v.dtype) for z in (q, k))
    if log_tau is not None:  # logits divided by the head's temperature
        q = (q * torch.exp(-log_tau)[None, None, :, None]).to(v.dtype)
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return F.linear(out.transpose(1, 2).reshape(b, -1, DIM), p[f"{name}.o.weight"], p[f"{name}.o.bias"])


def block(p, x, e0, ctx, tables):
    m = (p["modulation"] + e0).chunk(6, dim=1)
    h = F.layer_norm(x, (DIM,), eps=EPS) * (1 + m[1]) + m[0]
    x = x + attention(p, "self_attn", h, h, tables, p.get("self_attn.log_tau")) * m[2]
    x = x + attention(p, "cross_attn", F.layer_norm(x, (DIM,), p["norm3.weight"], p["norm3.bias"], EPS), ctx)
    h = F.layer_norm(x, (DIM,), eps=EPS) * (1 + m[4]) + m[3]
    y = F.linear(F.gelu(F.linear(h, p["ffn.0.weight"], p["ffn.0.bias"]), approximate="tanh"),
                 p["ffn.2.weight"], p["ffn.2.bias"])
    return x + y * m[5]


def milliseconds(fn, runs):
    fn()  # warm-up
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(runs):
        torch.cuda.synchronize()
        start.record()
        fn()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop))
    return sorted(times)[len(times) // 2]


def figures(grid, runs):
    tokens = math.prod(grid)
    tables = rope_tables(grid)
    x = torch.randn(1, tokens, DIM, device="cuda", dtype=torch.bfloat16)
    e0 = torch.randn(1, 6, DIM, device="cuda") * 0.1
    ctx = torch.randn(1, TEXT_LEN, DIM, device="cuda", dtype=torch.bfloat16)
    upstream = torch.randn(1, tokens, DIM, device="cuda", dtype=torch.bfloat16)
    out = {}

    trainable = block_params(torch.float32, True)

    def fwd_bwd():
        for t in trainable.values():
            t.grad = None
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = (block(trainable, x, e0, ctx, tables).float() * upstream).sum()
        loss.backward()

    out["block_fwd_bwd_ms"] = milliseconds(fwd_bwd, runs)
    del trainable

    frozen = [block_params(torch.bfloat16, False) for _ in range(LAYERS)]

    @torch.no_grad()
    def forward():
        h = x
        for p in frozen:
            h = block(p, h, e0.bfloat16(), ctx, tables)
        return h

    out["forward_ms"] = milliseconds(forward, runs)
    del frozen

    q, k, v = (torch.randn(1, HEADS, tokens, HEAD_DIM, device="cuda", dtype=torch.bfloat16, requires_grad=True)
               for _ in range(3))
    dout = torch.randn_like(q)

    def attention_step():
        torch.autograd.grad(F.scaled_dot_product_attention(q, k, v), (q, k, v), dout)

    out["attention_ms"] = milliseconds(attention_step, runs)
    a = torch.randn(tokens, DIM, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(DIM, FFN, device="cuda", dtype=torch.bfloat16)
    out["gemm_ms"] = milliseconds(lambda: a @ b, runs)
    return out


def embedding_params():
    def w(*shape):
        return (torch.randn(*shape, device="cuda") / math.sqrt(shape[-1])).to(torch.bfloat16)

    return {"patch.weight": w(DIM, IN_DIM * math.prod(PATCH)), "patch.bias": w(DIM),
            "text.0.weight": w(DIM, TEXT_DIM), "text.0.bias": w(DIM), "text.2.weight": w(DIM, DIM), "text.2.bias": w(DIM),
            "time.0.weight": w(DIM, FREQ_DIM), "time.0.bias": w(DIM), "time.2.weight": w(DIM, DIM), "time.2.bias": w(DIM),
            "projection.weight": w(6 * DIM, DIM), "projection.bias": w(6 * DIM), "head.modulation": w(1, 2, DIM),
            "head.weight": w(IN_DIM * math.prod(PATCH), DIM), "head.bias": w(IN_DIM * math.prod(PATCH))}


def model_forward(emb, blocks, latents, sigma, context, tables, first_in_graph):
    """Wan2.1's forward on latents [1, C, F, H, W]; blocks before first_in_graph without a graph."""
    _, c, nf, nh, nw = latents.shape
    grid = (nf // PATCH[0], nh // PATCH[1], nw // PATCH[2])
    lin = lambda x, n: F.linear(x, emb[f"{n}.weight"], emb[f"{n}.bias"])  # noqa: E731
    with torch.no_grad():
        patches = latents.reshape(c, grid[0], PATCH[0], grid[1], PATCH[1], grid[2], PATCH[2])
        patches = patches.permute(1, 3, 5, 0, 2, 4, 6).reshape(1, math.prod(grid), -1)
        x = lin(patches.to(torch.bfloat16), "patch")
        half = FREQ_DIM // 2
        angles = 1000 * sigma * 10000.0 ** (-torch.arange(half, device="cuda", dtype=torch.float64) / half)
        sinusoid = torch.cat([torch.cos(angles), torch.sin(angles)]).to(torch.bfloat16)[None]
        e = lin(F.silu(lin(sinusoid, "time.0")), "time.2")
        e0 = lin(F.silu(e), "projection").unflatten(-1, (6, DIM))
        ctx = lin(F.gelu(lin(context.to(torch.bfloat16), "text.0"), approximate="tanh"), "text.2")
        for p in blocks[:first_in_graph]:
            x = block(p, x, e0, ctx, tables)
    for p in blocks[first_in_graph:]:
        x = block(p, x, e0, ctx, tables)
    shift, scale = (emb["head.modulation"] + e[:, None]).chunk(2, dim=1)
    return lin(F.layer_norm(x, (DIM,), eps=EPS) * (1 + scale) + shift, "head")


def training_step_figures(grid, runs, trainable, first_in_graph, blocks, emb):
    """Seconds per step and peak GiB of AdamW steps on `trainable`, or nan nan out of memory."""
    tokens = math.prod(grid)
    tables = rope_tables(grid)
    x0 = torch.randn(1, IN_DIM, grid[0] * PATCH[0], grid[1] * PATCH[1], grid[2] * PATCH[2], device="cuda")
    context = torch.randn(1, TEXT_LEN, TEXT_DIM, device="cuda")
    optimizer = torch.optim.AdamW(trainable, lr=1e-5)

    def step():
        sigma = float(torch.rand(()))
        noise = torch.randn_like(x0)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            v = model_forward(emb, blocks, (1 - sigma) * x0 + sigma * noise, sigma, context, tables, first_in_graph)
        target = (noise - x0).reshape(1, IN_DIM, grid[0], PATCH[0], grid[1], PATCH[1], grid[2], PATCH[2])
        target = target.permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(1, tokens, -1)  # the head's token order
        F.mse_loss(v.float(), target).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    try:
        step()  # warm-up; creates the moments
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        seconds = milliseconds(step, runs) / 1e3
        return seconds, torch.cuda.max_memory_allocated() / 2**30
    except torch.cuda.OutOfMemoryError:
        return math.nan, math.nan
    finally:
        del optimizer
        torch.cuda.empty_cache()


def training_figures(grid, runs):
    emb = embedding_params()
    blocks = [block_params(torch.bfloat16, False) for _ in range(LAYERS)]
    blocks[TRAIN_BLOCK] = block_params(torch.float32, True)
    retrain = training_step_figures(grid, runs, list(blocks[TRAIN_BLOCK].values()), TRAIN_BLOCK, blocks, emb)
    blocks[TRAIN_BLOCK] = block_params(torch.bfloat16, False)
    temperatures = [torch.zeros(HEADS, device="cuda", requires_grad=True) for _ in range(LAYERS)]
    for p, t in zip(blocks, temperatures):
        p["self_attn.log_tau"] = t
    tune = training_step_figures(grid, runs, temperatures, 0, blocks, emb)
    return retrain + tune


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grids", type=int, nargs="+", default=[4, 32, 32, 21, 30, 52],
                    help="token grids (frames, height, width), three numbers each")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--training", action="store_true", help="the retraining and temperature-tuning steps instead")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("torch_gpu.py: PyTorch sees no CUDA device")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = False
    for i in range(0, len(a.grids), 3):
        if a.training:
            print(*training_figures(tuple(a.grids[i:i + 3]), a.runs), flush=True)
            continue
        f = figures(tuple(a.grids[i:i + 3]), a.runs)
        print(f["block_fwd_bwd_ms"], f["forward_ms"], f["attention_ms"], f["gemm_ms"], flush=True)


if __name__ == "__main__":
    main()
