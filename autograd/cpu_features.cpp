#include "autograd/cpu_features.h"

#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace vdit {

namespace {

#if defined(__x86_64__)
struct Registers {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
};

Registers cpuid(unsigned leaf, unsigned subleaf) {
  Registers r;
  if (!__get_cpuid_count(leaf, subleaf, &r.eax, &r.ebx, &r.ecx, &r.edx)) return {};
  return r;
}

bool bit(unsigned value, int n) { return (value >> n) & 1u; }

CpuFeatures detect() {
  CpuFeatures cpu;
  const Registers basic = cpuid(1, 0);
  // The OS saves a register file only where XCR0 says so: YMM (bits 1-2), ZMM and opmask
  // (5-7), AMX tiles (17-18). Without it the instructions fault, whatever cpuid claims.
  uint64_t xcr0 = 0;
  if (bit(basic.ecx, 27)) {  // OSXSAVE
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = (static_cast<uint64_t>(hi) << 32) | lo;
  }
  const bool ymm = (xcr0 & 0x6) == 0x6, zmm = ymm && (xcr0 & 0xe0) == 0xe0;
  const bool tiles = (xcr0 & 0x60000) == 0x60000;
  const Registers ext = cpuid(7, 0), ext1 = cpuid(7, 1);
  cpu.avx2 = ymm && bit(ext.ebx, 5) && bit(basic.ecx, 12);
  cpu.avx512 = zmm && bit(ext.ebx, 16) && bit(ext.ebx, 28) && bit(ext.ebx, 30) && bit(ext.ebx, 17) &&
               bit(ext.ebx, 31);
  cpu.avx512_bf16 = cpu.avx512 && bit(ext1.eax, 5);
  cpu.amx_bf16 = tiles && bit(ext.edx, 24) && bit(ext.edx, 22);
  char brand[49] = {};
  if (cpuid(0x80000000u, 0).eax >= 0x80000004u)
    for (unsigned i = 0; i < 3; ++i) {
      const Registers r = cpuid(0x80000002u + i, 0);
      std::memcpy(brand + 16 * i, &r, 16);
    }
  cpu.model = brand;
  cpu.model.erase(0, cpu.model.find_first_not_of(' '));
  return cpu;
}
#else
CpuFeatures detect() { return {}; }
#endif

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures cpu = detect();
  return cpu;
}

std::string isa_summary(const CpuFeatures& cpu) {
  std::string s;
  for (const auto& [present, name] : {std::pair{cpu.avx2, "AVX2"}, std::pair{cpu.avx512, "AVX-512"},
                                      std::pair{cpu.avx512_bf16, "AVX512-BF16"}, std::pair{cpu.amx_bf16, "AMX-BF16"}})
    if (present) s.append(s.empty() ? "" : " ").append(name);
  return s.empty() ? "none of AVX2, AVX-512, AVX512-BF16, AMX-BF16" : s;
}

}  // namespace vdit
