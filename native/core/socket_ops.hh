// The socket operations the scan and its probes share: a non-blocking connect, the send flag
// that keeps SIGPIPE away, and the RST close.
#pragma once

#include <sys/socket.h>

#include "endpoint.hh"
#include "unique_fd.hh"

namespace sb {

#if defined(MSG_NOSIGNAL)
constexpr int kSendFlags = MSG_NOSIGNAL;
#else
constexpr int kSendFlags = 0;  // macOS: SO_NOSIGPIPE is set on the socket instead
#endif

// Non-blocking, close-on-exec TCP socket. Returns -errno on failure.
int open_socket(int family);

// Opens a non-blocking socket and starts connecting. Returns the fd (>= 0) with *in_progress
// telling whether the connect is still under way, or -errno.
int start_connect(const Endpoint& ep, bool* in_progress);

// Closes a socket with RST instead of FIN: the scanner keeps no TIME_WAIT entry, so repeated
// scans of a large range do not run out of ephemeral ports, and a server with a request of
// ours still queued drops it instead of answering a closed peer.
void abortive_close(UniqueFd& fd);

}  // namespace sb
