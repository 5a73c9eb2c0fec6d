// The gRPC health probe: grpc.health.v1.Health/Check over HTTP/2 with prior knowledge (h2c).
// Connection preface, SETTINGS, one HEADERS + DATA request on stream 1; then frames are read
// until the stream ends, answering SETTINGS and PING as a client must.
#pragma once

#include <string>
#include <vector>

#include "hpack.hh"
#include "probe.hh"

namespace sb {

class GrpcHealthSession final : public ProbeSession {
 public:
  static constexpr uint32_t kMaxFrameSize = 16384;  // SETTINGS_MAX_FRAME_SIZE default
  static constexpr size_t kMaxHeaderBlock = 16384;  // across HEADERS + CONTINUATION
  static constexpr size_t kMaxMessage = 4096;       // a HealthCheckResponse is ~2 bytes
  static constexpr size_t kMaxGrpcMessageText = 256;

  explicit GrpcHealthSession(ProbeConfig config) : config_(std::move(config)) {}

  void on_connected(std::string* out) override;
  SessionAction on_data(const uint8_t* data, size_t size, std::string* out) override;
  SessionAction on_closed(bool reset) override;
  void on_timeout() override;
  bool request_pending() const override { return !done_; }

 private:
  SessionAction finish(ProbeOutcome outcome, std::string detail);
  SessionAction on_frame(uint8_t type, uint8_t flags, uint32_t stream, const uint8_t* payload,
                         size_t length, std::string* out);
  SessionAction on_header_block(bool end_stream);
  SessionAction on_stream_end();

  ProbeConfig config_;
  std::string rx_;  // unparsed bytes: at most one frame header plus one frame
  bool seen_settings_ = false;
  bool got_response_headers_ = false;
  bool expect_continuation_ = false;
  bool continuation_ends_stream_ = false;
  bool done_ = false;
  bool trailers_ = false;
  std::string content_type_;
  std::string header_block_;
  std::string message_;
  HpackDecoder hpack_;
  size_t received_ = 0;
};

// Parses a gRPC length-prefixed HealthCheckResponse; returns the ServingStatus, or -1 with
// *error set.
int parse_health_response(const std::string& message, std::string* error);

}  // namespace sb
