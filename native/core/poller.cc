#include "poller.hh"

#include <cerrno>

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
  switch (backend) {
    case Backend::kAuto:
      return backend_name(native_backend());
    case Backend::kEpoll:
      return "epoll";
    case Backend::kKqueue:
      return "kqueue";
    case Backend::kPoll:
      return "poll";
  }
  return "unknown";
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
