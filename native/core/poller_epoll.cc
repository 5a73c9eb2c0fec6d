// epoll poller (Linux).
#include <sys/epoll.h>

#include <cerrno>
#include <memory>
#include <vector>

#include "poller.hh"
#include "poller_backends.hh"
#include "unique_fd.hh"

namespace sb {

namespace {

uint32_t epoll_mask(Interest interest) {
  // EPOLLERR and EPOLLHUP are always reported; asking for them is implicit.
  return (interest.read ? EPOLLIN | EPOLLRDHUP : 0u) | (interest.write ? EPOLLOUT : 0u);
}

class EpollPoller final : public Poller {
 public:
  explicit EpollPoller(UniqueFd fd) : epfd_(std::move(fd)) {}

  int add(int fd, uint32_t token, Interest interest) override {
    return control(EPOLL_CTL_ADD, fd, token, interest);
  }
  int modify(int fd, uint32_t token, Interest interest) override {
    return control(EPOLL_CTL_MOD, fd, token, interest);
  }
  void remove(int fd) override {
    // Closing an fd drops it from the set too; removing first keeps the set exact when the
    // fd was dup'ed elsewhere (fork), where close alone would leave it registered.
    epoll_event unused{};
    epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, fd, &unused);
  }

  int wait(int timeout_ms, PollEvent* events, int max_events) override {
    if (raw_.size() < static_cast<size_t>(max_events)) raw_.resize(max_events);
    const int n = epoll_wait(epfd_.get(), raw_.data(), max_events, timeout_ms);
    if (n < 0) return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; ++i) {
      const uint32_t ev = raw_[i].events;
      events[i] = PollEvent{raw_[i].data.u32, (ev & (EPOLLIN | EPOLLRDHUP)) != 0,
                            (ev & EPOLLOUT) != 0, (ev & (EPOLLERR | EPOLLHUP)) != 0};
    }
    return n;
  }

 private:
  int control(int op, int fd, uint32_t token, Interest interest) {
    epoll_event ev{};
    ev.events = epoll_mask(interest);
    ev.data.u32 = token;
    return epoll_ctl(epfd_.get(), op, fd, &ev) == 0 ? 0 : errno;
  }

  UniqueFd epfd_;
  std::vector<epoll_event> raw_;
};

}  // namespace

std::unique_ptr<Poller> make_epoll_poller(int* err) {
  UniqueFd fd(epoll_create1(EPOLL_CLOEXEC));
  if (!fd) {
    *err = errno;
    return nullptr;
  }
  return std::make_unique<EpollPoller>(std::move(fd));
}

}  // namespace sb
