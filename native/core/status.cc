#include "status.hh"

namespace sb {

const char* status_code(Status s) {
  switch (s) {
#define SB_STATUS_CODE(name, code, message) \
  case Status::name:                        \
    return code;
    SB_STATUS_MAP(SB_STATUS_CODE)
#undef SB_STATUS_CODE
  }
  return "SB_UNKNOWN";
}

const char* status_message(Status s) {
  switch (s) {
#define SB_STATUS_MESSAGE(name, code, message) \
  case Status::name:                           \
    return message;
    SB_STATUS_MAP(SB_STATUS_MESSAGE)
#undef SB_STATUS_MESSAGE
  }
  return "unknown status";
}

}  // namespace sb
