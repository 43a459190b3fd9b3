#include "train/run_state.h"

#include <boost/archive/text_iarchive.hpp>
#include <boost/archive/text_oarchive.hpp>
#include <boost/serialization/array.hpp>
#include <boost/serialization/collection_size_type.hpp>
#include <boost/serialization/item_version_type.hpp>
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

namespace {

// What load() deserializes in place of a RunState: the same fields in the same archive format,
// except that the two of variable length are read here and their lengths checked against the
// bytes left before anything is allocated. Boost sizes a string or vector by the count it
// reads, so one corrupt digit in a state file of a few hundred bytes would otherwise allocate
// terabytes (found by fuzz/fuzz_run_state.cpp).
struct RunStateReader {
  RunState& state;
  std::istringstream& in;  // the archive's stream, over the whole file
  size_t size;             // the file's length

  void check_length(const char* field, uint64_t length, uint64_t min_bytes_each) {
    const uint64_t left = size - static_cast<uint64_t>(in.tellg());
    VDIT_CHECK(length <= left / min_bytes_each,
               field << " claims " << length << " elements, but only " << left << " bytes follow");
  }

  template <class Archive>
  void serialize(Archive& ar, const unsigned int /*version*/) {
    ar & state.step & state.sigma_rng & state.noise_rng & state.data_rng & state.epoch & state.cursor;
    // A vector as Boost writes it: count, item version, then the items ("N ", two bytes at least).
    boost::serialization::collection_size_type count;
    ar & count;
    if (boost::archive::library_version_type(3) < ar.get_library_version()) {
      boost::serialization::item_version_type item_version(0);
      ar & item_version;
    }
    check_length("order", count, 2);
    state.order.resize(count);
    for (int64_t& batch : state.order) ar & batch;
    ar & state.smoothed_loss;
    // A string as the text archive writes it: its length, one space, its characters.
    std::size_t length = 0;
    ar & length;
    in.get();
    check_length("run_config", length, 1);
    state.run_config.resize(length);
    in.read(state.run_config.data(), static_cast<std::streamsize>(length));
    VDIT_CHECK(in, "run_config is cut short");
  }
};

}  // namespace

RunState RunState::load(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  VDIT_CHECK(file, "cannot read run state " << path);
  std::ostringstream text;
  text << file.rdbuf();
  const std::string contents = text.str();
  // Boost reads the archive's signature as a string sized by the number it starts with, so
  // the header is checked first: a corrupt first number would allocate gigabytes.
  const std::string signature = boost::archive::BOOST_ARCHIVE_SIGNATURE();
  const std::string header = std::to_string(signature.size()) + " " + signature + " ";
  VDIT_CHECK(contents.starts_with(header),
             "run state " << path << " is corrupt: it does not start with '" << header << "' (a Boost text archive)");
  std::istringstream in(contents);
  RunState state;
  try {
    boost::archive::text_iarchive archive(in);
    RunStateReader reader{state, in, contents.size()};
    archive >> reader;
  } catch (const std::exception& e) {
    VDIT_FAIL("run state " << path << " is corrupt: " << e.what());
  }
  return state;
}

}  // namespace vdit
