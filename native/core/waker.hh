// Wakes a scan thread sleeping in its poller: an eventfd on Linux, a self-pipe elsewhere.
// wake() is async-signal-safe and may be called from any thread.
#pragma once

#include "unique_fd.hh"

namespace sb {

class Waker {
 public:
  // Returns 0 or an errno value.
  int open();
  int read_fd() const { return read_.get(); }
  void wake();
  void drain();

 private:
  UniqueFd read_;
  UniqueFd write_;  // unused with eventfd, where one fd serves both ends
};

}  // namespace sb
