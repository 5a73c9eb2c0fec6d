#include "probe_grpc_health.hh"

#include <cctype>

namespace sb {

namespace {

constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr size_t kFrameHeaderSize = 9;
constexpr uint32_t kStream = 1;

enum FrameType : uint8_t {
  kData = 0,
  kHeaders = 1,
  kRstStream = 3,
  kSettings = 4,
  kPushPromise = 5,
  kPing = 6,
  kGoaway = 7,
  kWindowUpdate = 8,
  kContinuation = 9,
};
enum FrameFlag : uint8_t {
  kEndStream = 0x1,
  kAck = 0x1,
  kEndHeaders = 0x4,
  kPadded = 0x8,
  kPriority = 0x20,
};

void append_frame(std::string* out, uint8_t type, uint8_t flags, uint32_t stream,
                  const std::string& payload) {
  const size_t n = payload.size();
  out->push_back(static_cast<char>((n >> 16) & 0xff));
  out->push_back(static_cast<char>((n >> 8) & 0xff));
  out->push_back(static_cast<char>(n & 0xff));
  out->push_back(static_cast<char>(type));
  out->push_back(static_cast<char>(flags));
  for (int shift = 24; shift >= 0; shift -= 8)
    out->push_back(static_cast<char>((stream >> shift) & 0xff));
  out->append(payload);
}

// HPACK integer with an N-bit prefix whose high bits are `pattern`.
void append_hpack_int(std::string* out, uint8_t pattern, int prefix_bits, size_t value) {
  const size_t max_prefix = (1u << prefix_bits) - 1;
  if (value < max_prefix) {
    out->push_back(static_cast<char>(pattern | value));
    return;
  }
  out->push_back(static_cast<char>(pattern | max_prefix));
  value -= max_prefix;
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

void append_hpack_string(std::string* out, const std::string& s) {
  append_hpack_int(out, 0x00, 7, s.size());  // H=0: no Huffman
  out->append(s);
}

// Literal header field without indexing, name from the static table (RFC 7541 §6.2.2).
void append_literal(std::string* out, size_t name_index, const std::string& value) {
  append_hpack_int(out, 0x00, 4, name_index);
  append_hpack_string(out, value);
}

void append_literal_new_name(std::string* out, const std::string& name, const std::string& value) {
  out->push_back(0x00);
  append_hpack_string(out, name);
  append_hpack_string(out, value);
}

void append_varint(std::string* out, uint64_t value) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

bool read_varint(const uint8_t*& p, const uint8_t* end, uint64_t* out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64 && p < end; shift += 7) {
    const uint8_t b = *p++;
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      *out = v;
      return true;
    }
  }
  return false;
}

}  // namespace

int parse_health_response(const std::string& message, std::string* error) {
  const auto* p = reinterpret_cast<const uint8_t*>(message.data());
  const uint8_t* end = p + message.size();
  if (message.size() < 5) {
    *error = "gRPC message shorter than its 5-byte prefix";
    return -1;
  }
  if (p[0] != 0) {
    *error = "compressed gRPC message";
    return -1;
  }
  const uint32_t length = read_be32(p + 1);
  p += 5;
  if (length != static_cast<size_t>(end - p)) {
    *error = "gRPC message prefix says " + std::to_string(length) + " bytes, " +
             std::to_string(end - p) + " arrived";
    return -1;
  }
  int status = 0;  // proto3: an absent field is its zero value, UNKNOWN
  bool valid = true;
  while (valid && p < end) {
    uint64_t key = 0;
    uint64_t value = 0;
    if (!read_varint(p, end, &key)) {
      valid = false;
      break;
    }
    const uint64_t wire = key & 7;
    if (wire == 0) {
      valid = read_varint(p, end, &value);
      if (valid && (key >> 3) == 1) {
        valid = value <= 1000;
        status = static_cast<int>(value);
      }
    } else if (wire == 1 || wire == 5) {
      const size_t n = wire == 1 ? 8 : 4;
      valid = static_cast<size_t>(end - p) >= n;
      p += valid ? n : 0;
    } else if (wire == 2) {
      valid = read_varint(p, end, &value) && value <= static_cast<uint64_t>(end - p);
      p += valid ? value : 0;
    } else {
      valid = false;
    }
  }
  if (!valid) {
    *error = "HealthCheckResponse is not valid protobuf";
    return -1;
  }
  return status;
}

void GrpcHealthSession::on_connected(std::string* out) {
  step_.kind = ProbeKind::kGrpcHealth;
  out->append(kPreface, sizeof(kPreface) - 1);
  // SETTINGS: ENABLE_PUSH = 0.
  append_frame(out, kSettings, 0, 0, std::string("\x00\x02\x00\x00\x00\x00", 6));

  std::string block;
  block.push_back(static_cast<char>(0x83));  // :method POST (static 3)
  block.push_back(static_cast<char>(0x86));  // :scheme http (static 6)
  append_literal(&block, 4, "/grpc.health.v1.Health/Check");
  append_literal(&block, 1, config_.authority);
  append_literal(&block, 31, "application/grpc");
  append_literal_new_name(&block, "te", "trailers");
  append_literal(&block, 58, "scan-backends");
  append_frame(out, kHeaders, kEndHeaders, kStream, block);

  std::string request;  // HealthCheckRequest { string service = 1; }
  if (!config_.grpc_service.empty()) {
    request.push_back(0x0a);  // field 1, length-delimited
    append_varint(&request, config_.grpc_service.size());
    request.append(config_.grpc_service);
  }
  std::string message(1, '\0');
  for (int shift = 24; shift >= 0; shift -= 8)
    message.push_back(static_cast<char>((request.size() >> shift) & 0xff));
  message.append(request);
  append_frame(out, kData, kEndStream, kStream, message);
}

SessionAction GrpcHealthSession::finish(ProbeOutcome outcome, std::string detail) {
  done_ = true;
  step_.outcome = outcome;
  step_.detail = std::move(detail);
  return SessionAction::kDone;
}

SessionAction GrpcHealthSession::on_data(const uint8_t* data, size_t size, std::string* out) {
  if (done_) return SessionAction::kDone;
  received_ += size;
  rx_.append(reinterpret_cast<const char*>(data), size);
  size_t at = 0;
  SessionAction action = SessionAction::kContinue;
  while (action == SessionAction::kContinue && rx_.size() - at >= kFrameHeaderSize) {
    const auto* h = reinterpret_cast<const uint8_t*>(rx_.data() + at);
    const uint32_t length = (uint32_t{h[0]} << 16) | (uint32_t{h[1]} << 8) | h[2];
    const uint8_t type = h[3];
    const uint8_t flags = h[4];
    const uint32_t stream = read_be32(h + 5) & 0x7fffffffu;
    if (!seen_settings_ && (type != kSettings || stream != 0 || (flags & kAck) != 0)) {
      // RFC 9113 §3.4: a server's first frame is SETTINGS.
      return finish(ProbeOutcome::kNotRecognized,
                    "not an HTTP/2 server: it answered \"" +
                        peer_preview(reinterpret_cast<const uint8_t*>(rx_.data()), rx_.size(), 16) +
                        "\"");
    }
    if (length > kMaxFrameSize) {
      return finish(ProbeOutcome::kProtocolError, "HTTP/2 frame of " + std::to_string(length) +
                                                      " bytes exceeds the " +
                                                      std::to_string(kMaxFrameSize) + " allowed");
    }
    if (rx_.size() - at < kFrameHeaderSize + length) break;
    action = on_frame(type, flags, stream, h + kFrameHeaderSize, length, out);
    at += kFrameHeaderSize + length;
  }
  rx_.erase(0, at);
  return action;
}

SessionAction GrpcHealthSession::on_frame(uint8_t type, uint8_t flags, uint32_t stream,
                                          const uint8_t* payload, size_t length, std::string* out) {
  if (expect_continuation_ && (type != kContinuation || stream != kStream)) {
    return finish(ProbeOutcome::kProtocolError, "header block interrupted by another frame");
  }
  switch (type) {
    case kSettings:
      if (stream != 0 || length % 6 != 0 || ((flags & kAck) && length != 0))
        return finish(ProbeOutcome::kProtocolError, "malformed SETTINGS frame");
      seen_settings_ = true;
      if (!(flags & kAck)) append_frame(out, kSettings, kAck, 0, std::string());
      return SessionAction::kContinue;
    case kPing:
      if (stream != 0 || length != 8)
        return finish(ProbeOutcome::kProtocolError, "malformed PING frame");
      if (!(flags & kAck))
        append_frame(out, kPing, kAck, 0, std::string(reinterpret_cast<const char*>(payload), 8));
      return SessionAction::kContinue;
    case kGoaway: {
      if (length < 8) return finish(ProbeOutcome::kProtocolError, "malformed GOAWAY frame");
      const uint32_t last_stream = read_be32(payload) & 0x7fffffffu;
      const uint32_t code = read_be32(payload + 4);
      if (last_stream < kStream || code != 0) {
        return finish(
            ProbeOutcome::kProtocolError,
            "server sent GOAWAY (error code " + std::to_string(code) + ") before answering");
      }
      return SessionAction::kContinue;  // our stream is still answered
    }
    case kRstStream:
      if (stream != kStream) return SessionAction::kContinue;
      return finish(ProbeOutcome::kProtocolError,
                    "server reset the stream (error code " +
                        std::to_string(length >= 4 ? read_be32(payload) : 0) + ")");
    case kPushPromise:
      return finish(ProbeOutcome::kProtocolError, "PUSH_PROMISE after push was disabled");
    case kHeaders:
    case kContinuation:
    case kData: {
      if (stream != kStream) {
        return finish(ProbeOutcome::kProtocolError,
                      "frame on stream " + std::to_string(stream) + ", which was never opened");
      }
      size_t start = 0;
      size_t end = length;
      if (type != kContinuation && (flags & kPadded)) {
        if (length < 1 || payload[0] >= length)
          return finish(ProbeOutcome::kProtocolError, "padding longer than its frame");
        start = 1;
        end = length - payload[0];
      }
      if (type == kHeaders && (flags & kPriority)) start += 5;
      if (start > end) return finish(ProbeOutcome::kProtocolError, "malformed HEADERS frame");
      const char* body = reinterpret_cast<const char*>(payload) + start;
      const size_t body_size = end - start;
      if (type == kData) {
        if (message_.size() + body_size > kMaxMessage)
          return finish(ProbeOutcome::kProtocolError, "gRPC response larger than a health reply");
        message_.append(body, body_size);
        return (flags & kEndStream) ? on_stream_end() : SessionAction::kContinue;
      }
      if (type == kContinuation && !expect_continuation_)
        return finish(ProbeOutcome::kProtocolError, "CONTINUATION without HEADERS");
      if (header_block_.size() + body_size > kMaxHeaderBlock)
        return finish(ProbeOutcome::kProtocolError, "header block over 16 KiB");
      header_block_.append(body, body_size);
      if (type == kHeaders) continuation_ends_stream_ = (flags & kEndStream) != 0;
      expect_continuation_ = (flags & kEndHeaders) == 0;
      return expect_continuation_ ? SessionAction::kContinue
                                  : on_header_block(continuation_ends_stream_);
    }
    default:
      return SessionAction::kContinue;  // PRIORITY, WINDOW_UPDATE, unknown types
  }
}

SessionAction GrpcHealthSession::on_header_block(bool end_stream) {
  std::vector<HeaderField> fields;
  std::string error;
  const auto* block = reinterpret_cast<const uint8_t*>(header_block_.data());
  if (!hpack_.decode(block, header_block_.size(), &fields, &error))
    return finish(ProbeOutcome::kProtocolError, "HPACK: " + error);
  header_block_.clear();
  for (const auto& [name, value] : fields) {
    if (name == ":status" && !got_response_headers_) {
      step_.http_status = (value.size() == 3 && std::isdigit(static_cast<unsigned char>(value[0])))
                              ? std::stoi(value)
                              : 0;
    } else if (name == "content-type") {
      content_type_ = value.substr(0, 64);
    } else if (name == "grpc-status") {
      step_.grpc_status = (!value.empty() && value.size() <= 3 &&
                           value.find_first_not_of("0123456789") == std::string::npos)
                              ? std::stoi(value)
                              : -2;
    } else if (name == "grpc-message") {
      step_.grpc_message = value.substr(0, kMaxGrpcMessageText);
    }
  }
  if (!got_response_headers_) {
    got_response_headers_ = true;
    if (step_.http_status != 200 || content_type_.rfind("application/grpc", 0) != 0) {
      return finish(ProbeOutcome::kNotRecognized, "an HTTP/2 server, not gRPC (:status " +
                                                      std::to_string(step_.http_status) +
                                                      ", content-type \"" + content_type_ + "\")");
    }
  } else {
    trailers_ = true;
  }
  return end_stream ? on_stream_end() : SessionAction::kContinue;
}

SessionAction GrpcHealthSession::on_stream_end() {
  if (step_.grpc_status == -1)
    return finish(ProbeOutcome::kProtocolError, "the stream ended without grpc-status");
  if (step_.grpc_status < 0)
    return finish(ProbeOutcome::kProtocolError, "grpc-status is not a number");
  if (step_.grpc_status != 0) return finish(ProbeOutcome::kRecognized, "");
  std::string error;
  step_.serving_status = parse_health_response(message_, &error);
  if (step_.serving_status < 0) return finish(ProbeOutcome::kProtocolError, error);
  return finish(ProbeOutcome::kRecognized, "");
}

SessionAction GrpcHealthSession::on_closed(bool reset) {
  if (done_) return SessionAction::kDone;
  const char* how = reset ? "reset" : "closed";
  if (received_ == 0) {
    return finish(ProbeOutcome::kNotRecognized,
                  std::string(how) + " the connection without an HTTP/2 reply");
  }
  return finish(ProbeOutcome::kProtocolError,
                std::string(how) + " the connection before the response ended");
}

void GrpcHealthSession::on_timeout() {
  if (done_) return;
  if (received_ == 0) {
    finish(ProbeOutcome::kSilent, "accepted the connection but sent no HTTP/2 reply");
  } else {
    finish(ProbeOutcome::kStalled,
           "the response stopped after " + std::to_string(received_) + " bytes");
  }
}

}  // namespace sb
