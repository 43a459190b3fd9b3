#!/usr/bin/env python3
"""Self-checks of mochi_reference.py: run `/usr/bin/python3 tests/reference/test_mochi_reference.py`
(exits non-zero on failure; a few seconds)."""

import math
import os
import sys
import unittest

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mochi_reference as ref  # noqa: E402
import reference_common as common  # noqa: E402

# Two blocks: an ordinary one and the last, context_pre_only one.
TINY = ref.MochiConfig(patch_size=2, num_attention_heads=2, attention_head_dim=4, num_layers=2,
                       pooled_projection_dim=6, in_channels=2, out_channels=2, text_embed_dim=8,
                       time_embed_dim=4, max_sequence_length=6)


def tiny_problem(seed=0, ctx_len=5, real=3):
    """Parameters, timestep and inputs on a 2 x 4 x 6 latent (non-square) with padding rows."""
    gen = torch.Generator().manual_seed(seed)
    params = common.random_parameters(ref.parameter_shapes(TINY), gen, ref.std_of)
    return (params, *common.random_inputs(gen, (2, 2, 4, 6), 2, ctx_len, TINY.text_embed_dim, real, True))


def velocity(params, t, inputs):
    return ref.forward(TINY, params, inputs["latents"], t, inputs["context"], inputs.get("context_mask"))


class Gradients(common.GradientChecks, unittest.TestCase):
    FAMILY, CONFIG = ref, TINY
    CHOSEN = ["pos_frequencies", "time_embed.pooler.to_kv.weight", "transformer_blocks.0.attn1.norm_added_k.weight",
              "transformer_blocks.1.norm1_context.linear_1.weight"]

    @staticmethod
    def problem(seed):
        return tiny_problem(seed=seed)

    def test_last_block_text_queries_and_padding_rows_get_no_gradient(self):
        params, t, inputs = tiny_problem(seed=2)
        _, grads = common.forward_and_gradients(ref, TINY, params, t, inputs)
        self.assertEqual(grads["transformer_blocks.1.attn1.add_q_proj.weight"].abs().max().item(), 0.0)
        self.assertGreater(grads["transformer_blocks.0.attn1.add_q_proj.weight"].abs().max().item(), 0.0)
        self.assertEqual(grads["context"][3:].abs().max().item(), 0.0)


class Temperatures(common.TemperatureChecks, unittest.TestCase):
    FAMILY, CONFIG = ref, TINY

    @staticmethod
    def problem(seed):
        return tiny_problem(seed=seed)


class Mask(unittest.TestCase):
    def test_padding_rows_values_do_not_change_the_output(self):
        params, t, inputs = tiny_problem()
        changed = {**inputs, "context": inputs["context"].clone()}
        changed["context"][3:] = 100.0
        self.assertTrue(torch.equal(velocity(params, t, inputs), velocity(params, t, changed)))

    def test_padded_caption_equals_its_real_rows_without_a_mask(self):
        params, t, inputs = tiny_problem()
        real = {"latents": inputs["latents"], "context": inputs["context"][:3]}
        self.assertTrue(torch.allclose(velocity(params, t, inputs), velocity(params, t, real), rtol=0, atol=1e-13))

    def test_a_missing_mask_means_every_row_is_real(self):
        params, t, inputs = tiny_problem()
        ones = {**inputs, "context_mask": torch.ones(5, dtype=common.DTYPE)}
        unmasked = {k: v for k, v in inputs.items() if k != "context_mask"}
        self.assertTrue(torch.equal(velocity(params, t, ones), velocity(params, t, unmasked)))
        self.assertFalse(torch.allclose(velocity(params, t, inputs), velocity(params, t, unmasked)))

    def test_permuting_the_real_rows_leaves_the_output_unchanged(self):
        # Text takes no positions: pooling and joint attention see the real rows as a set.
        params, t, inputs = tiny_problem()
        permuted = {**inputs, "context": inputs["context"][[2, 0, 1, 3, 4]]}
        self.assertTrue(torch.allclose(velocity(params, t, inputs), velocity(params, t, permuted), rtol=0, atol=1e-12))

    def test_a_mask_without_real_rows_is_an_error(self):
        params, t, inputs = tiny_problem()
        with self.assertRaisesRegex(ValueError, "at least one real row"):
            velocity(params, t, {**inputs, "context_mask": torch.zeros(5, dtype=common.DTYPE)})


class Conditioning(unittest.TestCase):
    def test_pooling_one_real_row_returns_its_projected_value(self):
        # X = [row; row]: both keys equal, so the single query's output is the row's value.
        params, _, inputs = tiny_problem()
        row = inputs["context"][:1]
        value = common.linear(params, "time_embed.pooler.to_kv", row[0])[TINY.text_embed_dim:]
        expected = common.linear(params, "time_embed.pooler.to_out", value)
        mask = torch.tensor([1.0, 0.0, 0.0], dtype=common.DTYPE)
        pooled = ref.caption_pool(TINY, params, inputs["context"][:3], mask)
        self.assertTrue(torch.allclose(pooled, expected, rtol=0, atol=1e-14))


class Rope(unittest.TestCase):
    def test_positions_are_frame_index_and_centred_cells_of_a_192_square(self):
        pos = ref.rope_positions((2, 2, 3)).reshape(2, 2, 3, 3)
        s = math.sqrt(192 * 192 / 6)
        self.assertEqual(pos[1, 0, 0, 0].item(), 1.0)
        self.assertAlmostEqual(pos[0, 0, 0, 1].item(), -s / 2, places=12)
        self.assertAlmostEqual(pos[0, 1, 0, 1].item(), s / 2, places=12)
        self.assertEqual([round(v, 9) for v in pos[0, 0, :, 2].tolist()], [round(-s, 9), 0.0, round(s, 9)])

    def test_angles_are_per_head_and_rotate_adjacent_pairs(self):
        freqs = torch.zeros(3, 2, 2, dtype=common.DTYPE)
        freqs[0, 1, 1] = 0.3                                    # head 1, pair 1, driven by the frame
        angles = ref.rope_angles(freqs, (2, 1, 1))              # tokens: frame 0, frame 1
        x = torch.zeros(2, 2, 4, dtype=common.DTYPE)
        x[:, :, 2] = 1.0                                        # real part of pair 1, both heads
        y = ref.apply_rope(x, angles)
        self.assertTrue(torch.equal(y[0], x[0]) and torch.equal(y[1, 0], x[1, 0]))
        self.assertAlmostEqual(y[1, 1, 2].item(), math.cos(0.3), places=15)
        self.assertAlmostEqual(y[1, 1, 3].item(), math.sin(0.3), places=15)


class Files(unittest.TestCase):
    def test_cli_round_trip_writes_velocity_and_a_gradient_per_tensor(self):
        flags = ["--real-rows", "2", "--height", "6", "--width", "4"]
        cfg, params, t, inputs, written, grad_keys = common.cli_round_trip(ref, flags)
        self.assertEqual(inputs["context_mask"].tolist(), [1, 1, 0, 0, 0])
        self.assertEqual(tuple(written.shape), (3, 2, 6, 4))
        self.assertTrue(torch.equal(written, ref.forward(cfg, params, inputs["latents"], t, inputs["context"],
                                                         inputs["context_mask"])))
        self.assertEqual(grad_keys, set(params) | {"latents", "context"})

    def test_last_block_has_no_text_output_layers(self):
        shapes = ref.parameter_shapes(TINY)
        self.assertIn("transformer_blocks.0.attn1.to_add_out.weight", shapes)
        self.assertNotIn("transformer_blocks.1.attn1.to_add_out.weight", shapes)
        self.assertNotIn("transformer_blocks.1.ff_context.net.2.weight", shapes)
        self.assertEqual(shapes["transformer_blocks.1.norm1_context.linear_1.weight"], (6, 8))
        self.assertEqual(shapes["transformer_blocks.0.ff.net.0.proj.weight"], (2 * 21, 8))  # (4*8*2)//3 = 21

    def test_config_json_out_channels_null_means_in_channels(self):
        raw = ref.config_to_json(TINY)
        self.assertEqual(ref.config_from_json({**raw, "out_channels": None}), TINY)
        with self.assertRaisesRegex(ValueError, "_class_name"):
            ref.config_from_json({**raw, "_class_name": "WanTransformer3DModel"})

    def test_a_wrong_shape_or_unknown_key_is_an_error_naming_it(self):
        params = tiny_problem()[0]
        with self.assertRaisesRegex(ValueError, "pos_frequencies"):
            common.check_parameters(ref.parameter_shapes(TINY), {**params, "pos_frequencies": torch.zeros(3, 2, 4)})
        with self.assertRaisesRegex(ValueError, "unexpected parameter transformer_blocks.1.attn1.to_add_out.weight"):
            common.check_parameters(ref.parameter_shapes(TINY),
                                    {**params, "transformer_blocks.1.attn1.to_add_out.weight": torch.zeros(6, 8)})


if __name__ == "__main__":
    unittest.main()
