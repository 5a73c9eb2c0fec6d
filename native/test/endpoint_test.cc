// The packed target records JS hands over: validated once, decoded per connect.
#include "../core/endpoint.hh"

#include <arpa/inet.h>

#include <cstring>
#include <vector>

#include "check.hh"

namespace {

std::vector<uint8_t> record(uint8_t family, uint8_t plan, uint16_t port) {
  std::vector<uint8_t> rec(sb::kEndpointRecordSize, 0);
  rec[0] = family;
  rec[1] = plan;
  rec[2] = static_cast<uint8_t>(port >> 8);
  rec[3] = static_cast<uint8_t>(port & 0xff);
  return rec;
}

}  // namespace

TEST(endpoint_list_decodes_ipv4_and_ipv6_records) {
  auto v4 = record(4, 1, 50052);
  const uint8_t addr4[] = {127, 0, 0, 45};
  std::memcpy(v4.data() + 8, addr4, 4);
  auto v6 = record(6, 0, 8080);
  v6[7] = 3;     // scope id 3
  v6[8] = 0xfd;  // fd00::1
  v6[23] = 1;
  std::vector<uint8_t> packed = v4;
  packed.insert(packed.end(), v6.begin(), v6.end());

  sb::EndpointList list;
  CHECK(sb::EndpointList::decode(packed.data(), packed.size(), &list) == sb::Status::kOk);
  CHECK_EQ(list.size(), 2u);
  const sb::Endpoint a = list.at(0);
  CHECK_EQ(a.family(), AF_INET);
  CHECK_EQ(ntohs(a.addr.v4.sin_port), 50052);
  CHECK_EQ(ntohl(a.addr.v4.sin_addr.s_addr), 0x7f00002du);
  CHECK(a.plan == static_cast<sb::ProbePlan>(1));
  CHECK_EQ(a.addr_len(), sizeof(sockaddr_in));
  CHECK_EQ(sb::authority(a), std::string("127.0.0.45:50052"));
  const sb::Endpoint b = list.at(1);
  CHECK_EQ(b.family(), AF_INET6);
  CHECK_EQ(ntohs(b.addr.v6.sin6_port), 8080);
  CHECK_EQ(b.addr.v6.sin6_scope_id, 3u);
  CHECK_EQ(b.addr_len(), sizeof(sockaddr_in6));
  CHECK_EQ(sb::authority(b), std::string("[fd00::1]:8080"));
}

TEST(endpoint_list_rejects_bad_records_and_lengths) {
  const auto check_rejected = [](const std::vector<uint8_t>& bytes) {
    sb::EndpointList list;
    CHECK(sb::EndpointList::decode(bytes.data(), bytes.size(), &list) ==
          sb::Status::kInvalidEndpoints);
  };
  check_rejected(record(5, 0, 1));    // unknown family
  check_rejected(record(4, 0, 0));    // port 0
  check_rejected(record(4, 200, 1));  // unknown probe plan
  auto partial = record(4, 0, 1);
  partial.pop_back();
  check_rejected(partial);
  sb::EndpointList empty;
  CHECK(sb::EndpointList::decode(nullptr, 0, &empty) == sb::Status::kOk);
  CHECK_EQ(empty.size(), 0u);
}
