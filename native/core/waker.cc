#include "waker.hh"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#if defined(__linux__)
#include <sys/eventfd.h>
#endif

namespace sb {

int Waker::open() {
#if defined(__linux__)
  read_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  return read_ ? 0 : errno;
#else
  int fds[2];
  if (pipe(fds) != 0) return errno;
  read_.reset(fds[0]);
  write_.reset(fds[1]);
  for (int fd : fds) {
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
      return errno;
  }
  return 0;
#endif
}

void Waker::wake() {
  // A full pipe or a saturated eventfd already means "awake": EAGAIN is success here.
#if defined(__linux__)
  const uint64_t one = 1;
  ssize_t r;
  do r = ::write(read_.get(), &one, sizeof(one));
  while (r < 0 && errno == EINTR);
#else
  const char one = 1;
  ssize_t r;
  do r = ::write(write_.get(), &one, 1);
  while (r < 0 && errno == EINTR);
#endif
}

void Waker::drain() {
  char buf[64];
  while (::read(read_.get(), buf, sizeof(buf)) > 0) {
  }
}

}  // namespace sb
