#include "hpack.hh"

#include <array>

namespace sb {

namespace {

// RFC 7541 Appendix A.
constexpr std::array<std::pair<const char*, const char*>, 61> kStaticTable = {{
    {":authority", ""},
    {":method", "GET"},
    {":method", "POST"},
    {":path", "/"},
    {":path", "/index.html"},
    {":scheme", "http"},
    {":scheme", "https"},
    {":status", "200"},
    {":status", "204"},
    {":status", "206"},
    {":status", "304"},
    {":status", "400"},
    {":status", "404"},
    {":status", "500"},
    {"accept-charset", ""},
    {"accept-encoding", "gzip, deflate"},
    {"accept-language", ""},
    {"accept-ranges", ""},
    {"accept", ""},
    {"access-control-allow-origin", ""},
    {"age", ""},
    {"allow", ""},
    {"authorization", ""},
    {"cache-control", ""},
    {"content-disposition", ""},
    {"content-encoding", ""},
    {"content-language", ""},
    {"content-length", ""},
    {"content-location", ""},
    {"content-range", ""},
    {"content-type", ""},
    {"cookie", ""},
    {"date", ""},
    {"etag", ""},
    {"expect", ""},
    {"expires", ""},
    {"from", ""},
    {"host", ""},
    {"if-match", ""},
    {"if-modified-since", ""},
    {"if-none-match", ""},
    {"if-range", ""},
    {"if-unmodified-since", ""},
    {"last-modified", ""},
    {"link", ""},
    {"location", ""},
    {"max-forwards", ""},
    {"proxy-authenticate", ""},
    {"proxy-authorization", ""},
    {"range", ""},
    {"referer", ""},
    {"refresh", ""},
    {"retry-after", ""},
    {"server", ""},
    {"set-cookie", ""},
    {"strict-transport-security", ""},
    {"transfer-encoding", ""},
    {"user-agent", ""},
    {"vary", ""},
    {"via", ""},
    {"www-authenticate", ""},
}};

// Code lengths of RFC 7541 Appendix B for symbols 0..255; EOS (256) is 30 bits. The code is
// canonical (codes of one length are consecutive, in symbol order, shorter lengths first),
// so the lengths determine every code.
constexpr std::array<uint8_t, 257> kCodeLengths = {
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6,  10, 10, 12, 13, 6,  8,  11, 10, 10, 8,  11, 8,  6,  6,  6,
    5,  5,  5,  6,  6,  6,  6,  6,  6,  6,  7,  8,  15, 6,  12, 10, 13, 6,  7,  7,  7,  7,  7,  7,
    7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  8,  7,  8,  13, 19, 13, 14, 6,
    15, 5,  6,  5,  6,  5,  6,  6,  6,  5,  7,  7,  6,  6,  6,  5,  6,  7,  6,  5,  5,  6,  7,  7,
    7,  7,  7,  15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22, 21, 20, 22, 22, 23, 23, 21,
    23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24,
    21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30};

constexpr int kEos = 256;
constexpr int kMaxCodeLength = 30;

// Canonical decoding tables: for each length, the first code and where its symbols start.
struct HuffmanTable {
  std::array<uint32_t, kMaxCodeLength + 2> first_code{};
  std::array<uint16_t, kMaxCodeLength + 2> count{};
  std::array<uint16_t, kMaxCodeLength + 2> offset{};
  std::array<uint16_t, 257> symbols{};

  HuffmanTable() {
    for (uint8_t len : kCodeLengths) ++count[len];
    uint32_t code = 0;
    uint16_t index = 0;
    for (int len = 1; len <= kMaxCodeLength; ++len) {
      code = (code + count[len - 1]) << 1;
      first_code[len] = code;
      offset[len] = index;
      for (int sym = 0; sym < 257; ++sym)
        if (kCodeLengths[sym] == len) symbols[index++] = static_cast<uint16_t>(sym);
    }
  }
};

const HuffmanTable& huffman_table() {
  static const HuffmanTable table;
  return table;
}

// Decodes an HPACK integer with an N-bit prefix; values above 2^28 are rejected (no header
// this probe accepts comes near that).
bool read_integer(const uint8_t*& p, const uint8_t* end, int prefix_bits, uint64_t* out) {
  if (p >= end) return false;
  const uint8_t mask = static_cast<uint8_t>((1u << prefix_bits) - 1);
  uint64_t value = *p++ & mask;
  if (value < mask) {
    *out = value;
    return true;
  }
  for (int shift = 0; shift <= 28; shift += 7) {
    if (p >= end) return false;
    const uint8_t byte = *p++;
    value += static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      if (value > (1u << 28)) return false;
      *out = value;
      return true;
    }
  }
  return false;
}

bool read_string(const uint8_t*& p, const uint8_t* end, std::string* out, std::string* error) {
  if (p >= end) {
    *error = "header block ends inside a string";
    return false;
  }
  const bool huffman = (*p & 0x80) != 0;
  uint64_t length = 0;
  if (!read_integer(p, end, 7, &length)) {
    *error = "bad string length";
    return false;
  }
  if (length > HpackDecoder::kMaxStringLength || length > static_cast<uint64_t>(end - p)) {
    *error = "string length " + std::to_string(length) + " exceeds the header block";
    return false;
  }
  out->clear();
  if (huffman) {
    if (!huffman_decode(p, length, out)) {
      *error = "invalid Huffman code";
      return false;
    }
  } else {
    out->assign(reinterpret_cast<const char*>(p), length);
  }
  p += length;
  return true;
}

}  // namespace

bool huffman_decode(const uint8_t* data, size_t size, std::string* out) {
  const HuffmanTable& t = huffman_table();
  uint32_t code = 0;
  int length = 0;
  for (size_t i = 0; i < size; ++i) {
    for (int bit = 7; bit >= 0; --bit) {
      code = (code << 1) | ((data[i] >> bit) & 1u);
      ++length;
      const uint32_t first = t.first_code[length];
      if (t.count[length] != 0 && code >= first && code - first < t.count[length]) {
        const uint16_t sym = t.symbols[t.offset[length] + (code - first)];
        if (sym == kEos) return false;  // RFC 7541 §5.2: EOS in a string is an error
        out->push_back(static_cast<char>(sym));
        code = 0;
        length = 0;
      } else if (length >= kMaxCodeLength) {
        return false;
      }
    }
  }
  // Padding: at most 7 bits, all ones (the most significant bits of EOS).
  return length <= 7 && code == (1u << length) - 1;
}

bool HpackDecoder::field_at(uint64_t index, HeaderField* out, std::string* error) const {
  if (index == 0) {
    *error = "header index 0";
    return false;
  }
  if (index <= kStaticTable.size()) {
    *out = {kStaticTable[index - 1].first, kStaticTable[index - 1].second};
    return true;
  }
  const uint64_t dyn = index - kStaticTable.size() - 1;
  if (dyn >= dynamic_.size()) {
    *error = "header index " + std::to_string(index) + " is past the tables";
    return false;
  }
  *out = dynamic_[dyn];
  return true;
}

void HpackDecoder::evict_until_fits(size_t incoming) {
  while (!dynamic_.empty() && dynamic_size_ + incoming > max_size_) {
    dynamic_size_ -= dynamic_.back().first.size() + dynamic_.back().second.size() + 32;
    dynamic_.pop_back();
  }
}

void HpackDecoder::insert(HeaderField field) {
  const size_t size = field.first.size() + field.second.size() + 32;
  // §4.4: an entry larger than the table empties it and is not added.
  evict_until_fits(size);
  if (size > max_size_) return;
  dynamic_size_ += size;
  dynamic_.push_front(std::move(field));
}

bool HpackDecoder::decode(const uint8_t* data, size_t size, std::vector<HeaderField>* out,
                          std::string* error) {
  const uint8_t* p = data;
  const uint8_t* end = data + size;
  while (p < end) {
    if (out->size() >= kMaxFields) {
      *error = "more than " + std::to_string(kMaxFields) + " header fields";
      return false;
    }
    const uint8_t b = *p;
    uint64_t index = 0;
    HeaderField field;
    if (b & 0x80) {  // §6.1 indexed field
      if (!read_integer(p, end, 7, &index) || !field_at(index, &field, error)) {
        if (error->empty()) *error = "bad header index";
        return false;
      }
      out->push_back(std::move(field));
      continue;
    }
    if ((b & 0xe0) == 0x20) {  // §6.3 dynamic table size update
      uint64_t new_size = 0;
      if (!read_integer(p, end, 5, &new_size) || new_size > kDefaultTableSize) {
        *error = "dynamic table size update above the 4096 bytes allowed";
        return false;
      }
      max_size_ = new_size;
      evict_until_fits(0);
      continue;
    }
    // §6.2: literal with incremental indexing (01), without indexing (0000), never (0001).
    const bool indexing = (b & 0xc0) == 0x40;
    if (!read_integer(p, end, indexing ? 6 : 4, &index)) {
      *error = "bad literal header index";
      return false;
    }
    if (index != 0) {
      HeaderField named;
      if (!field_at(index, &named, error)) return false;
      field.first = std::move(named.first);
    } else if (!read_string(p, end, &field.first, error)) {
      return false;
    }
    if (!read_string(p, end, &field.second, error)) return false;
    if (indexing) insert(field);
    out->push_back(std::move(field));
  }
  return true;
}

}  // namespace sb
