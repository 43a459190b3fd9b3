// bench/torch_family_block.py times the float64 references' Mochi-1 and CogVideoX-2b blocks in
// float32 for `vditkit-bench families`. Its --check mode runs the step it times on the weights of
// a tiny random model and on block inputs written here; our block 0 must give the same outputs
// and block-0 gradients, so that both sides of the benchmark compute the same equations (which
// block, silu of the conditioning, the order of the streams, the RoPE angles).
#include <gtest/gtest.h>

#include "autograd/random.h"
#include "data/family_config_json.h"
#include "layers/cogvideox_block.h"
#include "layers/family_layers.h"
#include "layers/mochi_block.h"
#include "tests/family_parity.h"

namespace vdit {
namespace {

using testing::FamilyReference;

// What one family's check needs besides the weights: the block inputs the script reads (each
// [1, ...]; "upstream_visual" and "upstream_text" weigh the two outputs in the loss) and our
// block's (visual, text) outputs on them.
struct BlockCheck {
  std::map<std::string, Tensor> inputs;
  std::array<int64_t, 3> grid{};
  std::function<std::pair<Tensor, Tensor>()> ours;
};

Tensor unbatched(const Tensor& t) {
  Shape s = t.shape();
  s.erase(s.begin());
  return reshape(t, s);
}

Tensor batched(const Tensor& t) {
  Shape s = t.shape();
  s.insert(s.begin(), 1);
  return reshape(t, s);
}

// A tiny random model from a float64 reference (weights in dir/w.h5), block 0's parameters trainable.
struct TinyModel {
  testing::ScratchDir dir;
  FamilyReference reference;
  ParameterMap block_params;
  TinyModel(const std::string& script, const std::string& args) : reference(script, args, dir) {
    for (const auto& [key, t] : reference.params)
      if (key.rfind("transformer_blocks.0.", 0) == 0) block_params[key] = t.detach().set_requires_grad(true);
  }
};

// Runs the script's check on the model's weights and `check`'s inputs and compares with ours.
void expect_script_matches(const std::string& family, const TinyModel& model, const BlockCheck& check) {
  const testing::ScratchDir& dir = model.dir;
  {
    Hdf5File inputs(dir / "block_inputs.h5", Hdf5File::Mode::Create);
    for (const auto& [name, t] : check.inputs) inputs.write(name, unbatched(t));
    inputs.write("grid", Tensor::from_vector({3}, {static_cast<float>(check.grid[0]), static_cast<float>(check.grid[1]),
                                                   static_cast<float>(check.grid[2])}));
    inputs.close();
  }
  const testing::CommandResult ran = testing::run_command(
      std::string(VDITKIT_PYTHON) + " " + VDITKIT_SOURCE_DIR + "/bench/torch_family_block.py --family " + family +
      " --check " + (dir / "w.h5") + " " + (dir / "block_inputs.h5") + " " + (dir / "block_out.h5"));
  ASSERT_EQ(ran.exit_code, 0) << ran.output;
  const Hdf5File theirs(dir / "block_out.h5", Hdf5File::Mode::Read);
  const auto [visual, text] = check.ours();
  add(sum_all(mul(visual, check.inputs.at("upstream_visual"))), sum_all(mul(text, check.inputs.at("upstream_text"))))
      .backward();
  EXPECT_LE(testing::relative_error(unbatched(visual), theirs.read("visual")), 1e-5);
  EXPECT_LE(testing::relative_error(unbatched(text), theirs.read("text")), 1e-5);
  testing::expect_gradients_match(model.block_params, theirs, 1e-4);
}

// The streams [1, tokens, width] and [1, rows, text width] and their outputs' weights in the loss.
std::map<std::string, Tensor> stream_inputs(Rng& rng, int64_t tokens, int64_t width, int64_t rows, int64_t text_width) {
  return {{"visual", rng.normal_tensor({1, tokens, width})},
          {"text", rng.normal_tensor({1, rows, text_width})},
          {"upstream_visual", rng.normal_tensor({1, tokens, width})},
          {"upstream_text", rng.normal_tensor({1, rows, text_width})}};
}

TEST(TorchFamilyBlock, MochiCheckMatchesOurBlock) {
  const TinyModel model("mochi_reference.py",
                        "--heads 2 --head-dim 8 --layers 2 --text-width 12 --frames 2 --height 4 --width 6");
  ASSERT_TRUE(model.reference.ok());
  const ParameterMap& params = model.reference.params;
  const MochiConfig config = mochi_config_from_json(model.reference.config_json, "reference weights");
  const MochiBlock block = build_mochi_block(config, model.block_params, 0);
  Rng rng(5);
  const int64_t tokens = 12, rows = 5;  // 2 x 2 x 3 patches; a caption of 5 real rows
  BlockCheck check;
  check.grid = {2, 2, 3};
  check.inputs = stream_inputs(rng, tokens, config.dim(), rows, config.pooled_projection_dim);
  check.inputs["c"] = rng.normal_tensor({1, config.dim()});
  check.inputs["pos_frequencies"] = batched(params.at("pos_frequencies"));
  check.ours = [&] {
    const auto& in = check.inputs;
    MochiBlockInputs inputs;
    inputs.conditioning = silu(in.at("c"));
    inputs.rope = mochi_rope(params.at("pos_frequencies"), check.grid);
    const TokenStreams out = block({in.at("visual"), in.at("text")}, inputs);
    return std::pair{out.video, out.text};
  };
  expect_script_matches("mochi", model, check);
}

TEST(TorchFamilyBlock, CogVideoXCheckMatchesOurBlock) {
  const TinyModel model("cogvideox_reference.py",
                        "--heads 2 --head-dim 8 --layers 2 --text-len 5 --frames 2 --height 4 --width 6");
  ASSERT_TRUE(model.reference.ok());
  const CogVideoXConfig config = cogvideox_config_from_json(model.reference.config_json, "reference weights");
  const CogVideoXBlock block = build_cogvideox_block(config, model.block_params, 0);
  Rng rng(6);
  const int64_t tokens = 12, rows = config.max_text_seq_length;
  BlockCheck check;
  check.grid = {2, 2, 3};
  check.inputs = stream_inputs(rng, tokens, config.dim(), rows, config.dim());
  check.inputs["c"] = rng.normal_tensor({1, config.time_embed_dim});
  check.ours = [&] {
    const auto& in = check.inputs;
    const TokenStreams out = block({in.at("visual"), in.at("text")}, silu(in.at("c")));
    return std::pair{out.video, out.text};
  };
  expect_script_matches("cogvideox", model, check);
}

}  // namespace
}  // namespace vdit
