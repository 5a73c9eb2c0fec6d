// Protocol probes run on an open connection: a ProbeSession is a pure state machine fed the
// bytes that arrive and asked for the bytes to send, so it can be tested and fuzzed without
// sockets. The scan worker owns the socket, the deadline and the reconnects a session asks for.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sb {

#define SB_PROBE_KIND_MAP(X) \
  X(kGgmlRpc, "ggml-rpc")    \
  X(kGrpcHealth, "grpc")

enum class ProbeKind : uint8_t {
#define SB_PROBE_KIND_ENUM(name, text) name,
  SB_PROBE_KIND_MAP(SB_PROBE_KIND_ENUM)
#undef SB_PROBE_KIND_ENUM
};

#define SB_PROBE_OUTCOME_MAP(X)                                                           \
  X(kRecognized, "recognized")        /* answered in this protocol; details are filled */ \
  X(kNotRecognized, "not-recognized") /* answered, or closed, but not in this protocol */ \
  X(kSilent, "silent")                /* connected, asked, no byte before the deadline */ \
  X(kStalled, "stalled")              /* some bytes, then none before the deadline */     \
  X(kProtocolError, "protocol-error") /* spoke the protocol, then broke it */             \
  X(kConnectFailed, "connect-failed") /* a connection the probe needed was not made */

enum class ProbeOutcome : uint8_t {
#define SB_PROBE_OUTCOME_ENUM(name, text) name,
  SB_PROBE_OUTCOME_MAP(SB_PROBE_OUTCOME_ENUM)
#undef SB_PROBE_OUTCOME_ENUM
};

const char* probe_kind_name(ProbeKind kind);
const char* probe_outcome_name(ProbeOutcome outcome);

struct DeviceMemory {
  uint32_t index = 0;
  uint64_t free_bytes = 0;
  uint64_t total_bytes = 0;
};

// What one probe saw. The verdict (service, health, reason) is drawn from this in JS by one
// rule shared with the JS engine.
struct ProbeStep {
  ProbeKind kind = ProbeKind::kGgmlRpc;
  ProbeOutcome outcome = ProbeOutcome::kSilent;
  std::string detail;  // why, for every outcome but kRecognized
  double elapsed_ms = 0;
  // What the peer sent during the step, over all its connections: bytes of another protocol
  // are evidence the verdict weighs even when a later step stays silent.
  size_t received = 0;
  // ggml-rpc
  bool has_version = false;
  uint8_t version[3] = {0, 0, 0};
  bool legacy_hello = false;  // answered the empty (1.x-3.x) HELLO, not the 24-byte one
  std::vector<DeviceMemory> devices;
  // gRPC health
  int http_status = -1;
  int grpc_status = -1;
  int serving_status = -1;
  std::string grpc_message;
};

struct ProbeReport {
  uint32_t target = 0;
  std::vector<ProbeStep> steps;
};

// Bounds every probe step, whatever the peer does: what it may send us, and what we may have
// queued for a peer that does not read (each SETTINGS or PING asks for an ACK).
constexpr size_t kProbeReadBudget = 64 * 1024;
constexpr size_t kProbeWriteBacklog = 16 * 1024;

// Printable text of a peer's first bytes for a reason: at most `max` characters, anything
// outside printable ASCII (and the quote and backslash) shown as '.'.
std::string peer_preview(const uint8_t* data, size_t size, size_t max = 24);

struct ProbeConfig {
  std::string grpc_service;  // empty: the server's overall health
  std::string authority;     // host:port, for HTTP/2's :authority
};

enum class SessionAction { kContinue, kDone, kReconnect };

class ProbeSession {
 public:
  virtual ~ProbeSession() = default;
  // A connection is up (the first, or one asked for by kReconnect): append what to send.
  virtual void on_connected(std::string* out) = 0;
  // Bytes arrived; may append bytes to send.
  virtual SessionAction on_data(const uint8_t* data, size_t size, std::string* out) = 0;
  // The peer closed the connection (FIN, or RST when `reset`).
  virtual SessionAction on_closed(bool reset) = 0;
  // The deadline passed; the session must settle its outcome.
  virtual void on_timeout() = 0;
  // The peer has sent nothing for the quiet interval since the connection came up: a session
  // may append bytes that make a waiting peer speak. Most sessions have nothing to add.
  virtual void on_quiet(std::string* out) { (void)out; }
  // A request is still unanswered: the connection must be aborted with RST, not closed with
  // FIN (a ggml-rpc server dies of SIGPIPE answering a client that closed normally).
  virtual bool request_pending() const = 0;

  ProbeStep& step() { return step_; }

 protected:
  ProbeStep step_;
};

std::unique_ptr<ProbeSession> make_probe_session(ProbeKind kind, const ProbeConfig& config);

// Which probes to run after a connect, in order; the next runs only when one answers
// kNotRecognized. Carried in byte 1 of each packed endpoint record.
enum class ProbePlan : uint8_t {
  kNone = 0,
  kGgmlRpc = 1,
  kGrpc = 2,
  kGgmlRpcThenGrpc = 3,
  kGrpcThenGgmlRpc = 4,
};
constexpr uint8_t kMaxProbePlan = 4;

// The probe kinds of a plan, in order.
std::vector<ProbeKind> plan_kinds(ProbePlan plan);

}  // namespace sb
