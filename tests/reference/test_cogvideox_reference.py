#!/usr/bin/env python3
"""Self-checks of cogvideox_reference.py: run
`/usr/bin/python3 tests/reference/test_cogvideox_reference.py` (exits non-zero on failure; seconds)."""

import math
import os
import sys
import unittest

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cogvideox_reference as ref  # noqa: E402
import reference_common as common  # noqa: E402

TINY = ref.CogVideoXConfig(num_attention_heads=2, attention_head_dim=8, in_channels=2, out_channels=3,
                           time_embed_dim=6, text_embed_dim=5, num_layers=2, patch_size=2,
                           max_text_seq_length=4, norm_eps=1e-5, spatial_interpolation_scale=1.875,
                           temporal_interpolation_scale=1.0)


def tiny_problem(seed=0):
    """Parameters, timestep and inputs on a 2 x 4 x 6 latent (non-square frames)."""
    gen = torch.Generator().manual_seed(seed)
    params = common.random_parameters(ref.parameter_shapes(TINY), gen, ref.std_of)
    return (params, *common.random_inputs(gen, (2, 2, 4, 6), 3, 4, TINY.text_embed_dim, 4, True))


def velocity(params, t, inputs):
    return ref.forward(TINY, params, inputs["latents"], t, inputs["context"])


class Gradients(common.GradientChecks, unittest.TestCase):
    FAMILY, CONFIG = ref, TINY
    CHOSEN = ["transformer_blocks.0.norm1.linear.weight", "transformer_blocks.1.attn1.norm_k.bias",
              "norm_out.norm.weight", "time_embedding.linear_1.weight"]

    @staticmethod
    def problem(seed):
        return tiny_problem(seed=seed)


class Temperatures(common.TemperatureChecks, unittest.TestCase):
    FAMILY, CONFIG = ref, TINY

    @staticmethod
    def problem(seed):
        return tiny_problem(seed=seed)


class Text(unittest.TestCase):
    def test_context_must_have_exactly_max_text_seq_length_rows(self):
        params, t, inputs = tiny_problem()
        with self.assertRaisesRegex(ValueError, "3 rows.*max_text_seq_length 4"):
            ref.forward(TINY, params, inputs["latents"], t, inputs["context"][:3])

    def test_permuting_text_rows_leaves_the_video_unchanged(self):
        # Text tokens carry no positions, so the video rows see them as a set.
        params, t, inputs = tiny_problem()
        permuted = {**inputs, "context": inputs["context"][[3, 1, 0, 2]]}
        self.assertTrue(torch.allclose(velocity(params, t, inputs), velocity(params, t, permuted), rtol=0, atol=1e-12))

    def test_padding_rows_are_attended_to(self):
        params, t, inputs = tiny_problem()
        changed = {**inputs, "context": inputs["context"].clone()}
        changed["context"][3] = 0.0
        self.assertFalse(torch.allclose(velocity(params, t, inputs), velocity(params, t, changed)))


class Positions(unittest.TestCase):
    def test_temporal_then_column_then_row_sincos_with_known_values(self):
        pos = ref.positions(TINY, (2, 3, 4)).reshape(2, 3, 4, 16)      # d 16
        s = TINY.spatial_interpolation_scale
        token = pos[1, 2, 3]                               # frame 1, row 2, column 3
        # temporal width 4: om = (1, 0.01); spatial halves of width 6: om = 10000^(-i/3).
        expected = [math.sin(1), math.sin(0.01), math.cos(1), math.cos(0.01)]
        for coordinate in (3 / s, 2 / s):
            om = [10000 ** (-i / 3) for i in range(3)]
            expected += [math.sin(coordinate * o) for o in om] + [math.cos(coordinate * o) for o in om]
        self.assertTrue(torch.allclose(token, torch.tensor(expected, dtype=common.DTYPE), rtol=0, atol=1e-15))

    def test_patchify_equals_a_conv2d_on_each_frame(self):
        gen = torch.Generator().manual_seed(3)
        x = torch.randn(3, 2, 4, 6, generator=gen, dtype=common.DTYPE)
        weight = torch.randn(5, 3, 2, 2, generator=gen, dtype=common.DTYPE)
        bias = torch.randn(5, generator=gen, dtype=common.DTYPE)
        tokens, grid = ref.patchify(x, weight[:, :, None], bias)
        conv = F.conv2d(x.permute(1, 0, 2, 3), weight, bias, stride=2)       # [F, d, h, w]
        self.assertEqual(grid, (2, 2, 3))
        self.assertTrue(torch.allclose(tokens, conv.permute(0, 2, 3, 1).reshape(-1, 5), atol=1e-13))

    def test_unpatchify_reads_each_token_channel_slowest(self):
        grid, p, channels = (2, 3, 1), 2, 3
        y = torch.randn(channels, 2, 6, 2, dtype=common.DTYPE)
        tokens = torch.empty(6, channels * p * p, dtype=common.DTYPE)
        for f, h, w, c, a, b in np.ndindex(*grid, channels, p, p):
            tokens[(f * 3 + h) * 1 + w, (c * p + a) * p + b] = y[c, f, h * p + a, w * p + b]
        self.assertTrue(torch.equal(ref.unpatchify(tokens, grid, p, channels), y))


class Files(unittest.TestCase):
    def test_cli_round_trip_writes_velocity_and_a_gradient_per_tensor(self):
        cfg, params, t, inputs, written, grad_keys = common.cli_round_trip(ref, ["--layers", "1"])
        self.assertTrue(torch.equal(written, ref.forward(cfg, params, inputs["latents"], t, inputs["context"])))
        self.assertEqual(grad_keys, set(params) | {"latents", "context"})

    def test_config_refuses_what_the_2b_variant_does_not_use(self):
        raw = ref.config_to_json(TINY)
        self.assertEqual(ref.config_from_json(raw), TINY)
        with self.assertRaisesRegex(ValueError, "use_rotary_positional_embeddings"):
            ref.config_from_json({**raw, "use_rotary_positional_embeddings": True})
        with self.assertRaisesRegex(ValueError, "multiple of 16"):
            ref.config_from_json({**raw, "attention_head_dim": 4})


if __name__ == "__main__":
    unittest.main()
