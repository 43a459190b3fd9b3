// The original Wan <-> diffusers key map, checked key by key against a table written out here
// from diffusers' scripts/convert_wan_to_diffusers.py and transformer_wan.py.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "autograd/check.h"
#include "data/diffusers_names.h"
#include "layers/vdit_config.h"

namespace vdit {
namespace {

using ::testing::HasSubstr;

const std::map<std::string, std::string> kTopLevel = {
    {"patch_embedding.weight", "patch_embedding.weight"},
    {"patch_embedding.bias", "patch_embedding.bias"},
    {"text_embedding.0.weight", "condition_embedder.text_embedder.linear_1.weight"},
    {"text_embedding.0.bias", "condition_embedder.text_embedder.linear_1.bias"},
    {"text_embedding.2.weight", "condition_embedder.text_embedder.linear_2.weight"},
    {"text_embedding.2.bias", "condition_embedder.text_embedder.linear_2.bias"},
    {"time_embedding.0.weight", "condition_embedder.time_embedder.linear_1.weight"},
    {"time_embedding.0.bias", "condition_embedder.time_embedder.linear_1.bias"},
    {"time_embedding.2.weight", "condition_embedder.time_embedder.linear_2.weight"},
    {"time_embedding.2.bias", "condition_embedder.time_embedder.linear_2.bias"},
    {"time_projection.1.weight", "condition_embedder.time_proj.weight"},
    {"time_projection.1.bias", "condition_embedder.time_proj.bias"},
    {"head.modulation", "scale_shift_table"},
    {"head.head.weight", "proj_out.weight"},
    {"head.head.bias", "proj_out.bias"},
};

// Inside "blocks.<i>." in both layouts.
const std::map<std::string, std::string> kBlock = {
    {"modulation", "scale_shift_table"},
    {"self_attn.q.weight", "attn1.to_q.weight"},
    {"self_attn.q.bias", "attn1.to_q.bias"},
    {"self_attn.k.weight", "attn1.to_k.weight"},
    {"self_attn.k.bias", "attn1.to_k.bias"},
    {"self_attn.v.weight", "attn1.to_v.weight"},
    {"self_attn.v.bias", "attn1.to_v.bias"},
    {"self_attn.o.weight", "attn1.to_out.0.weight"},
    {"self_attn.o.bias", "attn1.to_out.0.bias"},
    {"self_attn.norm_q.weight", "attn1.norm_q.weight"},
    {"self_attn.norm_k.weight", "attn1.norm_k.weight"},
    {"norm3.weight", "norm2.weight"},
    {"norm3.bias", "norm2.bias"},
    {"cross_attn.q.weight", "attn2.to_q.weight"},
    {"cross_attn.q.bias", "attn2.to_q.bias"},
    {"cross_attn.k.weight", "attn2.to_k.weight"},
    {"cross_attn.k.bias", "attn2.to_k.bias"},
    {"cross_attn.v.weight", "attn2.to_v.weight"},
    {"cross_attn.v.bias", "attn2.to_v.bias"},
    {"cross_attn.o.weight", "attn2.to_out.0.weight"},
    {"cross_attn.o.bias", "attn2.to_out.0.bias"},
    {"cross_attn.norm_q.weight", "attn2.norm_q.weight"},
    {"cross_attn.norm_k.weight", "attn2.norm_k.weight"},
    {"ffn.0.weight", "ffn.net.0.proj.weight"},
    {"ffn.0.bias", "ffn.net.0.proj.bias"},
    {"ffn.2.weight", "ffn.net.2.weight"},
    {"ffn.2.bias", "ffn.net.2.bias"},
};

// Original key -> diffusers key for every parameter of a 2-block model.
std::map<std::string, std::string> expected_two_block_map() {
  std::map<std::string, std::string> expected = kTopLevel;
  for (const std::string block : {"blocks.0.", "blocks.1."})
    for (const auto& [original, diffusers] : kBlock) expected[block + original] = block + diffusers;
  return expected;
}

std::vector<std::string> two_block_names() {
  VDiTConfig config;
  config.num_layers = 2;
  std::vector<std::string> names;
  for (const ParamSpec& spec : wan_parameter_specs(config)) names.push_back(spec.name);
  return names;
}

std::string error_of(std::string (*map)(const std::string&), const std::string& key) {
  try {
    map(key);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(DiffusersNames, EveryParameterOfATwoBlockModelMapsAsTheConverterDoes) {
  const std::map<std::string, std::string> expected = expected_two_block_map();
  const std::vector<std::string> names = two_block_names();
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), expected.size())
      << "the table above no longer covers every parameter spec";
  for (const std::string& original : names) {
    ASSERT_TRUE(expected.count(original)) << original << " is missing from the expected table";
    EXPECT_EQ(original_to_diffusers(original), expected.at(original)) << original;
    EXPECT_EQ(diffusers_to_original(expected.at(original)), original) << expected.at(original);
  }
}

TEST(DiffusersNames, RoundTripsBothWaysWithoutCollisions) {
  std::set<std::string> diffusers_names;
  for (const std::string& original : two_block_names()) {
    const std::string diffusers = original_to_diffusers(original);
    EXPECT_TRUE(diffusers_names.insert(diffusers).second) << diffusers << " is the image of two keys";
    EXPECT_EQ(diffusers_to_original(diffusers), original);
    EXPECT_EQ(original_to_diffusers(diffusers_to_original(diffusers)), diffusers);
  }
}

TEST(DiffusersNames, BlockIndicesCarryOverUnchanged) {
  EXPECT_EQ(original_to_diffusers("blocks.39.cross_attn.o.bias"), "blocks.39.attn2.to_out.0.bias");
  EXPECT_EQ(diffusers_to_original("blocks.12.norm2.weight"), "blocks.12.norm3.weight");
}

TEST(DiffusersNames, ImageToVideoKeysFollowTheConverter) {
  const std::map<std::string, std::string> i2v = {
      {"img_emb.proj.0.weight", "condition_embedder.image_embedder.norm1.weight"},
      {"img_emb.proj.1.bias", "condition_embedder.image_embedder.ff.net.0.proj.bias"},
      {"img_emb.proj.3.weight", "condition_embedder.image_embedder.ff.net.2.weight"},
      {"img_emb.proj.4.bias", "condition_embedder.image_embedder.norm2.bias"},
      {"img_emb.emb_pos", "condition_embedder.image_embedder.pos_embed"},
      {"blocks.3.cross_attn.k_img.weight", "blocks.3.attn2.add_k_proj.weight"},
      {"blocks.3.cross_attn.v_img.bias", "blocks.3.attn2.add_v_proj.bias"},
      {"blocks.3.cross_attn.norm_k_img.weight", "blocks.3.attn2.norm_added_k.weight"},
  };
  for (const auto& [original, diffusers] : i2v) {
    EXPECT_EQ(original_to_diffusers(original), diffusers);
    EXPECT_EQ(diffusers_to_original(diffusers), original);
  }
}

TEST(DiffusersNames, KeysWithoutCounterpartErrorNamingTheKey) {
  // Parameterless norms, parameters a module does not have, malformed block prefixes, trailing
  // junk, and keys of the other layout.
  for (const std::string key : {"blocks.0.norm2.weight", "blocks.0.self_attn.norm_q.bias", "self_attn.q.weight",
                                "blocks.x.self_attn.q.weight", "blocks.0.self_attn.q.weight.extra",
                                "blocks..ffn.0.bias", "head.modulation.weight", "blocks.0.attn1.to_q.weight",
                                "scale_shift_table", ""}) {
    EXPECT_THAT(error_of(original_to_diffusers, key), HasSubstr("'" + key + "'")) << key;
  }
  for (const std::string key : {"blocks.0.norm3.weight", "norm_out.weight", "blocks.0.attn1.norm_q.bias",
                                "blocks.0.self_attn.q.weight", "head.head.weight", "blocks.1.scale_shift_table.x"}) {
    EXPECT_THAT(error_of(diffusers_to_original, key), HasSubstr("'" + key + "'")) << key;
  }
}

TEST(DiffusersNames, LayoutIsDetectedFromTheNames) {
  std::vector<std::string> diffusers;
  for (const std::string& name : two_block_names()) diffusers.push_back(original_to_diffusers(name));
  EXPECT_TRUE(is_diffusers_layout(diffusers));
  EXPECT_FALSE(is_diffusers_layout(two_block_names()));
  EXPECT_FALSE(is_diffusers_layout({}));
  EXPECT_TRUE(is_diffusers_layout({"blocks.0.attn1.to_q.weight"}));  // one block of a shard
}

}  // namespace
}  // namespace vdit
