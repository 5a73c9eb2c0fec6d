// kqueue poller (macOS and the BSDs).
#include <sys/event.h>
#include <sys/time.h>

#include <cerrno>
#include <memory>
#include <vector>

#include "poller.hh"
#include "poller_backends.hh"
#include "unique_fd.hh"

namespace sb {

namespace {

class KqueuePoller final : public Poller {
 public:
  explicit KqueuePoller(UniqueFd fd) : kq_(std::move(fd)) {}

  int add(int fd, uint32_t token, Interest interest) override {
    return apply(fd, token, interest, Interest{});
  }
  int modify(int fd, uint32_t token, Interest interest) override {
    return apply(fd, token, interest, Interest{true, true});
  }
  void remove(int fd) override {
    // kqueue filters are two independent registrations; delete both and ignore ENOENT.
    struct kevent changes[2];
    EV_SET(&changes[0], fd, EVFILT_READ, EV_DELETE, 0, 0, nullptr);
    EV_SET(&changes[1], fd, EVFILT_WRITE, EV_DELETE, 0, 0, nullptr);
    for (auto& change : changes) kevent(kq_.get(), &change, 1, nullptr, 0, nullptr);
  }

  int wait(int timeout_ms, PollEvent* events, int max_events) override {
    if (raw_.size() < static_cast<size_t>(max_events)) raw_.resize(max_events);
    timespec ts{timeout_ms / 1000, static_cast<long>(timeout_ms % 1000) * 1000000L};
    const int n =
        kevent(kq_.get(), nullptr, 0, raw_.data(), max_events, timeout_ms < 0 ? nullptr : &ts);
    if (n < 0) return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; ++i) {
      const struct kevent& ev = raw_[i];
      // EV_EOF on a connecting socket carries the connect error in fflags.
      const bool eof = (ev.flags & EV_EOF) != 0;
      events[i] =
          PollEvent{static_cast<uint32_t>(reinterpret_cast<uintptr_t>(ev.udata)),
                    ev.filter == EVFILT_READ, ev.filter == EVFILT_WRITE,
                    eof || (ev.flags & EV_ERROR) != 0, eof ? static_cast<int>(ev.fflags) : 0};
    }
    return n;
  }

 private:
  // Adds the filters in `want` and deletes those in `had` that `want` drops.
  int apply(int fd, uint32_t token, Interest want, Interest had) {
    struct kevent changes[2];
    int n = 0;
    void* udata = reinterpret_cast<void*>(static_cast<uintptr_t>(token));
    if (want.read || had.read)
      EV_SET(&changes[n++], fd, EVFILT_READ, want.read ? EV_ADD : EV_DELETE, 0, 0, udata);
    if (want.write || had.write)
      EV_SET(&changes[n++], fd, EVFILT_WRITE, want.write ? EV_ADD : EV_DELETE, 0, 0, udata);
    for (int i = 0; i < n; ++i) {
      if (kevent(kq_.get(), &changes[i], 1, nullptr, 0, nullptr) < 0 &&
          !(changes[i].flags & EV_DELETE && errno == ENOENT))
        return errno;
    }
    return 0;
  }

  UniqueFd kq_;
  std::vector<struct kevent> raw_;
};

}  // namespace

std::unique_ptr<Poller> make_kqueue_poller(int* err) {
  UniqueFd fd(kqueue());
  if (!fd) {
    *err = errno;
    return nullptr;
  }
  return std::make_unique<KqueuePoller>(std::move(fd));
}

}  // namespace sb
