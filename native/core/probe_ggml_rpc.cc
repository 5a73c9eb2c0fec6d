#include "probe_ggml_rpc.hh"

#include <algorithm>
#include <cstring>

namespace sb {

namespace {

constexpr size_t kHeaderSize = 8;         // reply: u64 size, then data
constexpr size_t kConnCapsSize = 24;      // 4.x+ HELLO request and reply tail
constexpr uint64_t kHelloReplySize = 28;  // 4.x+: major, minor, patch, pad, caps[24]
constexpr uint64_t kLegacyHelloReplySize = 3;
constexpr uint64_t kDeviceCountReplySize = 4;
constexpr uint64_t kDeviceMemoryReplySize = 16;  // u64 free, u64 total

uint64_t read_le64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

uint32_t read_le32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

void append_le(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::string version_text(const uint8_t v[3]) {
  return std::to_string(v[0]) + "." + std::to_string(v[1]) + "." + std::to_string(v[2]);
}

}  // namespace

const char* GgmlRpcSession::stage_name() const {
  switch (stage_) {
    case Stage::kHelloCaps:
      return "HELLO";
    case Stage::kHelloLegacy:
      return "the 1.x-3.x HELLO";
    case Stage::kDeviceCount:
      return "DEVICE_COUNT";
    case Stage::kDeviceMemory:
      return "GET_DEVICE_MEMORY";
    case Stage::kDone:
      break;
  }
  return "the end";
}

void GgmlRpcSession::send(GgmlRpcCommand cmd, const std::string& payload, std::string* out) {
  out->push_back(static_cast<char>(cmd));
  append_le(out, payload.size(), 8);
  out->append(payload);
  reply_.clear();
  hello_size_ = 0;
  pending_ = true;
}

void GgmlRpcSession::on_connected(std::string* out) {
  step_.kind = ProbeKind::kGgmlRpc;
  nudged_ = false;
  preview_.clear();
  // conn_caps all zero: a TCP-only client.
  send(GgmlRpcCommand::kHello,
       stage_ == Stage::kHelloCaps ? std::string(kConnCapsSize, '\0') : std::string(), out);
}

uint64_t GgmlRpcSession::expected_size() const {
  switch (stage_) {
    case Stage::kHelloCaps:
      return hello_size_ != 0 ? hello_size_ : kHelloReplySize;
    case Stage::kHelloLegacy:
      return kLegacyHelloReplySize;
    case Stage::kDeviceCount:
      return kDeviceCountReplySize;
    case Stage::kDeviceMemory:
      return kDeviceMemoryReplySize;
    case Stage::kDone:
      break;
  }
  return 0;
}

SessionAction GgmlRpcSession::finish(ProbeOutcome outcome, std::string detail) {
  stage_ = Stage::kDone;
  step_.outcome = outcome;
  step_.detail = std::move(detail);
  return SessionAction::kDone;
}

// The HELLO reply's declared size, judged once its 8 bytes are in. False: the session ended.
bool GgmlRpcSession::check_declared_size(SessionAction* action) {
  const uint64_t declared = read_le64(reply_.data());
  if (stage_ == Stage::kHelloCaps && declared >= kHelloReplySize &&
      declared <= kMaxHelloReplySize) {
    hello_size_ = declared;  // 28, or longer from a fork that appends fields
    return true;
  }
  if (declared == expected_size()) return true;
  if (!awaiting_hello()) {
    *action = finish(ProbeOutcome::kProtocolError,
                     std::string(stage_name()) + " reply declares " + std::to_string(declared) +
                         " bytes where ggml-rpc sends " + std::to_string(expected_size()));
    return false;
  }
  const std::string said = "\"" + preview_ + "\"";
  *action = finish(ProbeOutcome::kNotRecognized,
                   nudged_ ? "answered a newline with " + said + ": another protocol, not ggml-rpc"
                           : "sent " + said + ", not a ggml-rpc HELLO reply");
  return false;
}

SessionAction GgmlRpcSession::on_data(const uint8_t* data, size_t size, std::string* out) {
  if (stage_ == Stage::kDone) return SessionAction::kDone;
  if (preview_.empty()) preview_ = peer_preview(data, size);
  if (!pending_) {
    return finish(ProbeOutcome::kProtocolError,
                  std::to_string(size) + " bytes arrived with no request outstanding");
  }
  // The reply is taken piece by piece (its size is known once its header is in) and never
  // buffered beyond header + declared size; anything after it is judged without buffering.
  size_t used = 0;
  while (used < size) {
    const bool header_known = reply_.size() >= kHeaderSize;
    const size_t limit = kHeaderSize + (header_known ? expected_size() : 0);
    const size_t take = std::min(limit - reply_.size(), size - used);
    reply_.append(reinterpret_cast<const char*>(data) + used, take);
    used += take;
    if (!header_known && reply_.size() == kHeaderSize) {
      SessionAction action = SessionAction::kDone;
      if (!check_declared_size(&action)) return action;
    }
    if (reply_.size() < kHeaderSize + expected_size()) continue;
    if (used < size) {
      return finish(ProbeOutcome::kProtocolError,
                    std::to_string(size - used) + " bytes beyond the " + stage_name() + " reply");
    }
    pending_ = false;
    return on_reply(out);
  }
  return SessionAction::kContinue;
}

SessionAction GgmlRpcSession::on_reply(std::string* out) {
  const char* body = reply_.data() + kHeaderSize;
  switch (stage_) {
    case Stage::kHelloCaps:
    case Stage::kHelloLegacy: {
      step_.has_version = true;
      step_.legacy_hello = stage_ == Stage::kHelloLegacy;
      std::memcpy(step_.version, body, 3);
      if (hello_size_ > kHelloReplySize) {
        note_ = "its HELLO reply carries " + std::to_string(hello_size_ - kHelloReplySize) +
                " bytes beyond the 28 this probe reads (ignored)";
      }
      const uint8_t major = step_.version[0];
      if (major == 0 || major > kNewestKnownMajor) {
        return finish(ProbeOutcome::kRecognized,
                      with_note("protocol " + version_text(step_.version) +
                                " is newer than this probe knows (up to " +
                                std::to_string(kNewestKnownMajor) + ".x); devices not queried"));
      }
      if (nudged_) {
        // The server read HELLO and will read the nudge next, which ends the connection.
        return finish(ProbeOutcome::kRecognized,
                      with_note("answered HELLO only after a pause (it became free during the "
                                "probe); devices not queried"));
      }
      if (major >= 3) {
        stage_ = Stage::kDeviceCount;
        send(GgmlRpcCommand::kDeviceCount, std::string(), out);
      } else {
        // 1.x/2.x: one device, and GET_DEVICE_MEMORY takes no index.
        device_count_ = 1;
        device_index_ = 0;
        stage_ = Stage::kDeviceMemory;
        send(GgmlRpcCommand::kGetDeviceMemory, std::string(), out);
      }
      return SessionAction::kContinue;
    }
    case Stage::kDeviceCount: {
      device_count_ = read_le32(body);
      if (device_count_ > kMaxDevices) {
        return finish(ProbeOutcome::kProtocolError, "DEVICE_COUNT says " +
                                                        std::to_string(device_count_) +
                                                        " devices, more than any server has");
      }
      if (device_count_ == 0) return finish(ProbeOutcome::kRecognized, with_note(""));
      device_index_ = 0;
      stage_ = Stage::kDeviceMemory;
      std::string index;
      append_le(&index, 0, 4);
      send(GgmlRpcCommand::kGetDeviceMemory, index, out);
      return SessionAction::kContinue;
    }
    case Stage::kDeviceMemory: {
      step_.devices.push_back(DeviceMemory{device_index_, read_le64(body), read_le64(body + 8)});
      if (++device_index_ >= device_count_) return finish(ProbeOutcome::kRecognized, with_note(""));
      std::string index;
      append_le(&index, device_index_, 4);
      send(GgmlRpcCommand::kGetDeviceMemory, index, out);
      return SessionAction::kContinue;
    }
    case Stage::kDone:
      break;
  }
  return SessionAction::kDone;
}

SessionAction GgmlRpcSession::on_closed(bool reset) {
  if (stage_ == Stage::kDone) return SessionAction::kDone;
  pending_ = false;  // the connection is gone: nothing is left to abort
  const char* how = reset ? "reset" : "closed";
  if (reply_.empty() && stage_ == Stage::kHelloCaps) {
    // A 1.x-3.x server drops the 24-byte HELLO without a byte: ask again, the old way.
    stage_ = Stage::kHelloLegacy;
    return SessionAction::kReconnect;
  }
  if (reply_.empty() && stage_ == Stage::kHelloLegacy) {
    return finish(ProbeOutcome::kNotRecognized,
                  std::string(how) +
                      " the connection at both HELLO generations without a byte (another "
                      "service, or a ggml-rpc server older than protocol 1.0)");
  }
  return finish(ProbeOutcome::kProtocolError,
                std::string(how) + " the connection during " + stage_name() + " after " +
                    std::to_string(reply_.size()) + " of " +
                    std::to_string(kHeaderSize + expected_size()) + " reply bytes");
}

// HELLO met silence. A free ggml-rpc server answers HELLO within a round trip; a busy one
// holds our connection unread in its accept queue; a line-based service (HTTP, Redis, SMTP…)
// waits for a newline. The nudge, 0xff then CRLF, makes the last kind answer. It is safe for
// a ggml-rpc server that reads it later: every version reads the command byte and, finding
// it >= RPC_CMD_COUNT, logs "Unknown command" and closes the connection before reading a
// size (rpc_serve_client), and it sends no reply that could meet a closed socket.
void GgmlRpcSession::on_quiet(std::string* out) {
  if (!awaiting_hello() || !pending_ || !reply_.empty() || nudged_) return;
  out->append(kNudge, sizeof(kNudge) - 1);
  nudged_ = true;
}

std::string GgmlRpcSession::with_note(std::string detail) const {
  if (note_.empty()) return detail;
  return detail.empty() ? note_ : detail + "; " + note_;
}

void GgmlRpcSession::on_timeout() {
  if (stage_ == Stage::kDone) return;
  const bool hello = stage_ == Stage::kHelloCaps || stage_ == Stage::kHelloLegacy;
  if (reply_.empty() && hello) {
    finish(ProbeOutcome::kSilent, nudged_ ? "accepted the connection and answered neither HELLO "
                                            "nor a newline"
                                          : "accepted the connection but sent no HELLO reply");
  } else {
    finish(ProbeOutcome::kStalled, std::to_string(reply_.size()) + " of " +
                                       std::to_string(kHeaderSize + expected_size()) +
                                       " bytes of the " + stage_name() + " reply arrived");
  }
}

}  // namespace sb
