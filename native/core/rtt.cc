#include "rtt.hh"

#include <algorithm>
#include <cmath>
#include <limits>

namespace sb {

RttEstimator::RttEstimator(Nanos floor, Nanos ceiling)
    : floor_(floor), ceiling_(ceiling), timeout_(ceiling) {}

void RttEstimator::sample(Nanos rtt) {
  const double r = static_cast<double>(rtt);
  std::lock_guard<std::mutex> lock(mutex_);
  if (!sampled_) {
    sampled_ = true;
    srtt_ns_ = r;
    rttvar_ns_ = r / 2;
  } else {
    // RFC 6298 2.3: RTTVAR first, from the SRTT before this sample.
    rttvar_ns_ = 0.75 * rttvar_ns_ + 0.25 * std::fabs(srtt_ns_ - r);
    srtt_ns_ = 0.875 * srtt_ns_ + 0.125 * r;
  }
  const double rto = std::min(srtt_ns_ + 4 * rttvar_ns_, static_cast<double>(ceiling_));
  timeout_.store(std::clamp(static_cast<Nanos>(rto), floor_, ceiling_), std::memory_order_relaxed);
}

Nanos RttEstimator::attempt_timeout(int attempt) const {
  Nanos t = timeout();
  for (int i = 0; i < attempt && t < ceiling_; ++i) t *= 2;
  return std::min(t, ceiling_);
}

RttEstimator::Snapshot RttEstimator::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return Snapshot{sampled_, srtt_ns_ / kNanosPerMs, rttvar_ns_ / kNanosPerMs,
                  static_cast<double>(timeout()) / kNanosPerMs};
}

bool ConnectTimers::pop_due(const RttEstimator& rtt, Nanos now, Entry* out) {
  for (size_t attempt = 0; attempt < levels_.size(); ++attempt) {
    std::deque<Entry>& level = levels_[attempt];
    if (level.empty()) continue;
    if (now - level.front().started < rtt.attempt_timeout(static_cast<int>(attempt))) continue;
    *out = level.front();
    level.pop_front();
    return true;
  }
  return false;
}

Nanos ConnectTimers::next_deadline(const RttEstimator& rtt) const {
  Nanos next = std::numeric_limits<Nanos>::max();
  for (size_t attempt = 0; attempt < levels_.size(); ++attempt) {
    if (levels_[attempt].empty()) continue;
    next = std::min(
        next, levels_[attempt].front().started + rtt.attempt_timeout(static_cast<int>(attempt)));
  }
  return next;
}

}  // namespace sb
