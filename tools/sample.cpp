// vditkit sample: generate with a model by the flow-matching Euler sampler with
// classifier-free guidance; MP4 for pixel-space models, latents .h5 otherwise. With
// --transfer-from, attention-map transfer editing (train/transfer_sampling.h).
#include <iostream>

#include "autograd/check.h"
#include "data/finite_check.h"
#include "data/hdf5_file.h"
#include "tools/command.h"
#include "tools/sampling_flags.h"
#include "train/layer_selection.h"
#include "train/progress.h"

namespace vdit::cli {
namespace {

int run_sample(int argc, char** argv) {
  std::string prompt, context_path, out, transfer_from, transfer_layers = "all", transfer_steps = "all", source_out;
  int fps = 8;
  SamplingFlags flags;
  po::options_description options;
  flags.add_to(options);
  options.add_options()
      ("prompt", po::value(&prompt)->default_value(""), "text, embedded by the stand-in word table (as make-dataset does)")
      ("context", po::value(&context_path)->default_value(""), "HDF5 with `context` [L, text_dim] (a real text encoder's output)")
      ("fps", po::value(&fps)->default_value(fps), "frames per second of the MP4")
      ("out", po::value(&out)->required(), "video.mp4 (pixel-space models) or latents.h5")
      ("transfer-from", po::value(&transfer_from)->default_value(""),
       "attention-map transfer editing: a SOURCE PROMPT sampled in lockstep from the same noise, whose "
       "self- (or joint) attention maps the output takes in the chosen blocks and steps (with its own values); with "
       "guidance, in both the conditional and the unconditional pass")
      ("transfer-layers", po::value(&transfer_layers)->default_value(transfer_layers), "blocks that transfer: 0,3,19, 10-12 or all")
      ("transfer-steps", po::value(&transfer_steps)->default_value(transfer_steps),
       "denoising steps that transfer: A-B, A or all (counted from 1)")
      ("source-out", po::value(&source_out)->default_value(""), "also write the source's sample here (.mp4 or .h5)");
  const po::variables_map vm = parse_options(
      argc, argv,
      "vditkit sample --model M [--prompt TEXT | --context C.h5] --out video.mp4|latents.h5 "
      "[--transfer-from SOURCE --transfer-layers 0,3 --transfer-steps 1-10 --source-out src.mp4] [--device cuda]",
      options);
  if (vm.empty()) return 0;
  if (!prompt.empty() && !context_path.empty()) throw UsageError("give at most one of --prompt and --context");
  const bool transfer = !transfer_from.empty();
  if (!transfer && (!vm["transfer-layers"].defaulted() || !vm["transfer-steps"].defaulted() || !source_out.empty()))
    throw UsageError("--transfer-layers, --transfer-steps and --source-out need --transfer-from");
  if (transfer && prompt.empty() && context_path.empty())
    throw UsageError("--transfer-from needs a target: --prompt or --context");
  flags.device.device();  // bad flags are reported before the model loads
  const TransferSteps steps = parse_transfer_steps(transfer_steps, flags.options.steps);

  const std::unique_ptr<Model> model = flags.load_model();
  const ModelFacts c = model->facts();
  for (const std::string& path : {out, source_out}) check_sample_path(path, c.in_channels);
  Tensor context;
  if (!prompt.empty()) context = prompt_context(prompt, c);
  if (!context_path.empty()) {
    context = Hdf5File(context_path, Hdf5File::Mode::Read).read("context");
    check_finite(context, context_path + ": dataset 'context'");
  }

  const SamplingOptions& o = flags.options;
  ProgressLine line("sample", o.steps);
  const auto progress = [&](int64_t step, int64_t) { line.update(step, ""); };
  Tensor x, source;
  if (transfer) {
    const TransferTarget target{context, parse_block_list(transfer_layers, *model, "--transfer-layers")};
    const std::vector<Tensor> both =
        sample_with_transfer(*model, flags.latent_shape(c), prompt_context(transfer_from, c), {target}, o, steps, progress);
    source = both[0];
    x = both[1];
  } else {
    x = sample(*model, flags.latent_shape(c), context, o, progress);
  }
  line.finish();
  if (!source_out.empty()) {
    write_sample(source_out, source, fps);
    std::cout << "wrote " << source_out << " (source, \"" << transfer_from << "\")\n";
  }
  write_sample(out, x, fps);
  std::cout << "wrote " << out << " (" << to_string(x.shape()) << (prompt.empty() ? "" : ", \"" + prompt + "\"") << ")\n";
  return 0;
}

const RegisterCommand reg("sample", "generate a video (or latents) with the flow-matching sampler", run_sample);

}  // namespace
}  // namespace vdit::cli
