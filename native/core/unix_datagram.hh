// One datagram to an AF_UNIX socket: how a service talks to systemd's NOTIFY_SOCKET
// (READY=1, STATUS=…, WATCHDOG=1). Node has no AF_UNIX datagram socket, so the daemon sends
// its notifications through the addon.
#pragma once

#include <string>

namespace sb {

/**
 * Sends `message` as one datagram to the socket at `path` ("@name" is the abstract namespace,
 * as systemd writes it in NOTIFY_SOCKET). Returns 0, or the errno that stopped it (EINVAL for
 * an empty or too long path). Never blocks, never raises SIGPIPE, leaves no descriptor open.
 */
int send_unix_datagram(const std::string& path, const std::string& message);

}  // namespace sb
