// HPACK decoding against the examples of RFC 7541 Appendix C.4 (requests, Huffman-coded).
#include "../core/hpack.hh"

#include <string>
#include <vector>

#include "check.hh"

namespace {

std::vector<uint8_t> hex(const std::string& text) {
  std::vector<uint8_t> bytes;
  std::string digits;
  for (char c : text)
    if (c != ' ') digits += c;
  for (size_t i = 0; i + 1 < digits.size(); i += 2)
    bytes.push_back(static_cast<uint8_t>(std::stoi(digits.substr(i, 2), nullptr, 16)));
  return bytes;
}

bool decode(sb::HpackDecoder& d, const std::string& block, std::vector<sb::HeaderField>* out) {
  const auto bytes = hex(block);
  std::string error;
  return d.decode(bytes.data(), bytes.size(), out, &error);
}

}  // namespace

TEST(hpack_decodes_rfc7541_c4_requests_with_a_shared_dynamic_table) {
  sb::HpackDecoder d;
  std::vector<sb::HeaderField> h;
  CHECK(decode(d, "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", &h));
  CHECK(h == (std::vector<sb::HeaderField>{{":method", "GET"},
                                           {":scheme", "http"},
                                           {":path", "/"},
                                           {":authority", "www.example.com"}}));
  h.clear();
  CHECK(decode(d, "8286 84be 5886 a8eb 1064 9cbf", &h));
  CHECK(h == (std::vector<sb::HeaderField>{{":method", "GET"},
                                           {":scheme", "http"},
                                           {":path", "/"},
                                           {":authority", "www.example.com"},
                                           {"cache-control", "no-cache"}}));
  h.clear();
  CHECK(decode(d, "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf", &h));
  CHECK(h == (std::vector<sb::HeaderField>{{":method", "GET"},
                                           {":scheme", "https"},
                                           {":path", "/index.html"},
                                           {":authority", "www.example.com"},
                                           {"custom-key", "custom-value"}}));
}

TEST(huffman_rejects_eos_bad_padding_and_long_padding) {
  std::string out;
  const uint8_t eos[] = {0xff, 0xff, 0xff, 0xff};  // EOS (30 ones) inside a string
  CHECK(!sb::huffman_decode(eos, sizeof(eos), &out));
  out.clear();
  const uint8_t zero_pad[] = {0x00};  // '0' (00000) then padding 000: not all ones
  CHECK(!sb::huffman_decode(zero_pad, sizeof(zero_pad), &out));
  out.clear();
  const uint8_t one_pad[] = {0x07};  // '0' then 111
  CHECK(sb::huffman_decode(one_pad, sizeof(one_pad), &out));
  CHECK_EQ(out, std::string("0"));
}

TEST(hpack_rejects_bad_indexes_lengths_and_table_sizes) {
  sb::HpackDecoder d;
  std::vector<sb::HeaderField> h;
  CHECK(!decode(d, "80", &h));  // index 0
  sb::HpackDecoder fresh;
  CHECK(!decode(fresh, "be", &h));  // index 62 with an empty dynamic table
  sb::HpackDecoder d2;
  CHECK(!decode(d2, "0f 2b 7f ff ff ff 0f", &h));  // string length 2^28+ past the block
  sb::HpackDecoder d3;
  CHECK(!decode(d3, "3f e1 ff 03", &h));  // table size update far above 4096
  sb::HpackDecoder d4;
  CHECK(!decode(d4, "ff ff ff ff ff ff ff ff", &h));  // integer that never ends
}
