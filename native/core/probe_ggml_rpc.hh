// The ggml-rpc probe (llama.cpp's RPC server): HELLO in the 4.x+ form (24 bytes of
// connection caps), and on a silent close the 1.x-3.x empty HELLO on a fresh connection; then
// DEVICE_COUNT (3.x+) and GET_DEVICE_MEMORY per device. Wire facts: shared/docs/ggml-rpc-wire.md.
#pragma once

#include <string>

#include "probe.hh"

namespace sb {

class GgmlRpcSession final : public ProbeSession {
 public:
  // More devices than this in a reply is taken as garbage, not as a server.
  static constexpr uint32_t kMaxDevices = 256;
  // Majors whose command set this probe knows; a newer server is identified, not queried.
  static constexpr uint8_t kNewestKnownMajor = 5;

  void on_connected(std::string* out) override;
  SessionAction on_data(const uint8_t* data, size_t size, std::string* out) override;
  SessionAction on_closed(bool reset) override;
  void on_timeout() override;
  bool request_pending() const override { return pending_; }

 private:
  enum class Stage { kHelloCaps, kHelloLegacy, kDeviceCount, kDeviceMemory, kDone };

  SessionAction finish(ProbeOutcome outcome, std::string detail);
  SessionAction on_reply(std::string* out);
  void send(uint8_t cmd, const std::string& payload, std::string* out);
  uint64_t expected_size() const;
  const char* stage_name() const;

  Stage stage_ = Stage::kHelloCaps;
  std::string reply_;     // bytes of the reply in progress: 8-byte size, then data
  bool pending_ = false;  // a request was sent and its reply is not complete
  uint32_t device_count_ = 0;
  uint32_t device_index_ = 0;
};

}  // namespace sb
