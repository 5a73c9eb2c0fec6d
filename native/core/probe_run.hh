// The probe phase of one target: the probes of its plan in order, each a ProbeSession over a
// connection the run owns (the one the scan made, or a new one the session asks for), each
// step bounded by a deadline, a read budget and a write backlog, and every connection closed
// with RST while a request is unanswered. The scan thread owns the poller and the timer
// queues: it hands the run each readiness event and each timer that falls due, and the run
// asks it, through ProbeIo, what to watch, when to wake it and for new connections.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "clock.hh"
#include "poller.hh"
#include "probe.hh"
#include "unique_fd.hh"

namespace sb {

// What a probe run needs from its scan thread. All calls come on that thread.
class ProbeIo {
 public:
  virtual ~ProbeIo() = default;
  virtual int watch(int fd, Interest interest) = 0;  // 0 or an errno value
  virtual void rewatch(int fd, Interest interest) = 0;
  virtual void unwatch(int fd) = 0;
  // A new non-blocking connection to the run's target: the fd (>= 0), or -errno.
  virtual int connect(bool* in_progress) = 0;
  // Call on_deadline / on_quiet at (or soon after) `at`. Each step's deadline is later than
  // the one before, so a timer that outlived its step finds `at` not yet reached and is ignored.
  virtual void wake_for_deadline(Nanos at) = 0;
  virtual void wake_for_quiet(Nanos at) = 0;
};

struct ProbeLimits {
  Nanos step_timeout;  // each step, from its start to its last byte
  Nanos quiet;         // first-byte wait before a session may nudge a silent peer
};

class ProbeRun {
 public:
  ProbeRun(std::vector<ProbeKind> plan, ProbeConfig config, ProbeLimits limits, ProbeIo* io);
  ~ProbeRun();  // a run given up before its end closes its connection with RST
  ProbeRun(const ProbeRun&) = delete;
  ProbeRun& operator=(const ProbeRun&) = delete;

  // Starts the plan on the connection the scan made: connected, and already watched by the
  // poller with `watched` (the run changes that only when it differs).
  void start(UniqueFd connected, Interest watched, Nanos now);
  void on_event(const PollEvent& event, Nanos now);
  void on_deadline(Nanos now);
  void on_quiet(Nanos now);

  bool done() const { return done_; }
  // Every step, once done().
  ProbeReport take_report(uint32_t target);

 private:
  void begin_step(Nanos now, UniqueFd connection, Interest watched);
  void begin_session_io(Nanos now);
  void reconnect(Nanos now);
  void update_interest();
  bool write_pending(Nanos now);
  void read_available(Nanos now);
  bool apply(SessionAction action, Nanos now);
  void end_step(ProbeOutcome outcome, std::string detail, Nanos now);
  void close_connection();

  const std::vector<ProbeKind> plan_;
  const ProbeConfig config_;
  const ProbeLimits limits_;
  ProbeIo* const io_;

  size_t step_index_ = 0;
  std::unique_ptr<ProbeSession> session_;
  UniqueFd fd_;
  bool connecting_ = false;  // a connection the session asked for is not up yet
  Interest interest_;        // what the poller watches: changed only when it differs
  std::string out_;          // bytes the session asked to send, not yet written
  Nanos step_started_ = 0;
  Nanos deadline_ = 0;
  Nanos quiet_at_ = 0;
  size_t step_read_ = 0;  // bytes the peer sent during this step: bounded by kProbeReadBudget
  std::vector<ProbeStep> steps_;
  bool done_ = false;
};

}  // namespace sb
