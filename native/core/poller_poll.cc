// poll(2) poller: the portable fallback. O(n) per wait, which is fine where it is the only
// choice; Linux and macOS use epoll and kqueue. Built everywhere so tests can run it too.
#include <poll.h>

#include <cerrno>
#include <memory>
#include <unordered_map>
#include <vector>

#include "poller.hh"
#include "poller_backends.hh"

namespace sb {

namespace {

short poll_mask(Interest interest) {
  return static_cast<short>((interest.read ? POLLIN : 0) | (interest.write ? POLLOUT : 0));
}

class PollPoller final : public Poller {
 public:
  int add(int fd, uint32_t token, Interest interest) override {
    if (index_.count(fd) != 0) return EEXIST;
    index_[fd] = fds_.size();
    fds_.push_back(pollfd{fd, poll_mask(interest), 0});
    tokens_.push_back(token);
    return 0;
  }
  int modify(int fd, uint32_t token, Interest interest) override {
    auto it = index_.find(fd);
    if (it == index_.end()) return ENOENT;
    fds_[it->second].events = poll_mask(interest);
    tokens_[it->second] = token;
    return 0;
  }
  void remove(int fd) override {
    auto it = index_.find(fd);
    if (it == index_.end()) return;
    const size_t pos = it->second;
    index_.erase(it);
    if (pos != fds_.size() - 1) {
      fds_[pos] = fds_.back();
      tokens_[pos] = tokens_.back();
      index_[fds_[pos].fd] = pos;
    }
    fds_.pop_back();
    tokens_.pop_back();
  }

  int wait(int timeout_ms, PollEvent* events, int max_events) override {
    const int ready = ::poll(fds_.data(), fds_.size(), timeout_ms);
    if (ready < 0) return errno == EINTR ? 0 : -errno;
    int n = 0;
    for (size_t i = 0; i < fds_.size() && n < max_events; ++i) {
      const short rev = fds_[i].revents;
      if (rev == 0) continue;
      events[n] = PollEvent{tokens_[i], (rev & POLLIN) != 0, (rev & POLLOUT) != 0,
                            (rev & (POLLERR | POLLHUP | POLLNVAL)) != 0};
      ++n;
    }
    return n;
  }

 private:
  std::vector<pollfd> fds_;
  std::vector<uint32_t> tokens_;
  std::unordered_map<int, size_t> index_;
};

}  // namespace

std::unique_ptr<Poller> make_poll_poller(int* /*err*/) { return std::make_unique<PollPoller>(); }

}  // namespace sb
