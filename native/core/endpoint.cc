#include "endpoint.hh"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace sb {

namespace {

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace

Status decode_endpoints(const uint8_t* data, size_t size, std::vector<Endpoint>* out) {
  if (size % kEndpointRecordSize != 0) return Status::kInvalidEndpoints;
  const size_t count = size / kEndpointRecordSize;
  if (count > kMaxEndpoints) return Status::kInvalidEndpoints;
  out->clear();
  out->reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* rec = data + i * kEndpointRecordSize;
    const uint16_t port_be = static_cast<uint16_t>(rec[2] << 8 | rec[3]);
    if (rec[1] > kMaxProbePlan || port_be == 0) return Status::kInvalidEndpoints;
    Endpoint ep;
    ep.plan = static_cast<ProbePlan>(rec[1]);
    if (rec[0] == 4) {
      sockaddr_in* sin = &ep.addr.v4;
      sin->sin_family = AF_INET;
      sin->sin_port = htons(port_be);
      std::memcpy(&sin->sin_addr, rec + 8, 4);
    } else if (rec[0] == 6) {
      sockaddr_in6* sin6 = &ep.addr.v6;
      sin6->sin6_family = AF_INET6;
      sin6->sin6_port = htons(port_be);
      sin6->sin6_scope_id = read_be32(rec + 4);
      std::memcpy(&sin6->sin6_addr, rec + 8, 16);
    } else {
      return Status::kInvalidEndpoints;
    }
    out->push_back(ep);
  }
  return Status::kOk;
}

std::string authority(const Endpoint& ep) {
  char host[INET6_ADDRSTRLEN] = {0};
  uint16_t port = 0;
  if (ep.family() == AF_INET) {
    inet_ntop(AF_INET, &ep.addr.v4.sin_addr, host, sizeof(host));
    port = ntohs(ep.addr.v4.sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  inet_ntop(AF_INET6, &ep.addr.v6.sin6_addr, host, sizeof(host));
  port = ntohs(ep.addr.v6.sin6_port);
  return "[" + std::string(host) + "]:" + std::to_string(port);
}

}  // namespace sb
