#pragma once
// How far apart two samples of one model are, for the studies (issue 16): over the latents, and
// for pixel-space models over the frames a viewer sees.
#include <vector>

#include "autograd/tensor.h"

namespace vdit {

// sqrt(mean((a - b)^2)) over every element, summed in double; a and b of one shape, on the host.
double rms_distance(const Tensor& a, const Tensor& b);

// Per frame f of pixel-space samples [3, F, H, W] (RGB in [-1, 1]), the PSNR of b against a in
// dB over the pixels an MP4 gets (sample_pixels: [0, 1], clamped), 10 log10(1 / MSE_f);
// +infinity for identical frames.
std::vector<double> frame_psnr(const Tensor& a, const Tensor& b);

}  // namespace vdit
