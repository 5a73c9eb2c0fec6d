// Notifications to a datagram socket: systemd's NOTIFY_SOCKET, path and abstract forms.
#include "../core/unix_datagram.hh"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>

#include "../core/unique_fd.hh"
#include "check.hh"

namespace {

// A bound receiving socket; `name` is a path, or "@…" for the abstract namespace.
sb::UniqueFd bound_receiver(const std::string& name) {
  sb::UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, name.data(), name.size());
  socklen_t length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + 1);
  if (name[0] == '@') {
    address.sun_path[0] = '\0';
    length -= 1;
  }
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), length) != 0) return sb::UniqueFd();
  return fd;
}

std::string receive(int fd) {
  char buffer[256];
  const ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
  return n < 0 ? std::string("<nothing>") : std::string(buffer, static_cast<size_t>(n));
}

}  // namespace

TEST(datagram_reaches_a_socket_by_path) {
  const std::string path = "/tmp/sb-notify-test-" + std::to_string(::getpid());
  ::unlink(path.c_str());
  sb::UniqueFd receiver = bound_receiver(path);
  CHECK(static_cast<bool>(receiver));
  CHECK_EQ(sb::send_unix_datagram(path, "READY=1\nSTATUS=3 up"), 0);
  CHECK_EQ(receive(receiver.get()), std::string("READY=1\nSTATUS=3 up"));
  ::unlink(path.c_str());
}

TEST(datagram_reaches_an_abstract_socket) {
  const std::string name = "@sb-notify-test-" + std::to_string(::getpid());
  sb::UniqueFd receiver = bound_receiver(name);
  CHECK(static_cast<bool>(receiver));
  CHECK_EQ(sb::send_unix_datagram(name, "WATCHDOG=1"), 0);
  CHECK_EQ(receive(receiver.get()), std::string("WATCHDOG=1"));
}

TEST(datagram_errors_are_returned_not_raised) {
  CHECK_EQ(sb::send_unix_datagram("", "READY=1"), EINVAL);
  CHECK_EQ(sb::send_unix_datagram(std::string(200, 'x'), "READY=1"), EINVAL);
  CHECK_EQ(sb::send_unix_datagram("/nonexistent/sb-notify", "READY=1"), ENOENT);
  const std::string path = "/tmp/sb-notify-gone-" + std::to_string(::getpid());
  ::unlink(path.c_str());
  CHECK_EQ(sb::send_unix_datagram(path, "READY=1"), ENOENT);
}
