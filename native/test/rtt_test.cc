// The adaptive connect timing: RFC 6298's arithmetic, the clamp, and timeouts that move while
// connects are pending.
#include "../core/rtt.hh"

#include <limits>

#include "check.hh"

namespace {

constexpr sb::Nanos ms(double v) { return static_cast<sb::Nanos>(v * sb::kNanosPerMs); }

}  // namespace

TEST(rtt_estimator_follows_rfc_6298) {
  sb::RttEstimator rtt(ms(1), ms(1000));
  CHECK_EQ(rtt.timeout(), ms(1000));  // no sample yet: the ceiling
  CHECK(!rtt.snapshot().sampled);
  rtt.sample(ms(10));  // SRTT 10, RTTVAR 5: RTO 30
  CHECK_EQ(rtt.snapshot().srtt_ms, 10.0);
  CHECK_EQ(rtt.snapshot().rttvar_ms, 5.0);
  CHECK_EQ(rtt.timeout(), ms(30));
  rtt.sample(ms(2));  // RTTVAR 0.75·5 + 0.25·8 = 5.75, then SRTT 0.875·10 + 0.125·2 = 9
  CHECK_EQ(rtt.snapshot().rttvar_ms, 5.75);
  CHECK_EQ(rtt.snapshot().srtt_ms, 9.0);
  CHECK_EQ(rtt.timeout(), ms(32));
}

TEST(rtt_estimator_clamps_between_floor_and_ceiling) {
  sb::RttEstimator fast(ms(50), ms(1000));
  fast.sample(ms(0.05));
  CHECK_EQ(fast.timeout(), ms(50));
  CHECK_EQ(fast.snapshot().timeout_ms, 50.0);
  CHECK_EQ(fast.attempt_timeout(1), ms(100));
  CHECK_EQ(fast.attempt_timeout(5), ms(1000));  // 1600 capped
  sb::RttEstimator slow(ms(50), ms(1000));
  slow.sample(ms(400));  // RTO 1200
  CHECK_EQ(slow.timeout(), ms(1000));
  sb::RttEstimator fixed(ms(700), ms(700));  // fixed timing: every attempt the same
  CHECK_EQ(fixed.attempt_timeout(0), ms(700));
  fixed.sample(ms(1));
  CHECK_EQ(fixed.attempt_timeout(3), ms(700));
}

TEST(connect_timers_expire_as_the_timeout_moves) {
  sb::RttEstimator rtt(ms(50), ms(1000));
  sb::ConnectTimers timers(1);
  timers.push({ms(0), 0, 0, 0});
  timers.push({ms(5), 1, 0, 0});
  timers.push({ms(10), 2, 0, 1});
  sb::ConnectTimers::Entry due{};
  // Before any answer every first attempt waits for the ceiling.
  CHECK(!timers.pop_due(rtt, ms(900), &due));
  CHECK_EQ(timers.next_deadline(rtt), ms(1000));
  // A first answer drops the timeout to the floor: connects started earlier expire at once.
  rtt.sample(ms(0.1));
  CHECK_EQ(timers.next_deadline(rtt), ms(50));
  CHECK(timers.pop_due(rtt, ms(60), &due));
  CHECK_EQ(due.slot, 0u);
  CHECK(timers.pop_due(rtt, ms(60), &due));
  CHECK_EQ(due.slot, 1u);
  // A retry waits twice the timeout.
  CHECK(!timers.pop_due(rtt, ms(60), &due));
  CHECK_EQ(timers.next_deadline(rtt), ms(110));
  CHECK(timers.pop_due(rtt, ms(110), &due));
  CHECK_EQ(due.slot, 2u);
  CHECK_EQ(due.attempt, 1);
  CHECK_EQ(timers.next_deadline(rtt), std::numeric_limits<sb::Nanos>::max());
}
