#pragma once
// Position tables a model makes from its token grid (RoPE), kept for the last grid: every forward
// of a run sees the same grid, and the tables cost host time per token to make.
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

namespace vdit {

template <class Tables, class Key>
class GridTablesCache {
 public:
  // The tables of `grid` under `key` (what else they depend on), made by `make` when either
  // differs from the last call's. Thread-safe; copies of a model share one cache.
  Tables get(const std::array<int64_t, 3>& grid, const Key& key, const std::function<Tables()>& make) const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    if (!state_->valid || state_->grid != grid || !(state_->key == key)) {
      state_->tables = make();
      state_->grid = grid;
      state_->key = key;
      state_->valid = true;
    }
    return state_->tables;
  }
  // Forgets the tables (the model's parameters changed).
  void clear() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->valid = false;
    state_->tables = Tables();
  }

 private:
  struct State {
    std::mutex mutex;
    bool valid = false;
    std::array<int64_t, 3> grid{};
    Key key{};
    Tables tables;
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace vdit
