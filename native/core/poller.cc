#include "poller.hh"

#include <cerrno>
#include <cstring>

#include "poller_backends.hh"

namespace sb {

PollerKind native_poller() {
#if defined(__linux__)
  return PollerKind::kEpoll;
#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__)
  return PollerKind::kKqueue;
#else
  return PollerKind::kPoll;
#endif
}

bool parse_poller(const char* name, PollerKind* out) {
#define SB_POLLER_PARSE(value, text)  \
  if (std::strcmp(name, text) == 0) { \
    *out = PollerKind::value;         \
    return true;                      \
  }
  SB_POLLER_MAP(SB_POLLER_PARSE)
#undef SB_POLLER_PARSE
  return false;
}

std::unique_ptr<Poller> make_poller(PollerKind poller, int* err) {
  if (poller == PollerKind::kAuto) poller = native_poller();
  switch (poller) {
#if defined(__linux__)
    case PollerKind::kEpoll:
      return make_epoll_poller(err);
#endif
#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__) || \
    defined(SB_KQUEUE_EMULATION)
    case PollerKind::kKqueue:
      return make_kqueue_poller(err);
#endif
    case PollerKind::kPoll:
      return make_poll_poller(err);
    default:
      *err = ENOTSUP;
      return nullptr;
  }
}

}  // namespace sb
