#include "probe.hh"

#include "probe_ggml_rpc.hh"
#include "probe_grpc_health.hh"

namespace sb {

const char* probe_kind_name(ProbeKind kind) {
  switch (kind) {
#define SB_PROBE_KIND_CASE(name, text) \
  case ProbeKind::name:                \
    return text;
    SB_PROBE_KIND_MAP(SB_PROBE_KIND_CASE)
#undef SB_PROBE_KIND_CASE
  }
  return "unknown";
}

const char* probe_outcome_name(ProbeOutcome outcome) {
  switch (outcome) {
#define SB_PROBE_OUTCOME_CASE(name, text) \
  case ProbeOutcome::name:                \
    return text;
    SB_PROBE_OUTCOME_MAP(SB_PROBE_OUTCOME_CASE)
#undef SB_PROBE_OUTCOME_CASE
  }
  return "unknown";
}

std::string peer_preview(const uint8_t* data, size_t size, size_t max) {
  std::string text;
  for (size_t i = 0; i < size && text.size() < max; ++i) {
    const uint8_t c = data[i];
    text.push_back(c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? static_cast<char>(c) : '.');
  }
  return text;
}

std::unique_ptr<ProbeSession> make_probe_session(ProbeKind kind, const ProbeConfig& config) {
  switch (kind) {
    case ProbeKind::kGgmlRpc:
      return std::make_unique<GgmlRpcSession>();
    case ProbeKind::kGrpcHealth:
      return std::make_unique<GrpcHealthSession>(config);
  }
  return nullptr;
}

std::vector<ProbeKind> plan_kinds(ProbePlan plan) {
  switch (plan) {
    case ProbePlan::kNone:
      return {};
    case ProbePlan::kGgmlRpc:
      return {ProbeKind::kGgmlRpc};
    case ProbePlan::kGrpc:
      return {ProbeKind::kGrpcHealth};
    case ProbePlan::kGgmlRpcThenGrpc:
      return {ProbeKind::kGgmlRpc, ProbeKind::kGrpcHealth};
    case ProbePlan::kGrpcThenGgmlRpc:
      return {ProbeKind::kGrpcHealth, ProbeKind::kGgmlRpc};
  }
  return {};
}

}  // namespace sb
