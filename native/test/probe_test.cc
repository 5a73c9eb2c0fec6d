// Probe sessions fed bytes directly: the replies observed from real llama.cpp servers
// (docs/ggml-rpc-wire.md) and hand-built HTTP/2 frames.
#include <string>
#include <vector>

#include "../core/probe_ggml_rpc.hh"
#include "../core/probe_grpc_health.hh"
#include "check.hh"

namespace {

std::string bytes(std::initializer_list<int> list) {
  std::string s;
  for (int b : list) s.push_back(static_cast<char>(b));
  return s;
}

std::string le64(uint64_t v) {
  std::string s;
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return s;
}

sb::SessionAction feed(sb::ProbeSession& s, const std::string& data, std::string* out) {
  return s.on_data(reinterpret_cast<const uint8_t*>(data.data()), data.size(), out);
}

const std::string kCapsHello = bytes({0x0e}) + le64(24) + std::string(24, '\0');
const std::string kLegacyHello = bytes({0x0e}) + le64(0);
const std::string kDeviceCount = bytes({0x0f}) + le64(0);
const std::string kMemoryOf0 = bytes({0x0b}) + le64(4) + std::string(4, '\0');
const std::string kMemoryLegacy = bytes({0x0b}) + le64(0);
// 25274793984 bytes free and total, as a real 5.0.0 CPU server answered.
const std::string kMemoryReply = le64(16) + le64(25274793984ull) + le64(25274793984ull);

}  // namespace

TEST(ggml_rpc_5x_hello_then_one_device) {
  sb::GgmlRpcSession s;
  std::string out;
  s.on_connected(&out);
  CHECK_EQ(out, kCapsHello);
  CHECK(s.request_pending());
  out.clear();
  CHECK(feed(s, le64(28) + bytes({5, 0, 0, 0}) + std::string(24, '\0'), &out) ==
        sb::SessionAction::kContinue);
  CHECK_EQ(out, kDeviceCount);
  out.clear();
  CHECK(feed(s, le64(4) + bytes({1, 0, 0, 0}), &out) == sb::SessionAction::kContinue);
  CHECK_EQ(out, kMemoryOf0);
  out.clear();
  // The reply split at an awkward place still parses.
  CHECK(feed(s, kMemoryReply.substr(0, 5), &out) == sb::SessionAction::kContinue);
  CHECK(feed(s, kMemoryReply.substr(5), &out) == sb::SessionAction::kDone);
  CHECK(!s.request_pending());
  CHECK(s.step().outcome == sb::ProbeOutcome::kRecognized);
  CHECK(s.step().has_version && s.step().version[0] == 5 && !s.step().legacy_hello);
  CHECK_EQ(s.step().devices.size(), 1u);
  CHECK_EQ(s.step().devices[0].total_bytes, 25274793984ull);
}

TEST(ggml_rpc_3x_resets_the_new_hello_and_answers_the_old_one) {
  sb::GgmlRpcSession s;
  std::string out;
  s.on_connected(&out);
  CHECK(s.on_closed(/*reset=*/true) == sb::SessionAction::kReconnect);
  out.clear();
  s.on_connected(&out);
  CHECK_EQ(out, kLegacyHello);
  out.clear();
  CHECK(feed(s, le64(3) + bytes({3, 6, 1}), &out) == sb::SessionAction::kContinue);
  CHECK_EQ(out, kDeviceCount);
  out.clear();
  CHECK(feed(s, le64(4) + bytes({2, 0, 0, 0}), &out) == sb::SessionAction::kContinue);
  out.clear();
  CHECK(feed(s, kMemoryReply, &out) == sb::SessionAction::kContinue);
  CHECK_EQ(out, bytes({0x0b}) + le64(4) + bytes({1, 0, 0, 0}));  // device 1
  out.clear();
  CHECK(feed(s, kMemoryReply, &out) == sb::SessionAction::kDone);
  CHECK(s.step().legacy_hello);
  CHECK_EQ(s.step().devices.size(), 2u);
  CHECK_EQ(s.step().devices[1].index, 1u);
}

TEST(ggml_rpc_2x_gets_memory_without_a_device_index) {
  sb::GgmlRpcSession s;
  std::string out;
  s.on_connected(&out);
  CHECK(s.on_closed(true) == sb::SessionAction::kReconnect);
  s.on_connected(&out);
  out.clear();
  CHECK(feed(s, le64(3) + bytes({2, 0, 0}), &out) == sb::SessionAction::kContinue);
  CHECK_EQ(out, kMemoryLegacy);
  out.clear();
  CHECK(feed(s, kMemoryReply, &out) == sb::SessionAction::kDone);
  CHECK(s.step().outcome == sb::ProbeOutcome::kRecognized);
  CHECK_EQ(s.step().devices.size(), 1u);
}

TEST(ggml_rpc_silence_is_silent_and_keeps_the_request_pending_for_an_rst) {
  sb::GgmlRpcSession s;
  std::string out;
  s.on_connected(&out);
  s.on_timeout();
  CHECK(s.step().outcome == sb::ProbeOutcome::kSilent);
  CHECK(s.request_pending());
}

TEST(ggml_rpc_rejects_a_size_of_2_to_the_63_without_allocating) {
  sb::GgmlRpcSession s;
  std::string out;
  s.on_connected(&out);
  CHECK(feed(s, le64(1ull << 63) + std::string(100, 'x'), &out) == sb::SessionAction::kDone);
  CHECK(s.step().outcome == sb::ProbeOutcome::kNotRecognized);
  CHECK(s.step().detail == "sent \"........xxxxxxxxxxxxxxxx\", not a ggml-rpc HELLO reply");
}

TEST(ggml_rpc_reads_the_version_from_a_hello_reply_longer_than_28_bytes) {
  sb::GgmlRpcSession s;
  std::string out;
  s.on_connected(&out);
  out.clear();
  // A fork that appends its op count (4 bytes) after the 28 upstream bytes; protocol 6.1.0.
  const std::string reply =
      le64(32) + bytes({6, 1, 0, 0}) + std::string(24, '\0') + bytes({101, 0, 0, 0});
  CHECK(feed(s, reply.substr(0, 5), &out) == sb::SessionAction::kContinue);
  CHECK(feed(s, reply.substr(5), &out) == sb::SessionAction::kContinue);
  CHECK(out == kDeviceCount);
  CHECK(s.step().version[0] == 6 && s.step().version[1] == 1);
  out.clear();
  CHECK(feed(s, le64(4) + bytes({0, 0, 0, 0}), &out) == sb::SessionAction::kDone);
  CHECK(s.step().outcome == sb::ProbeOutcome::kRecognized);
  CHECK(s.step().detail.find("4 bytes beyond the 28") != std::string::npos);
}

TEST(ggml_rpc_names_a_major_newer_than_it_knows_without_querying_devices) {
  sb::GgmlRpcSession s;
  std::string out;
  s.on_connected(&out);
  out.clear();
  CHECK(feed(s, le64(28) + bytes({8, 0, 0, 0}) + std::string(24, '\0'), &out) ==
        sb::SessionAction::kDone);
  CHECK(out.empty());
  CHECK(s.step().outcome == sb::ProbeOutcome::kRecognized);
  CHECK(s.step().detail.find("newer than this probe knows") != std::string::npos);
  CHECK(!s.request_pending());
}

TEST(ggml_rpc_nudges_a_silent_peer_once_and_names_what_a_line_server_answers) {
  sb::GgmlRpcSession s;
  std::string out;
  s.on_connected(&out);
  out.clear();
  s.on_quiet(&out);
  CHECK(out == bytes({0xff, '\r', '\n'}));
  out.clear();
  s.on_quiet(&out);
  CHECK(out.empty());
  CHECK(feed(s, "HTTP/1.0 400 Bad request\r\n", &out) == sb::SessionAction::kDone);
  CHECK(s.step().outcome == sb::ProbeOutcome::kNotRecognized);
  CHECK(s.step().detail ==
        "answered a newline with \"HTTP/1.0 400 Bad request\": another protocol, not ggml-rpc");
}

TEST(ggml_rpc_silent_after_the_nudge_stays_silent_with_the_request_pending) {
  sb::GgmlRpcSession s;
  std::string out;
  s.on_connected(&out);
  s.on_quiet(&out);
  s.on_timeout();
  CHECK(s.step().outcome == sb::ProbeOutcome::kSilent);
  CHECK(s.step().detail.find("neither HELLO nor a newline") != std::string::npos);
  CHECK(s.request_pending());
}

TEST(ggml_rpc_hello_after_the_nudge_is_recognized_without_further_requests) {
  sb::GgmlRpcSession s;
  std::string out;
  s.on_connected(&out);
  s.on_quiet(&out);
  out.clear();
  CHECK(feed(s, le64(28) + bytes({5, 0, 0, 0}) + std::string(24, '\0'), &out) ==
        sb::SessionAction::kDone);
  CHECK(out.empty());
  CHECK(s.step().outcome == sb::ProbeOutcome::kRecognized);
  CHECK(!s.request_pending());
}

TEST(ggml_rpc_nothing_to_nudge_once_a_reply_began) {
  sb::GgmlRpcSession s;
  std::string out;
  s.on_connected(&out);
  feed(s, le64(28).substr(0, 4), &out);
  out.clear();
  s.on_quiet(&out);
  CHECK(out.empty());
}

TEST(peer_preview_keeps_printable_ascii_only) {
  const std::string raw = "\x1b]0;pwned\x07\"ok\\\n";
  const std::string shown =
      sb::peer_preview(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
  CHECK(shown == ".]0;pwned..ok..");
}

TEST(ggml_rpc_partial_reply_then_silence_is_stalled_and_extra_bytes_are_an_error) {
  sb::GgmlRpcSession a;
  std::string out;
  a.on_connected(&out);
  feed(a, le64(28).substr(0, 3), &out);
  a.on_timeout();
  CHECK(a.step().outcome == sb::ProbeOutcome::kStalled);

  sb::GgmlRpcSession b;
  b.on_connected(&out);
  CHECK(feed(b, le64(28) + std::string(29, '\0'), &out) == sb::SessionAction::kDone);
  CHECK(b.step().outcome == sb::ProbeOutcome::kProtocolError);
}

TEST(ggml_rpc_closed_on_both_generations_is_not_recognized) {
  sb::GgmlRpcSession s;
  std::string out;
  s.on_connected(&out);
  CHECK(s.on_closed(false) == sb::SessionAction::kReconnect);
  s.on_connected(&out);
  CHECK(s.on_closed(false) == sb::SessionAction::kDone);
  CHECK(s.step().outcome == sb::ProbeOutcome::kNotRecognized);
}

namespace {

std::string frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
  std::string f;
  const size_t n = payload.size();
  f += static_cast<char>(n >> 16);
  f += static_cast<char>(n >> 8);
  f += static_cast<char>(n);
  f += static_cast<char>(type);
  f += static_cast<char>(flags);
  f += static_cast<char>(stream >> 24);
  f += static_cast<char>(stream >> 16);
  f += static_cast<char>(stream >> 8);
  f += static_cast<char>(stream);
  return f + payload;
}

std::string literal(const std::string& name, const std::string& value) {
  return bytes({0x00, static_cast<int>(name.size())}) + name +
         bytes({static_cast<int>(value.size())}) + value;
}

// :status 200 (static 8), content-type: application/grpc
const std::string kResponseHeaders = bytes({0x88}) + literal("content-type", "application/grpc");

}  // namespace

TEST(grpc_health_serving_with_settings_and_ping_answered) {
  sb::GrpcHealthSession s({"", "127.0.0.1:50051"});
  std::string out;
  s.on_connected(&out);
  CHECK(out.rfind("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0) == 0);
  CHECK(out.find("/grpc.health.v1.Health/Check") != std::string::npos);
  out.clear();
  const std::string server =
      frame(4, 0, 0, "") + frame(6, 0, 0, "12345678") + frame(1, 4, 1, kResponseHeaders) +
      frame(0, 0, 1, bytes({0, 0, 0, 0, 2, 0x08, 0x01})) +
      frame(1, 5, 1, literal("grpc-status", "0") + literal("grpc-message", ""));
  CHECK(feed(s, server, &out) == sb::SessionAction::kDone);
  CHECK(s.step().outcome == sb::ProbeOutcome::kRecognized);
  CHECK_EQ(s.step().http_status, 200);
  CHECK_EQ(s.step().grpc_status, 0);
  CHECK_EQ(s.step().serving_status, 1);
  CHECK(out == frame(4, 1, 0, "") + frame(6, 1, 0, "12345678"));
  CHECK(!s.request_pending());
}

TEST(grpc_health_trailers_only_unimplemented) {
  sb::GrpcHealthSession s({"", "h:1"});
  std::string out;
  s.on_connected(&out);
  const std::string server =
      frame(4, 0, 0, "") + frame(1, 5, 1, kResponseHeaders + literal("grpc-status", "12"));
  CHECK(feed(s, server, &out) == sb::SessionAction::kDone);
  CHECK(s.step().outcome == sb::ProbeOutcome::kRecognized);
  CHECK_EQ(s.step().grpc_status, 12);
  CHECK_EQ(s.step().serving_status, -1);
}

TEST(grpc_health_not_http2_huge_frames_and_resets) {
  std::string out;
  sb::GrpcHealthSession http1({"", "h:1"});
  http1.on_connected(&out);
  CHECK(feed(http1, "HTTP/1.1 400 Bad Request\r\n\r\n", &out) == sb::SessionAction::kDone);
  CHECK(http1.step().outcome == sb::ProbeOutcome::kNotRecognized);

  sb::GrpcHealthSession huge({"", "h:1"});
  huge.on_connected(&out);
  CHECK(feed(huge, frame(4, 0, 0, "") + bytes({0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1}), &out) ==
        sb::SessionAction::kDone);
  CHECK(huge.step().outcome == sb::ProbeOutcome::kProtocolError);

  sb::GrpcHealthSession reset({"", "h:1"});
  reset.on_connected(&out);
  CHECK(feed(reset, frame(4, 0, 0, "") + frame(1, 4, 1, kResponseHeaders).substr(0, 12), &out) ==
        sb::SessionAction::kContinue);
  CHECK(reset.on_closed(true) == sb::SessionAction::kDone);
  CHECK(reset.step().outcome == sb::ProbeOutcome::kProtocolError);

  sb::GrpcHealthSession silent({"", "h:1"});
  silent.on_connected(&out);
  silent.on_timeout();
  CHECK(silent.step().outcome == sb::ProbeOutcome::kSilent);
}

TEST(grpc_health_response_parser_is_bounded) {
  std::string error;
  CHECK_EQ(sb::parse_health_response(bytes({0, 0, 0, 0, 2, 0x08, 0x02}), &error), 2);
  CHECK_EQ(sb::parse_health_response(bytes({0, 0, 0, 0, 0}), &error), 0);
  CHECK_EQ(sb::parse_health_response(bytes({1, 0, 0, 0, 0}), &error), -1);
  CHECK_EQ(sb::parse_health_response(bytes({0, 0xff, 0xff, 0xff, 0xff, 0x08}), &error), -1);
  CHECK_EQ(sb::parse_health_response(bytes({0, 0, 0, 0, 2, 0x0a, 0x7f}), &error), -1);
}
