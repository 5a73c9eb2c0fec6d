// The ggml-rpc probe (llama.cpp's RPC server): HELLO in the 4.x+ form (24 bytes of
// connection caps), and on a silent close the 1.x-3.x empty HELLO on a fresh connection; then
// DEVICE_COUNT (3.x+) and GET_DEVICE_MEMORY per device. Wire facts: docs/ggml-rpc-wire.md.
#pragma once

#include <string>

#include "probe.hh"

namespace sb {

// The commands the probe sends: llama.cpp's rpc_cmd ids (docs/ggml-rpc-wire.md). The addon
// reports this table in its layout and the loader compares it with lib/probes/ggml-rpc.ts.
#define SB_GGML_RPC_COMMAND_MAP(X)             \
  X(kGetDeviceMemory, "GET_DEVICE_MEMORY", 11) \
  X(kHello, "HELLO", 14)                       \
  X(kDeviceCount, "DEVICE_COUNT", 15)

enum class GgmlRpcCommand : uint8_t {
#define SB_GGML_RPC_COMMAND_ENUM(name, text, id) name = id,
  SB_GGML_RPC_COMMAND_MAP(SB_GGML_RPC_COMMAND_ENUM)
#undef SB_GGML_RPC_COMMAND_ENUM
};

class GgmlRpcSession final : public ProbeSession {
 public:
  // More devices than this in a reply is taken as garbage, not as a server.
  static constexpr uint32_t kMaxDevices = 256;
  // Majors whose command set this probe knows (DEVICE_COUNT = 15 and GET_DEVICE_MEMORY = 11
  // hold from 3.0.0 through upstream 7.x); a newer server is identified, not queried.
  static constexpr uint8_t kNewestKnownMajor = 7;
  // A HELLO reply longer than the 28 bytes upstream sends (forks append fields) is read up to
  // this size; a declared size beyond it is not a ggml-rpc reply.
  static constexpr uint64_t kMaxHelloReplySize = 4096;
  // The nudge sent after HELLO meets silence: see on_quiet in probe_ggml_rpc.cc.
  static constexpr char kNudge[] = "\xff\r\n";

  void on_connected(std::string* out) override;
  SessionAction on_data(const uint8_t* data, size_t size, std::string* out) override;
  SessionAction on_closed(bool reset) override;
  void on_timeout() override;
  void on_quiet(std::string* out) override;
  bool request_pending() const override { return pending_; }

 private:
  enum class Stage { kHelloCaps, kHelloLegacy, kDeviceCount, kDeviceMemory, kDone };

  SessionAction finish(ProbeOutcome outcome, std::string detail);
  SessionAction on_reply(std::string* out);
  bool check_declared_size(SessionAction* action);
  std::string with_note(std::string detail) const;
  void send(GgmlRpcCommand cmd, const std::string& payload, std::string* out);
  uint64_t expected_size() const;
  bool awaiting_hello() const {
    return stage_ == Stage::kHelloCaps || stage_ == Stage::kHelloLegacy;
  }
  const char* stage_name() const;

  Stage stage_ = Stage::kHelloCaps;
  std::string reply_;     // bytes of the reply in progress: 8-byte size, then data
  bool pending_ = false;  // a request was sent and its reply is not complete
  uint32_t device_count_ = 0;
  uint32_t device_index_ = 0;
  uint64_t hello_size_ = 0;  // the declared size of a 4.x+ HELLO reply (28 or more)
  bool nudged_ = false;      // the nudge was sent on this connection
  std::string preview_;      // the first bytes a peer sent, for a reason that names them
  std::string note_;         // what the probe saw but did not understand, for the detail
};

}  // namespace sb
