#include "unix_datagram.hh"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "unique_fd.hh"

namespace sb {

int send_unix_datagram(const std::string& path, const std::string& message) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(address.sun_path)) return EINVAL;
  std::memcpy(address.sun_path, path.data(), path.size());
  // systemd writes an abstract socket as "@name"; on the wire its first byte is NUL and the
  // address length counts exactly the name, no terminator.
  const bool abstract = path[0] == '@';
  if (abstract) address.sun_path[0] = '\0';
  const auto length =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (abstract ? 0 : 1));

  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM, 0));
  if (!fd) return errno;
  ::fcntl(fd.get(), F_SETFD, FD_CLOEXEC);
  ::fcntl(fd.get(), F_SETFL, O_NONBLOCK);
#ifdef MSG_NOSIGNAL
  constexpr int kFlags = MSG_NOSIGNAL;
#else
  constexpr int kFlags = 0;
#endif
  const ssize_t sent = ::sendto(fd.get(), message.data(), message.size(), kFlags,
                                reinterpret_cast<const sockaddr*>(&address), length);
  if (sent < 0) return errno;
  return static_cast<size_t>(sent) == message.size() ? 0 : EMSGSIZE;
}

}  // namespace sb
