// libFuzzer target: HTTP/2 frames (and HPACK inside them) as the gRPC health probe reads them.
#include <cstddef>
#include <cstdint>
#include <string>

#include "../core/probe_grpc_health.hh"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sb::GrpcHealthSession session({"", "127.0.0.1:50051"});
  std::string out;
  session.on_connected(&out);
  // Most inputs start with a valid empty SETTINGS frame so the fuzzer reaches the rest.
  if (size > 0 && (data[0] & 1)) {
    const uint8_t settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
    session.on_data(settings, sizeof(settings), &out);
    ++data;
    --size;
  }
  size_t at = 0;
  while (at < size) {
    const size_t take = (data[at] % 64) + 1 < size - at ? (data[at] % 64) + 1 : size - at;
    if (session.on_data(data + at, take, &out) == sb::SessionAction::kDone) return 0;
    at += take;
  }
  session.on_closed(false);
  return 0;
}
