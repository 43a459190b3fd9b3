#pragma once
// Errors are values with context: VDIT_CHECK throws vdit::Error carrying a message built with
// stream syntax, e.g. VDIT_CHECK(a == b, "key " << key << " has shape " << to_string(s)).
#include <sstream>
#include <stdexcept>
#include <string>

namespace vdit {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace vdit

#define VDIT_CHECK(cond, msg)                 \
  do {                                        \
    if (!(cond)) {                            \
      std::ostringstream vdit_check_stream_;  \
      vdit_check_stream_ << msg;              \
      throw ::vdit::Error(vdit_check_stream_.str()); \
    }                                         \
  } while (0)

#define VDIT_FAIL(msg) VDIT_CHECK(false, msg)
