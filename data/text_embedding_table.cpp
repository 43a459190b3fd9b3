#include "data/text_embedding_table.h"

#include <algorithm>
#include <cctype>
#include <vector>

#include "autograd/check.h"
#include "autograd/random.h"

namespace vdit {

namespace {

// FNV-1a: a fixed, platform-independent hash (std::hash promises neither).
uint64_t hash_word(const std::string& word) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : word) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::vector<std::string> lower_case_words(const std::string& text) {
  std::vector<std::string> words;
  std::string word;
  for (unsigned char c : text + ' ') {
    if (std::isalnum(c)) {
      word += static_cast<char>(std::tolower(c));
    } else if (!word.empty()) {
      words.push_back(std::move(word));
      word.clear();
    }
  }
  return words;
}

}  // namespace

Tensor embed_caption(const std::string& caption, int64_t text_dim, int64_t text_len, uint64_t seed) {
  VDIT_CHECK(text_dim >= 1 && text_len >= 1,
             "embed_caption: text_dim and text_len must be at least 1, got " << text_dim << " and " << text_len);
  const std::vector<std::string> words = lower_case_words(caption);
  const int64_t rows = std::min<int64_t>(static_cast<int64_t>(words.size()), text_len);
  const uint64_t table = Rng(seed).next();  // one table per seed
  Tensor context = Tensor::empty({rows, text_dim});
  for (int64_t i = 0; i < rows; ++i) {
    Rng word(hash_word(words[i]) ^ table);
    float* row = context.data() + i * text_dim;
    for (int64_t j = 0; j < text_dim; ++j) row[j] = static_cast<float>(word.normal());
  }
  return context;
}

}  // namespace vdit
