#include "probe_ggml_rpc.hh"

#include <cstring>

namespace sb {

namespace {

constexpr uint8_t kCmdGetDeviceMemory = 11;
constexpr uint8_t kCmdHello = 14;
constexpr uint8_t kCmdDeviceCount = 15;
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

void GgmlRpcSession::send(uint8_t cmd, const std::string& payload, std::string* out) {
  out->push_back(static_cast<char>(cmd));
  append_le(out, payload.size(), 8);
  out->append(payload);
  reply_.clear();
  pending_ = true;
}

void GgmlRpcSession::on_connected(std::string* out) {
  step_.kind = ProbeKind::kGgmlRpc;
  // conn_caps all zero: a TCP-only client.
  send(kCmdHello, stage_ == Stage::kHelloCaps ? std::string(kConnCapsSize, '\0') : std::string(),
       out);
}

uint64_t GgmlRpcSession::expected_size() const {
  switch (stage_) {
    case Stage::kHelloCaps:
      return kHelloReplySize;
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

SessionAction GgmlRpcSession::on_data(const uint8_t* data, size_t size, std::string* out) {
  if (stage_ == Stage::kDone) return SessionAction::kDone;
  if (!pending_) {
    return finish(ProbeOutcome::kProtocolError,
                  std::to_string(size) + " bytes arrived with no request outstanding");
  }
  const uint64_t expected = expected_size();
  // The reply never exceeds header + expected; anything longer is judged without buffering.
  const size_t room = kHeaderSize + expected - reply_.size();
  reply_.append(reinterpret_cast<const char*>(data), size < room ? size : room);
  if (reply_.size() >= kHeaderSize) {
    const uint64_t declared = read_le64(reply_.data());
    if (declared != expected) {
      const std::string what = std::string(stage_name()) + " reply declares " +
                               std::to_string(declared) + " bytes where ggml-rpc sends " +
                               std::to_string(expected);
      const bool hello = stage_ == Stage::kHelloCaps || stage_ == Stage::kHelloLegacy;
      return finish(hello ? ProbeOutcome::kNotRecognized : ProbeOutcome::kProtocolError, what);
    }
  }
  if (size > room) {
    return finish(ProbeOutcome::kProtocolError,
                  std::to_string(size - room) + " bytes beyond the " + stage_name() + " reply");
  }
  if (reply_.size() < kHeaderSize + expected) return SessionAction::kContinue;
  pending_ = false;
  return on_reply(out);
}

SessionAction GgmlRpcSession::on_reply(std::string* out) {
  const char* body = reply_.data() + kHeaderSize;
  switch (stage_) {
    case Stage::kHelloCaps:
    case Stage::kHelloLegacy: {
      step_.has_version = true;
      step_.legacy_hello = stage_ == Stage::kHelloLegacy;
      std::memcpy(step_.version, body, 3);
      const uint8_t major = step_.version[0];
      if (major == 0 || major > kNewestKnownMajor) {
        return finish(ProbeOutcome::kRecognized,
                      "protocol " + version_text(step_.version) +
                          " is outside the majors this probe knows; devices not queried");
      }
      if (major >= 3) {
        stage_ = Stage::kDeviceCount;
        send(kCmdDeviceCount, std::string(), out);
      } else {
        // 1.x/2.x: one device, and GET_DEVICE_MEMORY takes no index.
        device_count_ = 1;
        device_index_ = 0;
        stage_ = Stage::kDeviceMemory;
        send(kCmdGetDeviceMemory, std::string(), out);
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
      if (device_count_ == 0) return finish(ProbeOutcome::kRecognized, "");
      device_index_ = 0;
      stage_ = Stage::kDeviceMemory;
      std::string index;
      append_le(&index, 0, 4);
      send(kCmdGetDeviceMemory, index, out);
      return SessionAction::kContinue;
    }
    case Stage::kDeviceMemory: {
      step_.devices.push_back(DeviceMemory{device_index_, read_le64(body), read_le64(body + 8)});
      if (++device_index_ >= device_count_) return finish(ProbeOutcome::kRecognized, "");
      std::string index;
      append_le(&index, device_index_, 4);
      send(kCmdGetDeviceMemory, index, out);
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

void GgmlRpcSession::on_timeout() {
  if (stage_ == Stage::kDone) return;
  const bool hello = stage_ == Stage::kHelloCaps || stage_ == Stage::kHelloLegacy;
  if (reply_.empty() && hello) {
    finish(ProbeOutcome::kSilent, "accepted the connection but sent no HELLO reply");
  } else {
    finish(ProbeOutcome::kStalled, std::to_string(reply_.size()) + " of " +
                                       std::to_string(kHeaderSize + expected_size()) +
                                       " bytes of the " + stage_name() + " reply arrived");
  }
}

}  // namespace sb
