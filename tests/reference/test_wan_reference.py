#!/usr/bin/env python3
"""Self-checks of wan_reference.py: run `/usr/bin/python3 tests/reference/test_wan_reference.py`
(exits non-zero on failure; a few seconds)."""

import math
import os
import sys
import tempfile
import unittest

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wan_reference as ref  # noqa: E402

# head_dim 6 gives one RoPE pair per axis, so frame, height and width are all rotated.
TINY = ref.WanConfig(dim=12, ffn_dim=16, freq_dim=8, num_heads=2, num_layers=1, in_dim=2,
                     out_dim=2, text_dim=5, text_len=4, patch_size=(1, 2, 2), eps=1e-6,
                     qk_norm=True, cross_attn_norm=True)


def tiny_problem(cfg=TINY, seed=0, ctx_len=3):
    gen = torch.Generator().manual_seed(seed)
    params = ref.random_parameters(cfg, gen, temperature=True)
    return (params, *ref.random_inputs(cfg, gen, 2, 4, 4, ctx_len, grad=True))


def objective(cfg, params, latents, t, context, grad_velocity):
    """L = sum(velocity * grad_velocity), the scalar whose gradients the reference writes."""
    return (ref.forward(cfg, params, latents, t, context) * grad_velocity).sum()


class Gradients(unittest.TestCase):
    def test_autograd_matches_finite_differences_for_chosen_tensors(self):
        params, latents, t, context, g = tiny_problem()
        keys = ["blocks.0.self_attn.q.weight", "blocks.0.self_attn.temperature",
                "blocks.0.modulation", "head.modulation"]

        def loss(*xs):
            chosen = dict(zip(keys, xs[:len(keys)]))
            return objective(TINY, {**params, **chosen}, xs[-2], t, xs[-1], g)

        inputs = [params[k].clone().requires_grad_(True) for k in keys]
        inputs += [latents.clone().requires_grad_(True), context.clone().requires_grad_(True)]
        self.assertTrue(torch.autograd.gradcheck(loss, inputs, eps=1e-6, atol=1e-7, rtol=1e-5))

    def test_written_gradient_of_every_tensor_matches_a_directional_difference(self):
        params, latents, t, context, g = tiny_problem(seed=1)
        _, grads = ref.forward_and_gradients(TINY, params, latents, t, context, g)
        self.assertEqual(set(grads), set(params) | {"latents", "context"})
        gen = torch.Generator().manual_seed(2)
        h = 1e-6
        for key, grad in grads.items():
            values = {**params, "latents": latents, "context": context}
            direction = torch.randn(grad.shape, generator=gen, dtype=ref.DTYPE)

            def at(step):
                moved = {**values, key: values[key] + step * direction}
                lat, ctx = moved.pop("latents"), moved.pop("context")
                return objective(TINY, moved, lat, t, ctx, g).item()

            numeric = (at(h) - at(-h)) / (2 * h)
            self.assertAlmostEqual((grad * direction).sum().item(), numeric,
                                   delta=1e-6 * (1 + abs(numeric)), msg=key)


class Rope(unittest.TestCase):
    def test_head_dim_128_splits_into_22_21_21_pairs(self):
        self.assertEqual(ref.rope_pair_split(128), (22, 21, 21))
        grid = (3, 4, 5)
        angles = ref.rope_angles(128, grid).reshape(*grid, 64)
        frame, height, width = angles[..., :22], angles[..., 22:43], angles[..., 43:]
        # Each axis's columns depend on its own position only.
        self.assertTrue(torch.equal(frame, frame[:, :1, :1].expand_as(frame)))
        self.assertTrue(torch.equal(height, height[:1, :, :1].expand_as(height)))
        self.assertTrue(torch.equal(width, width[:1, :1, :].expand_as(width)))
        # pos * 10000^(-2j/D): frame D = 44, width D = 42.
        self.assertAlmostEqual(frame[2, 0, 0, 1].item(), 2 * 10000 ** (-2 / 44), places=15)
        self.assertAlmostEqual(width[0, 0, 3, 20].item(), 3 * 10000 ** (-40 / 42), places=15)

    def test_rotates_adjacent_pairs(self):
        x = torch.zeros(1, 1, 6, dtype=ref.DTYPE)
        x[0, 0, 2] = 1.0                                    # real part of pair 1
        angles = torch.tensor([[0.0, 0.3, 0.0]], dtype=ref.DTYPE)
        expected = torch.zeros_like(x)
        expected[0, 0, 2], expected[0, 0, 3] = math.cos(0.3), math.sin(0.3)
        self.assertTrue(torch.allclose(ref.apply_rope(x, angles), expected, atol=1e-15))


class Embeddings(unittest.TestCase):
    def test_short_context_equals_explicitly_zero_padded_context(self):
        params, latents, t, context, _ = tiny_problem(ctx_len=2)
        padded = torch.cat([context, torch.zeros(TINY.text_len - 2, TINY.text_dim,
                                                 dtype=ref.DTYPE)])
        short = ref.forward(TINY, params, latents, t, context)
        self.assertTrue(torch.equal(short, ref.forward(TINY, params, latents, t, padded)))
        # The padded rows are attended to, not masked: dropping them changes the output.
        unpadded_cfg = ref.WanConfig(**{**TINY.__dict__, "text_len": 2})
        self.assertFalse(torch.allclose(short, ref.forward(unpadded_cfg, params, latents, t,
                                                           context)))

    def test_timestep_sinusoid_is_cosines_then_sines(self):
        self.assertEqual(ref.timestep_sinusoid(0.0, 8).tolist(), [1.0] * 4 + [0.0] * 4)
        s = ref.timestep_sinusoid(1.0, 8)                   # w_1 = 10000^(-1/4) = 0.1
        self.assertAlmostEqual(s[1].item(), math.cos(0.1), places=15)
        self.assertAlmostEqual(s[5].item(), math.sin(0.1), places=15)

    def test_patchify_equals_strided_conv3d(self):
        gen = torch.Generator().manual_seed(3)
        for patch in ((1, 2, 2), (2, 3, 1)):
            x = torch.randn(3, 4, 6, 4, generator=gen, dtype=ref.DTYPE)
            weight = torch.randn(5, 3, *patch, generator=gen, dtype=ref.DTYPE)
            bias = torch.randn(5, generator=gen, dtype=ref.DTYPE)
            tokens, grid = ref.patchify(x, weight, bias)
            conv = F.conv3d(x[None], weight, bias, stride=patch)[0]   # [d, f, h, w]
            self.assertEqual(grid, tuple(conv.shape[1:]))
            self.assertTrue(torch.allclose(tokens, conv.reshape(5, -1).T, atol=1e-13))

    def test_unpatchify_inverts_token_layout_pt_ph_pw_c(self):
        patch, grid, channels = (2, 2, 3), (2, 3, 1), 2
        y = torch.randn(channels, *(g * p for g, p in zip(grid, patch)), dtype=ref.DTYPE)
        tokens = torch.empty(math.prod(grid), math.prod(patch) * channels, dtype=ref.DTYPE)
        for index in np.ndindex(*grid, *patch, channels):
            f, h, w, pt, ph, pw, c = index
            token = (f * grid[1] + h) * grid[2] + w
            slot = ((pt * patch[1] + ph) * patch[2] + pw) * channels + c
            tokens[token, slot] = y[c, f * patch[0] + pt, h * patch[1] + ph, w * patch[2] + pw]
        self.assertTrue(torch.equal(ref.unpatchify(tokens, grid, patch, channels), y))


class Norms(unittest.TestCase):
    def test_rms_norm_spans_the_whole_width_with_weight(self):
        x = torch.tensor([1.0, 1.0, 2.0, 2.0], dtype=ref.DTYPE)   # heads of 2 differ in rms
        weight = torch.tensor([1.0, 2.0, 1.0, 2.0], dtype=ref.DTYPE)
        rms = math.sqrt(2.5)
        expected = torch.tensor([1 / rms, 2 / rms, 2 / rms, 4 / rms], dtype=ref.DTYPE)
        self.assertTrue(torch.allclose(ref.rms_norm(x, weight, 0.0), expected, atol=1e-15))


class Files(unittest.TestCase):
    def run_cli(self, *flags):
        with tempfile.TemporaryDirectory() as tmp:
            weights, inputs, output = (os.path.join(tmp, n) for n in ("w.h5", "i.h5", "o.h5"))
            ref.main(["make-random", weights, inputs, "--layers", "1", "--grad", *flags])
            ref.main(["forward", weights, inputs, output])
            cfg, params = ref.load_weights(weights)
            latents, t, context, g = ref.load_inputs(inputs)
            with h5py.File(output, "r") as f:
                return (cfg, params, (latents, t, context), torch.from_numpy(f["velocity"][()]),
                        set(f["grad"].keys()))

    def test_cli_round_trip_writes_velocity_and_a_gradient_per_tensor(self):
        cfg, params, inputs, velocity, grad_keys = self.run_cli("--temperature")
        self.assertTrue(torch.equal(velocity, ref.forward(cfg, params, *inputs)))
        self.assertIn("blocks.0.self_attn.temperature", params)
        self.assertEqual(grad_keys, set(params) | {"latents", "context"})

    def test_without_qk_norm_and_norm3_the_files_hold_no_such_weights(self):
        cfg, params, _, velocity, grad_keys = self.run_cli("--no-qk-norm", "--no-cross-attn-norm")
        self.assertFalse(cfg.qk_norm or cfg.cross_attn_norm)
        self.assertFalse(any("norm" in k for k in params))
        self.assertTrue(torch.isfinite(velocity).all())
        self.assertEqual(grad_keys, set(params) | {"latents", "context"})

    def test_a_wrong_shape_or_unknown_key_is_an_error_naming_it(self):
        params = tiny_problem()[0]
        bad_shape = {**params, "head.modulation": torch.zeros(1, 6, TINY.dim)}
        with self.assertRaisesRegex(ValueError, "head.modulation"):
            ref.check_parameters(TINY, bad_shape)
        with self.assertRaisesRegex(ValueError, "unexpected parameter blocks.0.extra"):
            ref.check_parameters(TINY, {**params, "blocks.0.extra": torch.zeros(1)})
        missing = {k: v for k, v in params.items() if k != "blocks.0.ffn.0.bias"}
        with self.assertRaisesRegex(ValueError, "missing parameter blocks.0.ffn.0.bias"):
            ref.check_parameters(TINY, missing)


if __name__ == "__main__":
    unittest.main()
