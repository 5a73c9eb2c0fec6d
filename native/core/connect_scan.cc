#include "connect_scan.hh"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <limits>
#include <system_error>

#include "clock.hh"
#include "unique_fd.hh"
#include "waker.hh"

namespace sb {

namespace {

constexpr uint32_t kWakeToken = std::numeric_limits<uint32_t>::max();
constexpr int kMaxEvents = 1024;
// Launch at most this many connects between two polls, so answers to the first ones are
// read (and their sockets freed) while a large window fills; with loopback, where connect()
// itself delivers the RST, this keeps rtt figures honest.
constexpr int kLaunchBurst = 64;
// How long a thread with nothing in flight waits before retrying socket() after EMFILE.
constexpr Nanos kEmfileBackoff = 5 * kNanosPerMs;
// How long a probe waits for a first byte before its session may nudge the peer: a quarter of
// the probe timeout, at most this. A free ggml-rpc server answers HELLO within a round trip.
constexpr Nanos kMaxQuietNs = 500 * kNanosPerMs;

bool is_fd_exhaustion(int err) { return err == EMFILE || err == ENFILE; }

// Non-blocking, close-on-exec TCP socket. Returns -errno on failure.
int open_socket(int family) {
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
  const int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  return fd >= 0 ? fd : -errno;
#else
  // macOS has no SOCK_NONBLOCK; another thread could fork between socket() and FD_CLOEXEC,
  // which only leaks a connecting socket into a child that is about to exec.
  UniqueFd fd(::socket(family, SOCK_STREAM, 0));
  if (!fd) return -errno;
  if (fcntl(fd.get(), F_SETFD, FD_CLOEXEC) != 0 ||
      fcntl(fd.get(), F_SETFL, fcntl(fd.get(), F_GETFL) | O_NONBLOCK) != 0)
    return -errno;
#if defined(SO_NOSIGPIPE)
  const int on = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_NOSIGPIPE, &on, sizeof(on));
#endif
  return fd.release();
#endif
}

#if defined(MSG_NOSIGNAL)
constexpr int kSendFlags = MSG_NOSIGNAL;
#else
constexpr int kSendFlags = 0;  // macOS: SO_NOSIGPIPE is set on the socket instead
#endif

// Closes a socket with RST instead of FIN: the scanner keeps no TIME_WAIT entry, so repeated
// scans of a large range do not run out of ephemeral ports, and a server with a request of
// ours still queued drops it instead of answering a closed peer.
void abortive_close(UniqueFd& fd) {
  if (!fd) return;
  const linger lg{1, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  fd.reset();
}

}  // namespace

// One scan thread: its own poller, waker, window and timer queues over its share of targets.
// A slot is one target in flight: connecting, then (with a probe plan) probing, possibly over
// further connections the probes ask for.
class ScanWorker {
 public:
  ScanWorker(ConnectScan* owner, const ScanOptions& options, int window, double rate)
      : owner_(owner),
        timeout_ns_(static_cast<Nanos>(options.timeout_ms) * kNanosPerMs),
        probe_timeout_ns_(static_cast<Nanos>(options.probe_timeout_ms) * kNanosPerMs),
        quiet_ns_(std::min<Nanos>(probe_timeout_ns_ / 4, kMaxQuietNs)),
        grpc_service_(options.grpc_service),
        retries_(options.retries),
        window_(window),
        rate_per_ns_(rate / 1e9),
        // A 10 ms burst allowance: the poller sleeps in whole milliseconds.
        bucket_capacity_(std::max(1.0, rate / 100)) {}

  // Creates the poller and the waker; returns 0 or an errno value.
  int open(Backend backend) {
    int err = 0;
    poller_ = make_poller(backend, &err);
    if (!poller_) return err;
    if ((err = waker_.open()) != 0) return err;
    return poller_->add(waker_.read_fd(), kWakeToken, Interest{true, false});
  }

  // This thread's share of the targets: first, first + stride, ... below end.
  void assign(uint32_t first, uint32_t stride, uint32_t end) { queue_.assign(first, stride, end); }
  void wake() { waker_.wake(); }

  // Scan thread.
  void run() {
    tokens_ = bucket_capacity_;
    last_refill_ = now_ns();
    std::vector<PollEvent> events(kMaxEvents);
    while (!owner_->aborted()) {
      launch_ready(now_ns());
      flush();
      if (inflight_ == 0 && queue_.empty()) break;
      const int n = poller_->wait(wait_timeout_ms(now_ns()), events.data(), kMaxEvents);
      if (n < 0) {
        fail_all(-n);
        break;
      }
      for (int i = 0; i < n; ++i) {
        if (events[i].token == kWakeToken) {
          waker_.drain();
        } else {
          on_ready(events[i]);
        }
      }
      // Answers that arrived count before deadlines that passed meanwhile: a thread that was
      // descheduled must not call a refused port filtered.
      const Nanos now = now_ns();
      expire_connect_timers(now);
      expire_probe_timers(now);
      expire_quiet_timers(now);
      flush();
    }
    // Aborted or done: anything still open had a request or a SYN outstanding.
    for (Slot& slot : slots_) abortive_close(slot.fd);
    flush();
  }

 private:
  enum class Phase { kConnecting, kProbeConnecting, kProbing };

  struct Pending {
    uint32_t target;
    uint16_t attempt;
    Nanos fd_starved_since;  // first EMFILE seen with nothing in flight, 0 if none
  };
  // The attempts this thread still owes, in launch order: one put back for want of a
  // descriptor, then its share of the targets (a stride over the indices, so a /16 costs no
  // per-target storage), then the retries of silent targets.
  class TargetQueue {
   public:
    void assign(uint32_t first, uint32_t stride, uint32_t end) {
      next_ = first;
      stride_ = stride;
      end_ = end;
    }
    bool empty() const { return put_back_.empty() && next_ >= end_ && retries_.empty(); }
    Pending pop() {
      Pending p{0, 0, 0};
      if (!put_back_.empty()) {
        p = put_back_.front();
        put_back_.pop_front();
      } else if (next_ < end_) {
        p.target = static_cast<uint32_t>(next_);
        next_ += stride_;
      } else {
        p = retries_.front();
        retries_.pop_front();
      }
      return p;
    }
    void put_back(Pending p) { put_back_.push_front(p); }
    void retry(Pending p) { retries_.push_back(p); }
    // Hands every attempt still owed to `f`, and forgets them.
    template <typename F>
    void drain(F&& f) {
      while (!empty()) f(pop());
    }

   private:
    std::deque<Pending> put_back_;
    uint64_t next_ = 0;
    uint64_t stride_ = 1;
    uint64_t end_ = 0;
    std::deque<Pending> retries_;
  };
  struct Slot {
    UniqueFd fd;
    uint32_t target = 0;
    uint32_t generation = 0;
    uint16_t attempt = 0;
    Nanos started = 0;
    bool busy = false;
    Phase phase = Phase::kConnecting;
    Interest interest;  // what the poller watches for: changed only when it differs
    // Probing only.
    ConnectResult connect;  // held back until the probes end
    std::vector<ProbeKind> plan;
    size_t plan_step = 0;
    std::unique_ptr<ProbeSession> session;
    std::string out;  // bytes the session asked to send, not yet written
    Nanos step_started = 0;
    size_t step_read = 0;     // bytes the peer sent during this step: bounded by kProbeReadBudget
    uint32_t connection = 0;  // counts the step's connections, for the quiet timer
    ProbeReport report;
  };
  struct Timer {
    Nanos deadline;
    uint32_t slot;
    uint32_t generation;
  };

  Endpoint endpoint(uint32_t target) const { return owner_->endpoints_.at(target); }

  void report(uint32_t target, int32_t error, Nanos started, Nanos now) {
    out_.push_back(ConnectResult{target, error, static_cast<double>(now - started) / kNanosPerMs});
  }

  void flush() {
    if (out_.empty()) return;
    owner_->sink_->on_results(out_.data(), out_.size(), &probe_out_);
    out_.clear();
    probe_out_.clear();
  }

  bool rate_allows(Nanos now) {
    if (rate_per_ns_ <= 0) return true;
    tokens_ = std::min(bucket_capacity_,
                       tokens_ + static_cast<double>(now - last_refill_) * rate_per_ns_);
    last_refill_ = now;
    return tokens_ >= 1;
  }

  void launch_ready(Nanos now) {
    int launched = 0;
    while (!queue_.empty() && inflight_ < window_ && launched < kLaunchBurst) {
      if (now < fd_retry_at_ || !rate_allows(now)) return;
      if (!launch(queue_.pop(), now)) return;
      if (rate_per_ns_ > 0) tokens_ -= 1;
      ++launched;
      now = now_ns();
    }
  }

  // Opens a non-blocking socket and starts connecting. Returns the fd (>= 0) with *in_progress
  // telling whether the connect is still under way, or -errno.
  static int start_connect(const Endpoint& ep, bool* in_progress) {
    const int fd = open_socket(ep.family());
    if (fd < 0) return fd;
    // EINTR from a non-blocking connect means the attempt goes on asynchronously (POSIX);
    // calling connect() again would only report EALREADY.
    if (::connect(fd, &ep.addr.any, ep.addr_len()) == 0) {
      *in_progress = false;
      return fd;
    }
    if (errno == EINPROGRESS || errno == EINTR) {
      *in_progress = true;
      return fd;
    }
    const int err = errno;
    ::close(fd);
    return -err;
  }

  // Returns false when out of descriptors: the target went back to the queue.
  bool launch(Pending next, Nanos now) {
    bool in_progress = false;
    const int fd = start_connect(endpoint(next.target), &in_progress);
    if (fd < 0) {
      if (!is_fd_exhaustion(-fd)) {
        report(next.target, -fd, now, now_ns());
        return true;
      }
      return starve(next, -fd, now);
    }
    const uint32_t index = take_slot();
    Slot& slot = slots_[index];
    slot.fd.reset(fd);
    slot.target = next.target;
    slot.attempt = next.attempt;
    slot.started = now;
    slot.busy = true;
    slot.phase = Phase::kConnecting;
    slot.interest = Interest{false, true};
    ++inflight_;
    if (const int err = poller_->add(slot.fd.get(), index, slot.interest); err != 0) {
      report(next.target, err, now, now_ns());
      release_slot(index);
      return true;
    }
    if (!in_progress) {
      on_connected(index, now_ns());
      return true;
    }
    connect_timers_.push_back(Timer{now + timeout_ns_, index, slot.generation});
    return true;
  }

  // EMFILE/ENFILE never fail a scan: with sockets in flight, the window narrows to what the
  // process could open; with none, wait for other threads or the process to free some, and
  // only after a whole timeout of starvation report the target as an error.
  bool starve(Pending next, int err, Nanos now) {
    if (inflight_ > 0) {
      window_ = std::max(1, inflight_);
      next.fd_starved_since = 0;
    } else {
      if (next.fd_starved_since == 0) next.fd_starved_since = now;
      if (now - next.fd_starved_since >= timeout_ns_) {
        report(next.target, err, next.fd_starved_since, now);
        return true;
      }
      fd_retry_at_ = now + kEmfileBackoff;
    }
    queue_.put_back(next);
    return false;
  }

  uint32_t take_slot() {
    if (!free_slots_.empty()) {
      const uint32_t index = free_slots_.back();
      free_slots_.pop_back();
      return index;
    }
    slots_.emplace_back();
    return static_cast<uint32_t>(slots_.size() - 1);
  }

  // Frees the slot and hands back its socket for the caller to close as it should be closed.
  UniqueFd release_slot(uint32_t index) {
    Slot& slot = slots_[index];
    if (slot.fd) poller_->remove(slot.fd.get());
    slot.busy = false;
    ++slot.generation;  // turns any timer still queued for this slot into a no-op
    slot.session.reset();
    slot.plan.clear();
    slot.out.clear();
    --inflight_;
    free_slots_.push_back(index);
    return std::move(slot.fd);
  }

  void on_ready(const PollEvent& event) {
    const uint32_t index = event.token;
    if (index >= slots_.size() || !slots_[index].busy) return;
    Slot& slot = slots_[index];
    if (slot.phase == Phase::kProbing) {
      if (event.writable && !write_pending(index)) return;
      if (event.readable || event.error) read_available(index);
      return;
    }
    int err = event.socket_error;
    socklen_t len = sizeof(err);
    if (err == 0 && getsockopt(slot.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (slot.phase == Phase::kProbeConnecting) {
      if (err != 0) {
        end_step(index, ProbeOutcome::kConnectFailed,
                 std::string("a new connection for the probe failed: ") + std::strerror(err));
      } else {
        begin_session_io(index);
      }
      return;
    }
    if (err != 0) {
      report(slot.target, err, slot.started, now_ns());
      release_slot(index);
      return;
    }
    on_connected(index, now_ns());
  }

  // The target's connect completed: report it, or hold the report and start its probes.
  void on_connected(uint32_t index, Nanos now) {
    Slot& slot = slots_[index];
    const Endpoint ep = endpoint(slot.target);
    const ConnectResult connected{slot.target, 0,
                                  static_cast<double>(now - slot.started) / kNanosPerMs};
    slot.plan = plan_kinds(ep.plan);
    if (slot.plan.empty()) {
      out_.push_back(connected);
      UniqueFd fd = release_slot(index);
      abortive_close(fd);
      return;
    }
    slot.connect = connected;
    slot.report = ProbeReport{slot.target, {}};
    slot.plan_step = 0;
    begin_step(index, now, /*reuse_connection=*/true);
  }

  // Starts probe `plan_step` on the connection the scan made, or on a new one.
  void begin_step(uint32_t index, Nanos now, bool reuse_connection) {
    Slot& slot = slots_[index];
    ProbeConfig config{grpc_service_, authority(endpoint(slot.target))};
    slot.session = make_probe_session(slot.plan[slot.plan_step], config);
    slot.step_started = now;
    slot.step_read = 0;
    ++slot.generation;  // the connect deadline no longer applies
    probe_timers_.push_back(Timer{now + probe_timeout_ns_, index, slot.generation});
    if (reuse_connection) {
      begin_session_io(index);
    } else {
      reconnect(index);
    }
  }

  void begin_session_io(uint32_t index) {
    Slot& slot = slots_[index];
    slot.phase = Phase::kProbing;
    slot.out.clear();
    ++slot.connection;
    quiet_timers_.push_back(Timer{now_ns() + quiet_ns_, index, slot.connection});
    slot.session->on_connected(&slot.out);
    write_pending(index);
  }

  // Replaces the slot's socket with a new connection to the same target.
  void reconnect(uint32_t index) {
    Slot& slot = slots_[index];
    if (slot.fd) {
      poller_->remove(slot.fd.get());
      slot.fd.reset();
    }
    bool in_progress = false;
    const int fd = start_connect(endpoint(slot.target), &in_progress);
    if (fd < 0) {
      end_step(index, ProbeOutcome::kConnectFailed,
               std::string("a new connection for the probe failed: ") + std::strerror(-fd));
      return;
    }
    slot.fd.reset(fd);
    slot.phase = Phase::kProbeConnecting;
    slot.interest = Interest{!in_progress, in_progress};
    if (!in_progress) {
      if (poller_->add(fd, index, slot.interest) != 0) {
        end_step(index, ProbeOutcome::kConnectFailed, "the poller refused the new connection");
        return;
      }
      begin_session_io(index);
      return;
    }
    if (poller_->add(fd, index, slot.interest) != 0)
      end_step(index, ProbeOutcome::kConnectFailed, "the poller refused the new connection");
  }

  // Probing slots always read, and wait for writability only while bytes are queued. Each
  // probe exchange is a few syscalls; an epoll_ctl that changes nothing is not one of them.
  void update_interest(uint32_t index) {
    Slot& slot = slots_[index];
    const Interest wanted{true, !slot.out.empty()};
    if (wanted.read == slot.interest.read && wanted.write == slot.interest.write) return;
    poller_->modify(slot.fd.get(), index, wanted);
    slot.interest = wanted;
  }

  // Writes what the session queued. Returns false when the slot ended.
  bool write_pending(uint32_t index) {
    Slot& slot = slots_[index];
    if (slot.out.size() > kProbeWriteBacklog) {
      end_step(index, ProbeOutcome::kProtocolError,
               "does not read what the probe sends (" + std::to_string(slot.out.size()) +
                   " bytes queued)");
      return false;
    }
    while (!slot.out.empty()) {
      const ssize_t n = ::send(slot.fd.get(), slot.out.data(), slot.out.size(), kSendFlags);
      if (n > 0) {
        slot.out.erase(0, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      // EPIPE/ECONNRESET: the peer is gone; let the session say what that means.
      apply(index, slot.session->on_closed(errno == ECONNRESET));
      return false;
    }
    update_interest(index);
    return true;
  }

  void read_available(uint32_t index) {
    // Bounded per wake-up so one chatty peer cannot starve the others; level-triggered
    // polling brings the thread back for the rest.
    for (int round = 0; round < 16; ++round) {
      Slot& slot = slots_[index];
      uint8_t buf[4096];
      const ssize_t n = ::recv(slot.fd.get(), buf, sizeof(buf), 0);
      SessionAction action;
      if (n > 0 && (slot.step_read += static_cast<size_t>(n)) > kProbeReadBudget) {
        end_step(
            index, ProbeOutcome::kProtocolError,
            "sent more than " + std::to_string(kProbeReadBudget) + " bytes, a probe's read budget");
        return;
      }
      if (n > 0) {
        action = slot.session->on_data(buf, static_cast<size_t>(n), &slot.out);
      } else if (n == 0) {
        action = slot.session->on_closed(false);
      } else if (errno == EINTR) {
        continue;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return;
      } else {
        action = slot.session->on_closed(errno == ECONNRESET);
      }
      if (!apply(index, action) || n <= 0) return;
      if (!slots_[index].out.empty() && !write_pending(index)) return;
      // A short read drained the socket: skip the recv that would only say EAGAIN.
      if (static_cast<size_t>(n) < sizeof(buf)) return;
    }
  }

  // Acts on what the session said. Returns false when the step ended.
  bool apply(uint32_t index, SessionAction action) {
    switch (action) {
      case SessionAction::kContinue:
        return true;
      case SessionAction::kReconnect:
        reconnect(index);
        return false;
      case SessionAction::kDone:
        end_step(index, slots_[index].session->step().outcome,
                 slots_[index].session->step().detail);
        return false;
    }
    return false;
  }

  // Closes the step's connection (RST when a request is unanswered: a ggml-rpc server dies of
  // SIGPIPE answering a client that closed with FIN), records the step, and either starts the
  // next probe of the plan or reports the target.
  void end_step(uint32_t index, ProbeOutcome outcome, std::string detail) {
    Slot& slot = slots_[index];
    const Nanos now = now_ns();
    ProbeStep step = std::move(slot.session->step());
    step.outcome = outcome;
    step.detail = std::move(detail);
    step.elapsed_ms = static_cast<double>(now - slot.step_started) / kNanosPerMs;
    if (slot.fd) {
      poller_->remove(slot.fd.get());
      if (slot.session->request_pending()) {
        abortive_close(slot.fd);
      } else {
        slot.fd.reset();
      }
    }
    slot.report.steps.push_back(std::move(step));
    const bool try_next =
        outcome == ProbeOutcome::kNotRecognized && slot.plan_step + 1 < slot.plan.size();
    if (try_next) {
      ++slot.plan_step;
      begin_step(index, now, /*reuse_connection=*/false);
      return;
    }
    out_.push_back(slot.connect);
    probe_out_.push_back(std::move(slot.report));
    release_slot(index);
  }

  // Pops deadlines that have passed until one still applies to its slot (its `counter` still
  // has the timer's value); false when none is due.
  bool next_due(std::deque<Timer>& timers, Nanos now, uint32_t* index,
                uint32_t Slot::*counter = &Slot::generation) {
    while (!timers.empty() && timers.front().deadline <= now) {
      const Timer timer = timers.front();
      timers.pop_front();
      const Slot& slot = slots_[timer.slot];
      if (slot.busy && slot.*counter == timer.generation) {
        *index = timer.slot;
        return true;
      }
    }
    return false;
  }

  void expire_connect_timers(Nanos now) {
    for (uint32_t index = 0; next_due(connect_timers_, now, &index);) {
      const Slot& slot = slots_[index];
      const uint32_t target = slot.target;
      const uint16_t attempt = slot.attempt;
      const Nanos started = slot.started;
      release_slot(index);  // a socket still in SYN_SENT closes silently
      if (attempt < retries_) {
        queue_.retry(Pending{target, static_cast<uint16_t>(attempt + 1), 0});
      } else {
        report(target, kTimedOut, started, now);
      }
    }
  }

  void expire_probe_timers(Nanos now) {
    for (uint32_t index = 0; next_due(probe_timers_, now, &index);) {
      Slot& slot = slots_[index];
      if (slot.phase == Phase::kProbeConnecting) {
        end_step(index, ProbeOutcome::kConnectFailed,
                 "a new connection for the probe did not complete in time");
        continue;
      }
      slot.session->on_timeout();
      end_step(index, slot.session->step().outcome, slot.session->step().detail);
    }
  }

  // A probing connection that stayed quiet: its session may add bytes (the ggml-rpc nudge).
  void expire_quiet_timers(Nanos now) {
    for (uint32_t index = 0; next_due(quiet_timers_, now, &index, &Slot::connection);) {
      Slot& slot = slots_[index];
      if (slot.phase != Phase::kProbing) continue;
      slot.session->on_quiet(&slot.out);
      if (!slot.out.empty()) write_pending(index);
    }
  }

  int wait_timeout_ms(Nanos now) const {
    Nanos next = std::numeric_limits<Nanos>::max();
    if (!connect_timers_.empty()) next = connect_timers_.front().deadline;
    if (!probe_timers_.empty()) next = std::min(next, probe_timers_.front().deadline);
    if (!quiet_timers_.empty()) next = std::min(next, quiet_timers_.front().deadline);
    if (!queue_.empty() && inflight_ < window_) {
      if (fd_retry_at_ > now) next = std::min(next, fd_retry_at_);
      if (rate_per_ns_ > 0 && tokens_ < 1)
        next = std::min(next, now + static_cast<Nanos>((1 - tokens_) / rate_per_ns_));
      else if (fd_retry_at_ <= now)
        next = now;  // the launch burst ended with work left: poll without sleeping
    }
    if (next == std::numeric_limits<Nanos>::max()) return -1;
    if (next <= now) return 0;
    // Round up: waking early would only spin until the deadline.
    return static_cast<int>(std::min<Nanos>((next - now + kNanosPerMs - 1) / kNanosPerMs,
                                            std::numeric_limits<int>::max()));
  }

  // The poller itself failed (EBADF/EINVAL/ENOMEM): nothing more can be waited for, so
  // every target still owed a result gets that errno instead of hanging the scan.
  void fail_all(int err) {
    const Nanos now = now_ns();
    for (uint32_t i = 0; i < slots_.size(); ++i) {
      if (!slots_[i].busy) continue;
      report(slots_[i].target, err, slots_[i].started, now);
      UniqueFd fd = release_slot(i);
      abortive_close(fd);
    }
    queue_.drain([&](const Pending& p) { report(p.target, err, now, now); });
  }

  ConnectScan* owner_;
  const Nanos timeout_ns_;
  const Nanos probe_timeout_ns_;
  const Nanos quiet_ns_;
  const std::string grpc_service_;
  const int retries_;
  int window_;
  const double rate_per_ns_;
  const double bucket_capacity_;
  double tokens_ = 0;
  Nanos last_refill_ = 0;
  Nanos fd_retry_at_ = 0;

  std::unique_ptr<Poller> poller_;
  Waker waker_;
  TargetQueue queue_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  // Every connect shares one timeout and every probe step another, so each queue's deadlines
  // arrive in the order they were set: a FIFO per kind is the whole timer structure, O(1) per
  // operation. Stale entries are skipped by generation.
  std::deque<Timer> connect_timers_;
  std::deque<Timer> probe_timers_;
  std::deque<Timer> quiet_timers_;
  std::vector<ConnectResult> out_;
  std::vector<ProbeReport> probe_out_;
  int inflight_ = 0;
};

Status ConnectScan::start(EndpointList endpoints, const ScanOptions& options, ResultSink* sink,
                          std::unique_ptr<ConnectScan>* out, int* sys_error) {
  *sys_error = 0;
  if (sink == nullptr || options.timeout_ms < 1 || options.probe_timeout_ms < 1 ||
      options.concurrency < 1 || options.retries < 0 || options.retries > 100 || options.rate < 0 ||
      options.threads < 1 || options.threads > 256)
    return Status::kInvalidArgument;

  std::unique_ptr<ConnectScan> scan(new ConnectScan());
  scan->endpoints_ = std::move(endpoints);
  scan->sink_ = sink;
  const size_t count = scan->endpoints_.size();
  const int threads =
      static_cast<int>(std::max<size_t>(1, std::min<size_t>(options.threads, count)));
  const int window = std::max(1, (options.concurrency + threads - 1) / threads);
  for (int t = 0; t < threads; ++t) {
    auto worker = std::make_unique<ScanWorker>(scan.get(), options, window, options.rate / threads);
    if ((*sys_error = worker->open(options.backend)) != 0) return Status::kPollerFailed;
    scan->workers_.push_back(std::move(worker));
  }
  // Round-robin: each thread sweeps the whole range, so a slow region is shared.
  for (int t = 0; t < threads; ++t)
    scan->workers_[t]->assign(static_cast<uint32_t>(t), static_cast<uint32_t>(threads),
                              static_cast<uint32_t>(count));

  // Threads wait at a gate until all exist, so a failed std::thread leaves no thread that has
  // touched the sink.
  scan->running_.store(threads);
  try {
    for (auto& worker : scan->workers_) {
      ScanWorker* w = worker.get();
      ConnectScan* self = scan.get();
      scan->threads_.emplace_back([w, self] {
        if (!self->pass_gate()) return;
        w->run();
        self->worker_finished();
      });
    }
  } catch (const std::system_error& e) {
    *sys_error = e.code().value();
    scan->open_gate(Gate::kCancel);
    scan->join();
    return Status::kThreadFailed;
  }
  scan->open_gate(Gate::kGo);
  *out = std::move(scan);
  return Status::kOk;
}

void ConnectScan::open_gate(Gate state) {
  {
    std::lock_guard<std::mutex> lock(gate_mutex_);
    gate_state_ = state;
  }
  gate_.notify_all();
}

bool ConnectScan::pass_gate() {
  std::unique_lock<std::mutex> lock(gate_mutex_);
  gate_.wait(lock, [this] { return gate_state_ != Gate::kWait; });
  return gate_state_ == Gate::kGo;
}

void ConnectScan::worker_finished() {
  if (running_.fetch_sub(1, std::memory_order_acq_rel) == 1) sink_->on_finished(aborted());
}

void ConnectScan::abort() {
  aborted_.store(true, std::memory_order_release);
  for (auto& worker : workers_) worker->wake();
}

void ConnectScan::join() {
  for (auto& thread : threads_)
    if (thread.joinable()) thread.join();
}

ConnectScan::~ConnectScan() {
  abort();
  join();
}

}  // namespace sb
