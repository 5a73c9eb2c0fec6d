// Readiness notification, one implementation per OS mechanism (epoll, kqueue, poll), chosen
// by name so tests can run the same scan over every poller the platform has.
#pragma once

#include <cstdint>
#include <memory>

namespace sb {

// Each poller and the name JS chooses it by (the scan's poller option); the binding parses
// names and reports the list to the loader from this table alone.
#define SB_POLLER_MAP(X) \
  X(kAuto, "auto")       \
  X(kEpoll, "epoll")     \
  X(kKqueue, "kqueue")   \
  X(kPoll, "poll")

enum class PollerKind {
#define SB_POLLER_ENUM(name, text) name,
  SB_POLLER_MAP(SB_POLLER_ENUM)
#undef SB_POLLER_ENUM
};

struct Interest {
  bool read = false;
  bool write = false;
};

struct PollEvent {
  uint32_t token = 0;
  bool readable = false;
  bool writable = false;
  bool error = false;  // error or hang-up: the owner reads SO_ERROR to learn which
  // The socket's error when the poller already has it (kqueue's EV_EOF carries it in fflags;
  // a kqueue emulation may even have read SO_ERROR, which clears it). 0: ask SO_ERROR.
  int socket_error = 0;
};

class Poller {
 public:
  virtual ~Poller() = default;
  // Each returns 0 or an errno value.
  virtual int add(int fd, uint32_t token, Interest interest) = 0;
  virtual int modify(int fd, uint32_t token, Interest interest) = 0;
  virtual void remove(int fd) = 0;
  // Waits up to timeout_ms (-1: forever). Returns the number of events written, 0 on
  // timeout or EINTR (the caller recomputes its deadlines either way), or -errno.
  virtual int wait(int timeout_ms, PollEvent* events, int max_events) = 0;
};

// Returns nullptr and sets *err (an errno value, or ENOTSUP for a poller this platform
// lacks) when the poller cannot be created.
std::unique_ptr<Poller> make_poller(PollerKind poller, int* err);

// The poller kAuto resolves to on this platform.
PollerKind native_poller();
// The poller a name chooses ("auto" included); false for a name not in the table.
bool parse_poller(const char* name, PollerKind* out);

}  // namespace sb
