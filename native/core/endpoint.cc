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

Status EndpointList::decode(const uint8_t* data, size_t size, EndpointList* out) {
  if (size % kEndpointRecordSize != 0) return Status::kInvalidEndpoints;
  if (size / kEndpointRecordSize > kMaxEndpoints) return Status::kInvalidEndpoints;
  for (size_t at = 0; at < size; at += kEndpointRecordSize) {
    const uint8_t* rec = data + at;
    const bool family_ok = rec[0] == 4 || rec[0] == 6;
    const bool port_ok = (rec[2] | rec[3]) != 0;
    if (!family_ok || !port_ok || rec[1] > kMaxProbePlan) return Status::kInvalidEndpoints;
  }
  out->records_.assign(data, data + size);
  return Status::kOk;
}

Endpoint EndpointList::at(size_t index) const {
  const uint8_t* rec = records_.data() + index * kEndpointRecordSize;
  const uint16_t port = static_cast<uint16_t>(rec[2] << 8 | rec[3]);
  Endpoint ep;
  ep.plan = static_cast<ProbePlan>(rec[1]);
  if (rec[0] == 4) {
    ep.addr.v4.sin_family = AF_INET;
    ep.addr.v4.sin_port = htons(port);
    std::memcpy(&ep.addr.v4.sin_addr, rec + 8, 4);
  } else {
    ep.addr.v6.sin6_family = AF_INET6;
    ep.addr.v6.sin6_port = htons(port);
    ep.addr.v6.sin6_scope_id = read_be32(rec + 4);
    std::memcpy(&ep.addr.v6.sin6_addr, rec + 8, 16);
  }
  return ep;
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
