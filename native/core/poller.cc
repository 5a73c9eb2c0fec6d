#include "poller.hh"

#include <cerrno>
#include <cstring>

#include "poller_backends.hh"

namespace sb {

Backend native_backend() {
#if defined(__linux__)
  return Backend::kEpoll;
#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__)
  return Backend::kKqueue;
#else
  return Backend::kPoll;
#endif
}

const char* backend_name(Backend backend) {
  if (backend == Backend::kAuto) backend = native_backend();
  switch (backend) {
#define SB_BACKEND_NAME(name, text) \
  case Backend::name:               \
    return text;
    SB_BACKEND_MAP(SB_BACKEND_NAME)
#undef SB_BACKEND_NAME
  }
  return "unknown";
}

bool parse_backend(const char* name, Backend* out) {
#define SB_BACKEND_PARSE(value, text) \
  if (std::strcmp(name, text) == 0) { \
    *out = Backend::value;            \
    return true;                      \
  }
  SB_BACKEND_MAP(SB_BACKEND_PARSE)
#undef SB_BACKEND_PARSE
  return false;
}

std::unique_ptr<Poller> make_poller(Backend backend, int* err) {
  if (backend == Backend::kAuto) backend = native_backend();
  switch (backend) {
#if defined(__linux__)
    case Backend::kEpoll:
      return make_epoll_poller(err);
#endif
#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__) || \
    defined(SB_KQUEUE_EMULATION)
    case Backend::kKqueue:
      return make_kqueue_poller(err);
#endif
    case Backend::kPoll:
      return make_poll_poller(err);
    default:
      *err = ENOTSUP;
      return nullptr;
  }
}

}  // namespace sb
