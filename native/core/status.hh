// Status codes the core returns to its callers. One X-macro table, so the binding can map
// each to a stable JS error code without a second list to keep in sync.
#pragma once

namespace sb {

#define SB_STATUS_MAP(X)                                                    \
  X(kOk, "SB_OK", "ok")                                                     \
  X(kInvalidArgument, "SB_INVALID_ARGUMENT", "invalid argument")            \
  X(kInvalidEndpoints, "SB_INVALID_ENDPOINTS", "malformed endpoint buffer") \
  X(kPollerFailed, "SB_POLLER_FAILED", "could not create the event poller") \
  X(kThreadFailed, "SB_THREAD_FAILED", "could not start a scan thread")

enum class Status {
#define SB_STATUS_ENUM(name, code, message) name,
  SB_STATUS_MAP(SB_STATUS_ENUM)
#undef SB_STATUS_ENUM
};

const char* status_code(Status s);
const char* status_message(Status s);

}  // namespace sb
