// HPACK (RFC 7541) header block decoding, for the gRPC health probe's responses. Bounded in
// every dimension: integer size, string length, dynamic table size, fields per block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <vector>

namespace sb {

using HeaderField = std::pair<std::string, std::string>;

class HpackDecoder {
 public:
  static constexpr size_t kDefaultTableSize = 4096;  // SETTINGS_HEADER_TABLE_SIZE default
  static constexpr size_t kMaxFields = 128;
  static constexpr size_t kMaxStringLength = 8192;

  // Decodes one complete header block. Returns false and sets *error on malformed input; the
  // decoder must not be used after a failure (its table may be half-updated).
  bool decode(const uint8_t* data, size_t size, std::vector<HeaderField>* out, std::string* error);

 private:
  bool field_at(uint64_t index, HeaderField* out, std::string* error) const;
  void insert(HeaderField field);
  void evict_until_fits(size_t incoming);

  std::deque<HeaderField> dynamic_;  // newest first
  size_t dynamic_size_ = 0;          // RFC 7541 §4.1: name + value + 32 per entry
  size_t max_size_ = kDefaultTableSize;
};

// Huffman-decodes `size` bytes (RFC 7541 Appendix B). False on an invalid code, EOS, or
// padding longer than 7 bits or not all ones.
bool huffman_decode(const uint8_t* data, size_t size, std::string* out);

}  // namespace sb
