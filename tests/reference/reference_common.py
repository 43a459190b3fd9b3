"""What the diffusers-layout float64 references (mochi_reference.py, cogvideox_reference.py)
share: the file layouts, the gradient of L = sum(velocity * grad_velocity), random fixtures and
the command line. Nothing here knows a model; each reference passes its own functions in.

WEIGHTS.h5: one dataset per parameter named by its diffusers key; the model's config.json (the
diffusers keys, `_class_name` included) as the JSON string root attribute "config".
INPUT.h5: latents [C, F, H, W], scalar timestep, context [L, text_dim], optional context_mask [L]
(1 = real row, 0 = padding), optional grad_velocity [C_out, F, H, W].
OUTPUT.h5: velocity; with grad_velocity also "grad/<key>" = dL/d<key> for every weight and for
latents and context.

Optional temperatures (vditkit's, not the released models'): "transformer_blocks.<i>.attn1.log_temperature",
log tau [heads] (one per head) or [1] (one for the block), divides block i's joint-attention
logits by tau = exp(log tau); absent means tau = 1.
"""

import argparse
import json
import math
import os
import sys
import tempfile

import h5py
import numpy as np
import torch
import torch.nn.functional as F

DTYPE = torch.float64
INPUT_KEYS = ("latents", "context", "context_mask", "grad_velocity")
TEMPERATURE = "attn1.log_temperature"


def temperature_key(i):
    return f"transformer_blocks.{i}.{TEMPERATURE}"


def linear(p, name, x):
    """y = x W^T + b with W [out, in]; layers without a bias simply store none."""
    return F.linear(x, p[f"{name}.weight"], p.get(f"{name}.bias"))


def rms(x, eps):
    """x / sqrt(mean(x^2) + eps) over the last axis, no weight."""
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)


def check_parameters(expected, params, optional=(), heads=None):
    """Fail naming the key: every parameter present with its shape, nothing unexpected but the
    `optional` temperatures, each [heads] or [1]."""
    for key, shape in expected.items():
        if key not in params:
            raise ValueError(f"missing parameter {key}")
        if tuple(params[key].shape) != tuple(shape):
            raise ValueError(f"parameter {key} has shape {tuple(params[key].shape)}, expected {shape}")
    for key in params:
        if key in expected:
            continue
        if key not in optional:
            raise ValueError(f"unexpected parameter {key}")
        if tuple(params[key].shape) not in ((heads,), (1,)):
            raise ValueError(f"parameter {key} has shape {tuple(params[key].shape)}, expected ({heads},) or (1,)")


def tempered_softmax(p, block, q, k):
    """The attention weights [n, Nq, Nk] of q [Nq, n, hd] and k [Nk, n, hd]: softmax over the
    keys of q k^T / (sqrt(hd) tau), tau from `block`'s log temperature where present."""
    logits = torch.einsum("qnh,knh->nqk", q, k) / math.sqrt(q.shape[-1])
    log_tau = p.get(f"{block}.{TEMPERATURE}")
    if log_tau is not None:
        logits = logits / torch.exp(log_tau)[:, None, None]
    return torch.softmax(logits, dim=-1)


def tempered_attention(p, block, q, k, v):
    """tempered_softmax's weights applied to v [Nk, n, hd] -> [Nq, n, hd]. Looked up through
    this module at each call, so that bench/torch_family_block.py can put
    scaled_dot_product_attention in its place on a GPU."""
    return torch.einsum("nqk,knh->qnh", tempered_softmax(p, block, q, k), v)


def random_temperatures(gen, layers, heads, per):
    """log tau with tau uniform in [0.5, 1.5): per "head" [heads] or per "block" [1]."""
    width = heads if per == "head" else 1
    return {temperature_key(i): torch.log(0.5 + torch.rand(width, generator=gen, dtype=DTYPE)) for i in range(layers)}


def load_weights(path, family):
    with h5py.File(path, "r") as f:
        raw = f.attrs["config"]
        cfg = family.config_from_json(json.loads(raw.decode() if isinstance(raw, bytes) else raw))
        params = {k: torch.from_numpy(np.asarray(f[k], dtype=np.float64)) for k in f.keys()}
    temperatures = {temperature_key(i) for i in range(cfg.num_layers)}
    check_parameters(family.parameter_shapes(cfg), params, temperatures, cfg.num_attention_heads)
    return cfg, params


def load_inputs(path):
    """(timestep, {latents, context, and context_mask / grad_velocity where present})."""
    with h5py.File(path, "r") as f:
        tensors = {k: torch.from_numpy(np.asarray(f[k], dtype=np.float64)) for k in INPUT_KEYS if k in f}
        return float(f["timestep"][()]), tensors


def forward_and_gradients(family, cfg, params, timestep, inputs):
    """velocity, and with inputs["grad_velocity"] the gradients of sum(velocity * grad_velocity)
    w.r.t. every parameter, latents and context (keys as written under "grad/")."""
    mask = inputs.get("context_mask")
    grad_velocity = inputs.get("grad_velocity")
    if grad_velocity is None:
        with torch.no_grad():
            return family.forward(cfg, params, inputs["latents"], timestep, inputs["context"], mask), {}
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    leaves["latents"] = inputs["latents"].clone().requires_grad_(True)
    leaves["context"] = inputs["context"].clone().requires_grad_(True)
    velocity = family.forward(cfg, leaves, leaves["latents"], timestep, leaves["context"], mask)
    names = list(leaves)
    grads = torch.autograd.grad((velocity * grad_velocity).sum(), [leaves[k] for k in names],
                                allow_unused=True)
    # A parameter the output does not depend on (the last Mochi block's text queries) has a
    # gradient of exactly zero.
    return velocity.detach(), {k: torch.zeros_like(leaves[k]) if g is None else g
                               for k, g in zip(names, grads)}


def run_forward(family, weights_path, input_path, output_path):
    cfg, params = load_weights(weights_path, family)
    timestep, inputs = load_inputs(input_path)
    velocity, grads = forward_and_gradients(family, cfg, params, timestep, inputs)
    with h5py.File(output_path, "w") as f:
        f["velocity"] = velocity.numpy()
        for key, g in grads.items():
            f[f"grad/{key}"] = g.numpy()


def random_parameters(shapes, gen, std_of):
    """Normal weights: `std_of(key, shape)` gives the std, or None for norm weights (near 1)."""
    params = {}
    for key, shape in shapes.items():
        std = std_of(key, shape)
        if std is None:
            params[key] = 1 + 0.1 * torch.randn(shape, generator=gen, dtype=DTYPE)
        else:
            params[key] = std * torch.randn(shape, generator=gen, dtype=DTYPE)
    return params


def fan_in_std(shape, gain=1.0):
    return gain / math.sqrt(math.prod(shape[1:]))


def random_inputs(gen, latent_shape, out_channels, ctx_len, text_dim, real_rows, grad):
    """Inputs with `real_rows` real context rows first and padding after (mask written only
    when some rows are padding)."""
    inputs = {"latents": torch.randn(latent_shape, generator=gen, dtype=DTYPE),
              "context": torch.randn(ctx_len, text_dim, generator=gen, dtype=DTYPE)}
    timestep = float(torch.rand((), generator=gen, dtype=DTYPE)) * 1000
    if real_rows < ctx_len:
        inputs["context_mask"] = (torch.arange(ctx_len) < real_rows).to(DTYPE)
    if grad:
        inputs["grad_velocity"] = torch.randn(out_channels, *latent_shape[1:], generator=gen, dtype=DTYPE)
    return timestep, inputs


def write_random(weights_path, input_path, config_json, params, timestep, inputs):
    with h5py.File(weights_path, "w") as f:
        f.attrs["config"] = json.dumps(config_json)
        for key, value in params.items():
            f[key] = value.numpy().astype(np.float32)
    with h5py.File(input_path, "w") as f:
        f["timestep"] = np.float32(timestep)
        for key, value in inputs.items():
            f[key] = value.numpy().astype(np.float32)


def main(family, argv, model_flags, input_flags):
    """forward / make-random; `model_flags` and `input_flags` are (flag, default) integer
    options; family.make_random(args, gen) returns (config json, params, timestep, inputs)."""
    parser = argparse.ArgumentParser(description=family.__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    commands = {"forward": ("velocity (and gradients) of one sample", ("weights", "input", "output")),
                "make-random": ("random float32 weights and inputs", ("weights", "input"))}
    for command, (text, files) in commands.items():
        sub.add_parser(command, help=text).set_defaults(files=files)
        for name in files:
            sub.choices[command].add_argument(name)
    rnd = sub.choices["make-random"]
    for flag, default in (*model_flags, *input_flags, ("seed", 0)):
        rnd.add_argument(f"--{flag}", type=int, default=default)
    rnd.add_argument("--grad", action="store_true", help="add grad_velocity to the input")
    rnd.add_argument("--temperature", choices=("head", "block"),
                     help="add a log temperature to every block, one per head or one per block")
    rnd.add_argument("--forward", metavar="OUTPUT", help="then run forward into OUTPUT (one start-up)")
    a = parser.parse_args(argv)
    try:
        if a.command == "forward":
            run_forward(family, a.weights, a.input, a.output)
            return
        gen = torch.Generator().manual_seed(a.seed)
        write_random(a.weights, a.input, *family.make_random(a, gen))
        if a.forward:
            run_forward(family, a.weights, a.input, a.forward)
    except (ValueError, KeyError, OSError) as err:
        sys.exit(f"{os.path.basename(sys.argv[0])}: {err}")


def gradcheck_chosen(family, cfg, params, timestep, inputs, keys):
    """torch.autograd.gradcheck of L w.r.t. the parameters `keys` and the context."""
    def loss(*xs):
        chosen = {**params, **dict(zip(keys, xs[:-1]))}
        out = family.forward(cfg, chosen, inputs["latents"], timestep, xs[-1], inputs.get("context_mask"))
        return (out * inputs["grad_velocity"]).sum()

    leaves = [params[k].clone().requires_grad_(True) for k in keys]
    leaves.append(inputs["context"].clone().requires_grad_(True))
    return torch.autograd.gradcheck(loss, leaves, eps=1e-6, atol=1e-7, rtol=1e-5)


def directional_mismatches(family, cfg, params, timestep, inputs, seed=2, h=1e-6):
    """Keys whose written gradient disagrees with a central difference along a random
    direction (relative 1e-6): the check that every "grad/" entry is dL/d<key>."""
    _, grads = forward_and_gradients(family, cfg, params, timestep, inputs)
    gen = torch.Generator().manual_seed(seed)
    values = {**params, "latents": inputs["latents"], "context": inputs["context"]}
    bad = []
    for key, grad in grads.items():
        direction = torch.randn(grad.shape, generator=gen, dtype=DTYPE)

        def at(step):
            moved = {**values, key: values[key] + step * direction}
            lat, ctx = moved.pop("latents"), moved.pop("context")
            out = family.forward(cfg, moved, lat, timestep, ctx, inputs.get("context_mask"))
            return (out * inputs["grad_velocity"]).sum().item()

        numeric = (at(h) - at(-h)) / (2 * h)
        if abs((grad * direction).sum().item() - numeric) > 1e-6 * (1 + abs(numeric)):
            bad.append(key)
    return grads, bad


def cli_round_trip(family, make_random_flags):
    """make-random (with grad_velocity) then forward through the command line, in a temporary
    folder: (cfg, params, timestep, inputs, written velocity, the keys under "grad/")."""
    with tempfile.TemporaryDirectory() as tmp:
        w, i, o = (os.path.join(tmp, n) for n in ("w.h5", "i.h5", "o.h5"))
        main(family, ["make-random", w, i, "--grad", *make_random_flags], family.MODEL_FLAGS, family.INPUT_FLAGS)
        main(family, ["forward", w, i, o], family.MODEL_FLAGS, family.INPUT_FLAGS)
        cfg, params = load_weights(w, family)
        timestep, inputs = load_inputs(i)
        with h5py.File(o, "r") as f:
            return cfg, params, timestep, inputs, torch.from_numpy(f["velocity"][()]), set(f["grad"].keys())


class GradientChecks:
    """unittest.TestCase mixin: a class sets FAMILY, CONFIG, CHOSEN (parameter keys) and
    problem(seed) -> (params, timestep, inputs with grad_velocity)."""

    def test_autograd_matches_finite_differences_for_chosen_tensors(self):
        params, timestep, inputs = self.problem(0)
        self.assertTrue(gradcheck_chosen(self.FAMILY, self.CONFIG, params, timestep, inputs, self.CHOSEN))

    def test_written_gradient_of_every_tensor_matches_a_directional_difference(self):
        params, timestep, inputs = self.problem(1)
        grads, bad = directional_mismatches(self.FAMILY, self.CONFIG, params, timestep, inputs)
        self.assertEqual(set(grads), set(params) | {"latents", "context"})
        self.assertEqual(bad, [])


class TemperatureChecks:
    """unittest.TestCase mixin for a class that also sets FAMILY, CONFIG and problem(seed): the
    optional log temperatures of the joint attention."""

    def velocity(self, params, timestep, inputs):
        return self.FAMILY.forward(self.CONFIG, params, inputs["latents"], timestep, inputs["context"],
                                   inputs.get("context_mask"))

    def with_temperatures(self, params, per, seed=5):
        cfg = self.CONFIG
        gen = torch.Generator().manual_seed(seed)
        return {**params, **random_temperatures(gen, cfg.num_layers, cfg.num_attention_heads, per)}

    def test_unit_temperatures_leave_the_output_unchanged_and_others_change_it(self):
        params, t, inputs = self.problem(0)
        unit = {**params, **{temperature_key(i): torch.zeros(1, dtype=DTYPE) for i in range(self.CONFIG.num_layers)}}
        self.assertTrue(torch.equal(self.velocity(params, t, inputs), self.velocity(unit, t, inputs)))
        tempered = self.with_temperatures(params, "head")
        self.assertFalse(torch.allclose(self.velocity(params, t, inputs), self.velocity(tempered, t, inputs)))

    def test_a_block_temperature_is_that_temperature_on_every_head(self):
        params, t, inputs = self.problem(0)
        block = self.with_temperatures(params, "block")
        heads = {k: v.expand(self.CONFIG.num_attention_heads).clone() if k.endswith(TEMPERATURE) else v
                 for k, v in block.items()}
        self.assertTrue(torch.equal(self.velocity(block, t, inputs), self.velocity(heads, t, inputs)))

    def test_log_temperature_gradients_match_finite_differences(self):
        params, t, inputs = self.problem(1)
        keys = [temperature_key(i) for i in range(self.CONFIG.num_layers)]
        self.assertTrue(gradcheck_chosen(self.FAMILY, self.CONFIG, self.with_temperatures(params, "head"), t, inputs,
                                         keys))

    def test_make_random_writes_temperatures_that_forward_reads(self):
        cfg, params, t, inputs, written, grad_keys = cli_round_trip(self.FAMILY, ["--temperature", "block"])
        keys = {temperature_key(i) for i in range(cfg.num_layers)}
        self.assertEqual({k for k in params if k.endswith(TEMPERATURE)}, keys)
        self.assertTrue(all(tuple(params[k].shape) == (1,) for k in keys))
        self.assertTrue(keys <= grad_keys)
        self.assertTrue(torch.equal(written, self.FAMILY.forward(cfg, params, inputs["latents"], t, inputs["context"],
                                                                 inputs.get("context_mask"))))
