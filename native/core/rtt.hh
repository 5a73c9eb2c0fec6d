// Adaptive connect timing: RFC 6298's round-trip estimator, shared by every thread of a scan,
// and the queues of pending connects whose timeouts it sets. The JS twin is
// lib/scan/engines/rtt.ts: the same rules, so both engines give up on a silent host alike.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

#include "clock.hh"

namespace sb {

// SRTT and RTTVAR over every connect that completed or was refused (a retry's new socket is a
// clean sample, so Karn's rule has nothing to discard). The timeout of a first attempt is
// clamp(SRTT + 4·RTTVAR, floor, ceiling), the ceiling until a first sample; attempt k waits
// min(ceiling, timeout·2^k). With floor == ceiling every attempt waits exactly that: fixed timing.
class RttEstimator {
 public:
  RttEstimator(Nanos floor, Nanos ceiling);

  void sample(Nanos rtt);  // any thread
  Nanos timeout() const { return timeout_.load(std::memory_order_relaxed); }
  Nanos attempt_timeout(int attempt) const;
  Nanos floor() const { return floor_; }
  Nanos ceiling() const { return ceiling_; }

  struct Snapshot {
    bool sampled = false;
    double srtt_ms = 0;
    double rttvar_ms = 0;
    double timeout_ms = 0;
  };
  Snapshot snapshot() const;

 private:
  const Nanos floor_;
  const Nanos ceiling_;
  mutable std::mutex mutex_;
  bool sampled_ = false;
  double srtt_ns_ = 0;
  double rttvar_ns_ = 0;
  std::atomic<Nanos> timeout_;
};

// Pending connects, one FIFO per attempt number. At any moment every connect of one attempt
// number has the same timeout, and each FIFO is in start order, so only its front can be due:
// O(1) per connect however the estimator moves the timeout.
class ConnectTimers {
 public:
  struct Entry {
    Nanos started;
    uint32_t slot;
    uint32_t generation;
    uint16_t attempt;
  };

  explicit ConnectTimers(int max_attempt) : levels_(static_cast<size_t>(max_attempt) + 1) {}

  void push(const Entry& entry) { levels_.at(entry.attempt).push_back(entry); }
  // Pops one entry whose attempt's timeout has passed by `now`; stale ones (a slot that has
  // answered since) are the caller's to skip.
  bool pop_due(const RttEstimator& rtt, Nanos now, Entry* out);
  // When the next front falls due at the current timeouts; Nanos max when nothing is pending.
  Nanos next_deadline(const RttEstimator& rtt) const;

 private:
  std::vector<std::deque<Entry>> levels_;
};

}  // namespace sb
