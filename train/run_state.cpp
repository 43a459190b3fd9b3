#include "train/run_state.h"

#include <boost/archive/text_iarchive.hpp>
#include <boost/archive/text_oarchive.hpp>
#include <boost/serialization/array.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/vector.hpp>
#include <fstream>
#include <sstream>

#include "autograd/check.h"
#include "data/atomic_file.h"

namespace boost::serialization {

template <class Archive>
void serialize(Archive& ar, vdit::RunState& s, const unsigned int /*version*/) {
  ar & s.step & s.sigma_rng & s.noise_rng & s.data_rng & s.epoch & s.cursor & s.order &
      s.smoothed_loss & s.run_config;
}

}  // namespace boost::serialization

namespace vdit {

void RunState::save(const std::string& path) const {
  std::ostringstream text;
  {
    boost::archive::text_oarchive archive(text);
    archive << *this;
  }
  write_text_atomically(path, text.str());
}

RunState RunState::load(const std::string& path) {
  std::ifstream in(path);
  VDIT_CHECK(in, "cannot read run state " << path);
  RunState state;
  try {
    boost::archive::text_iarchive archive(in);
    archive >> state;
  } catch (const std::exception& e) {
    VDIT_FAIL("run state " << path << " is corrupt: " << e.what());
  }
  return state;
}

}  // namespace vdit
