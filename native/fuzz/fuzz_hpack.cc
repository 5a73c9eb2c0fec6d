// libFuzzer target: HPACK header blocks, several in a row through one dynamic table.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../core/hpack.hh"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sb::HpackDecoder decoder;
  size_t at = 0;
  while (at < size) {
    const size_t len = data[at] < size - at - 1 ? data[at] : size - at - 1;
    ++at;
    std::vector<sb::HeaderField> fields;
    std::string error;
    if (!decoder.decode(data + at, len, &fields, &error)) return 0;
    if (fields.size() > sb::HpackDecoder::kMaxFields) __builtin_trap();
    at += len;
  }
  return 0;
}
