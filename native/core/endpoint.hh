// A host:port to connect to, and the packed form in which JS hands the target list over.
//
// Packed record, kEndpointRecordSize bytes each, all multi-byte fields in network order:
//   [0] family (4 or 6)  [1] probe plan (ProbePlan)  [2..3] port  [4..7] IPv6 scope id
//   [8..23] address
// An IPv4 address uses bytes 8..11 and leaves 12..23 zero.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "probe.hh"
#include "status.hh"

namespace sb {

constexpr size_t kEndpointRecordSize = 24;
// Far above any job the JS side allows (--allow-large is still a bounded list); a guard
// against a corrupt length, not a product limit.
constexpr size_t kMaxEndpoints = 1u << 24;

struct Endpoint {
  // Sized for the families we connect to: sockaddr_storage (128 bytes) would make a /16's
  // target list 8.5 MiB instead of 2.
  union Address {
    sockaddr any;
    sockaddr_in v4;
    sockaddr_in6 v6;
  } addr{};
  ProbePlan plan = ProbePlan::kNone;

  int family() const { return addr.any.sa_family; }
  socklen_t addr_len() const {
    return family() == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  }
};

// The target list as JS packed it, validated once and kept packed (24 bytes a target, not
// 32): each scan thread decodes a record when it connects to it.
class EndpointList {
 public:
  // Copies and validates a packed buffer; rejects a length that is not a whole number of
  // records, an unknown family, port 0, or an unknown probe plan.
  static Status decode(const uint8_t* data, size_t size, EndpointList* out);

  size_t size() const { return records_.size() / kEndpointRecordSize; }
  Endpoint at(size_t index) const;

 private:
  std::vector<uint8_t> records_;
};

// "host:port", with brackets for IPv6: HTTP/2's :authority.
std::string authority(const Endpoint& ep);

}  // namespace sb
