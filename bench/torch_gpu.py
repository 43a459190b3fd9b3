"""PyTorch's figures on the GPU for `vditkit-bench gpu`, at the Wan2.1-1.3B shapes.

The Wan block of tests/reference/wan_reference.py written for speed the way PyTorch users run it:
bf16 weights and activations, F.scaled_dot_product_attention, random weights of the 1.3B shapes.
For each token grid prints one line of four numbers on stdout, milliseconds (the median of runs):
  one block forward + backward, all its parameters trainable (fp32 master weights, bf16 compute
      through autocast), backward of sum(out * upstream);
  the 30-block forward, no gradients (bf16 weights);
  scaled_dot_product_attention forward + backward, [1, 12, N, 128];
  the largest GEMM of a block, [N, 1536] x [1536, 8960], bf16.
Exits non-zero where PyTorch has no CUDA device.
"""
import argparse
import math
import sys

import torch
import torch.nn.functional as F

DIM, FFN, HEADS, TEXT_LEN, TEXT_DIM, LAYERS, EPS = 1536, 8960, 12, 512, 4096, 30, 1e-6
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


def attention(p, name, x, kv, tables=None):
    b = x.shape[0]
    q = rms_norm(F.linear(x, p[f"{name}.q.weight"], p[f"{name}.q.bias"]), p[f"{name}.norm_q.weight"])
    k = rms_norm(F.linear(kv, p[f"{name}.k.weight"], p[f"{name}.k.bias"]), p[f"{name}.norm_k.weight"])
    v = F.linear(kv, p[f"{name}.v.weight"], p[f"{name}.v.bias"])
    q, k, v = (z.unflatten(-1, (HEADS, HEAD_DIM)) for z in (q, k, v))
    if tables is not None:
        q, k = (rope(z, *tables).to(v.dtype) for z in (q, k))
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return F.linear(out.transpose(1, 2).reshape(b, -1, DIM), p[f"{name}.o.weight"], p[f"{name}.o.bias"])


def block(p, x, e0, ctx, tables):
    m = (p["modulation"] + e0).chunk(6, dim=1)
    h = F.layer_norm(x, (DIM,), eps=EPS) * (1 + m[1]) + m[0]
    x = x + attention(p, "self_attn", h, h, tables) * m[2]
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grids", type=int, nargs="+", default=[4, 32, 32, 21, 30, 52],
                    help="token grids (frames, height, width), three numbers each")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("torch_gpu.py: PyTorch sees no CUDA device")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = False
    for i in range(0, len(a.grids), 3):
        f = figures(tuple(a.grids[i:i + 3]), a.runs)
        print(f["block_fwd_bwd_ms"], f["forward_ms"], f["attention_ms"], f["gemm_ms"], flush=True)


if __name__ == "__main__":
    main()
