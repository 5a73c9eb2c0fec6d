#include "socket_ops.hh"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace sb {

int open_socket(int family) {
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
  const int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  return fd >= 0 ? fd : -errno;
#else
  // macOS has no SOCK_NONBLOCK; another thread could fork between socket() and FD_CLOEXEC,
  // which only leaks a connecting socket into a child that is about to exec.
  UniqueFd fd(::socket(family, SOCK_STREAM, 0));
  if (!fd) return -errno;
  if (fcntl(fd.get(), F_SETFD, FD_CLOEXEC) != 0 ||
      fcntl(fd.get(), F_SETFL, fcntl(fd.get(), F_GETFL) | O_NONBLOCK) != 0)
    return -errno;
#if defined(SO_NOSIGPIPE)
  const int on = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_NOSIGPIPE, &on, sizeof(on));
#endif
  return fd.release();
#endif
}

int start_connect(const Endpoint& ep, bool* in_progress) {
  const int fd = open_socket(ep.family());
  if (fd < 0) return fd;
  // EINTR from a non-blocking connect means the attempt goes on asynchronously (POSIX);
  // calling connect() again would only report EALREADY.
  if (::connect(fd, &ep.addr.any, ep.addr_len()) == 0) {
    *in_progress = false;
    return fd;
  }
  if (errno == EINPROGRESS || errno == EINTR) {
    *in_progress = true;
    return fd;
  }
  const int err = errno;
  ::close(fd);
  return -err;
}

void abortive_close(UniqueFd& fd) {
  if (!fd) return;
  const linger lg{1, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  fd.reset();
}

}  // namespace sb
