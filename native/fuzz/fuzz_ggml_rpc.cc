// libFuzzer target: the ggml-rpc session fed arbitrary replies in arbitrary chunks, with
// closes, timeouts and quiet intervals (the nudge) at arbitrary points. It must never crash,
// leak or buffer unboundedly, and it sends the nudge at most once per connection.
#include <cstddef>
#include <cstdint>
#include <string>

#include "../core/probe_ggml_rpc.hh"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sb::GgmlRpcSession session;
  std::string out;
  session.on_connected(&out);
  size_t at = 0;
  while (at < size) {
    // Each chunk: one control byte (low 6 bits: length, top bits: event), then its bytes.
    // Event 0xc0 is a quiet interval before the bytes arrive.
    const uint8_t control = data[at++];
    const size_t len = control & 0x3f;
    const size_t take = len < size - at ? len : size - at;
    if ((control & 0xc0) == 0xc0) {
      const size_t before = out.size();
      session.on_quiet(&out);
      session.on_quiet(&out);
      if (out.size() - before > 3) __builtin_trap();  // one nudge, never two
    }
    sb::SessionAction action = session.on_data(data + at, take, &out);
    at += take;
    if ((control & 0xc0) == 0x40) action = session.on_closed(control & 1);
    if ((control & 0xc0) == 0x80) {
      session.on_timeout();
      action = sb::SessionAction::kDone;
    }
    if (action == sb::SessionAction::kReconnect) session.on_connected(&out);
    if (action == sb::SessionAction::kDone) break;
    if (out.size() > 1 << 16) __builtin_trap();  // requests are a few dozen bytes each
  }
  return 0;
}
