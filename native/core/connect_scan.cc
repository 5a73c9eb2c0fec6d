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
#include "probe_run.hh"
#include "socket_ops.hh"
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

}  // namespace

// One scan thread: its own poller, waker, window and timer queues over its share of targets.
// A slot is one target in flight: connecting, then (with a probe plan) probing, possibly over
// further connections the probes ask for.
class ScanWorker {
 public:
  ScanWorker(ConnectScan* owner, const ScanOptions& options, int window, double rate)
      : owner_(owner),
        rtt_(*owner->rtt_),
        adaptive_(options.adaptive),
        probe_timeout_ns_(static_cast<Nanos>(options.probe_timeout_ms) * kNanosPerMs),
        quiet_ns_(std::min<Nanos>(probe_timeout_ns_ / 4, kMaxQuietNs)),
        grpc_service_(options.grpc_service),
        retries_(options.retries),
        window_(window),
        rate_per_ns_(rate / 1e9),
        // A 10 ms burst allowance: the poller sleeps in whole milliseconds.
        bucket_capacity_(std::max(1.0, rate / 100)),
        connect_timers_(options.retries) {}

  // Creates the poller and the waker; returns 0 or an errno value.
  int open(PollerKind poller) {
    int err = 0;
    poller_ = make_poller(poller, &err);
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
    for (Slot& slot : slots_) {
      abortive_close(slot.fd);
      slot.probe.reset();  // closes its connection with RST
    }
    flush();
  }

 private:
  enum class Phase { kConnecting, kProbing };

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
  // What a slot's probe run asks of this thread: its poller, its timer queues, new
  // connections to the slot's target.
  class SlotIo final : public ProbeIo {
   public:
    SlotIo(ScanWorker* worker, uint32_t index) : worker_(worker), index_(index) {}
    int watch(int fd, Interest interest) override {
      return worker_->poller_->add(fd, index_, interest);
    }
    void rewatch(int fd, Interest interest) override {
      worker_->poller_->modify(fd, index_, interest);
    }
    void unwatch(int fd) override { worker_->poller_->remove(fd); }
    int connect(bool* in_progress) override {
      return start_connect(worker_->endpoint(worker_->slots_[index_].target), in_progress);
    }
    void wake_for_deadline(Nanos at) override { worker_->arm(worker_->probe_timers_, at, index_); }
    void wake_for_quiet(Nanos at) override { worker_->arm(worker_->quiet_timers_, at, index_); }

   private:
    ScanWorker* worker_;
    uint32_t index_;
  };

  struct Slot {
    UniqueFd fd;
    uint32_t target = 0;
    uint32_t generation = 0;
    Nanos started = 0;
    bool busy = false;
    Phase phase = Phase::kConnecting;
    Interest interest;  // what the poller watches for while connecting
    // Probing only: the connect result is held back until the probes end.
    ConnectResult connect;
    std::unique_ptr<SlotIo> io;  // outlives `probe`, which calls it
    std::unique_ptr<ProbeRun> probe;
  };
  struct Timer {
    Nanos deadline;
    uint32_t slot;
    uint32_t generation;
  };

  Endpoint endpoint(uint32_t target) const { return owner_->endpoints_.at(target); }

  void report(uint32_t target, int32_t error, Nanos started, Nanos now) {
    if (error == ECONNREFUSED) rtt_.sample(now - started);
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
    connect_timers_.push(ConnectTimers::Entry{now, index, slot.generation, next.attempt});
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
      if (now - next.fd_starved_since >= rtt_.ceiling()) {
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
    ++slot.generation;   // turns any timer still queued for this slot into a no-op
    slot.probe.reset();  // a run given up closes its own connection with RST
    slot.io.reset();
    --inflight_;
    free_slots_.push_back(index);
    return std::move(slot.fd);
  }

  void on_ready(const PollEvent& event) {
    const uint32_t index = event.token;
    if (index >= slots_.size() || !slots_[index].busy) return;
    Slot& slot = slots_[index];
    if (slot.phase == Phase::kProbing) {
      slot.probe->on_event(event, now_ns());
      if (slot.probe->done()) finish_probe(index);
      return;
    }
    int err = event.socket_error;
    socklen_t len = sizeof(err);
    if (err == 0 && getsockopt(slot.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
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
    rtt_.sample(now - slot.started);
    const Endpoint ep = endpoint(slot.target);
    const ConnectResult connected{slot.target, 0,
                                  static_cast<double>(now - slot.started) / kNanosPerMs};
    std::vector<ProbeKind> plan = plan_kinds(ep.plan);
    if (plan.empty()) {
      out_.push_back(connected);
      UniqueFd fd = release_slot(index);
      abortive_close(fd);
      return;
    }
    // The connection passes to the slot's probe run, still watched with the slot's token.
    slot.connect = connected;
    slot.phase = Phase::kProbing;
    ++slot.generation;  // the connect deadline no longer applies
    slot.io = std::make_unique<SlotIo>(this, index);
    slot.probe =
        std::make_unique<ProbeRun>(std::move(plan), ProbeConfig{grpc_service_, authority(ep)},
                                   ProbeLimits{probe_timeout_ns_, quiet_ns_}, slot.io.get());
    slot.probe->start(std::move(slot.fd), slot.interest, now);
    if (slot.probe->done()) finish_probe(index);
  }

  // A probe run ended: report the connect result with its probe steps, and free the slot.
  void finish_probe(uint32_t index) {
    Slot& slot = slots_[index];
    out_.push_back(slot.connect);
    probe_out_.push_back(slot.probe->take_report(slot.target));
    release_slot(index);
  }

  void arm(std::deque<Timer>& timers, Nanos at, uint32_t index) {
    timers.push_back(Timer{at, index, slots_[index].generation});
  }

  // Pops deadlines that have passed until one still applies to its slot (a freed or reused
  // slot has a new generation); false when none is due.
  bool next_due(std::deque<Timer>& timers, Nanos now, uint32_t* index) {
    while (!timers.empty() && timers.front().deadline <= now) {
      const Timer timer = timers.front();
      timers.pop_front();
      const Slot& slot = slots_[timer.slot];
      if (slot.busy && slot.generation == timer.generation) {
        *index = timer.slot;
        return true;
      }
    }
    return false;
  }

  void expire_connect_timers(Nanos now) {
    ConnectTimers::Entry due{};
    while (connect_timers_.pop_due(rtt_, now, &due)) {
      const Slot& slot = slots_[due.slot];
      if (!slot.busy || slot.generation != due.generation) continue;
      const uint32_t target = slot.target;
      const Nanos started = slot.started;
      // Adaptive timing retries only a connect given up before the ceiling: an all-silent range
      // costs one ceiling, and each retry elsewhere at most twice the timeout it followed.
      const bool early = !adaptive_ || rtt_.attempt_timeout(due.attempt) < rtt_.ceiling();
      release_slot(due.slot);  // a socket still in SYN_SENT closes silently
      if (due.attempt < retries_ && early) {
        owner_->retried_.fetch_add(1, std::memory_order_relaxed);
        queue_.retry(Pending{target, static_cast<uint16_t>(due.attempt + 1), 0});
      } else {
        report(target, kTimedOut, started, now);
      }
    }
  }

  // Probe deadlines and quiet intervals go to the slot's run, which tells a current timer
  // from one of an earlier step by its time.
  void expire_probe_timers(Nanos now) {
    for (uint32_t index = 0; next_due(probe_timers_, now, &index);) {
      slots_[index].probe->on_deadline(now);
      if (slots_[index].probe->done()) finish_probe(index);
    }
  }

  void expire_quiet_timers(Nanos now) {
    for (uint32_t index = 0; next_due(quiet_timers_, now, &index);) {
      slots_[index].probe->on_quiet(now);
      if (slots_[index].probe->done()) finish_probe(index);
    }
  }

  int wait_timeout_ms(Nanos now) const {
    Nanos next = connect_timers_.next_deadline(rtt_);
    // Another thread's answers may shorten the timeout while this one sleeps: it looks again
    // at least once a floor.
    if (adaptive_ && next != std::numeric_limits<Nanos>::max())
      next = std::min(next, now + rtt_.floor());
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
  RttEstimator& rtt_;
  const bool adaptive_;
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
  // Connects share the estimator's timeout per attempt number (rtt.hh), and every probe step
  // one timeout, so each queue's deadlines arrive in the order they were set: a FIFO per kind
  // is the whole timer structure, O(1) per operation. Stale entries are skipped by generation.
  ConnectTimers connect_timers_;
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
      (options.adaptive &&
       (options.min_timeout_ms < 1 || options.min_timeout_ms > options.timeout_ms)) ||
      options.concurrency < 1 || options.retries < 0 || options.retries > 100 || options.rate < 0 ||
      options.threads < 1 || options.threads > 256)
    return Status::kInvalidArgument;

  std::unique_ptr<ConnectScan> scan(new ConnectScan());
  scan->endpoints_ = std::move(endpoints);
  scan->sink_ = sink;
  const Nanos ceiling = static_cast<Nanos>(options.timeout_ms) * kNanosPerMs;
  // Fixed timing is a floor equal to the ceiling: every attempt waits exactly the timeout.
  const Nanos floor =
      options.adaptive ? static_cast<Nanos>(options.min_timeout_ms) * kNanosPerMs : ceiling;
  scan->rtt_ = std::make_unique<RttEstimator>(floor, ceiling);
  const size_t count = scan->endpoints_.size();
  const int threads =
      static_cast<int>(std::max<size_t>(1, std::min<size_t>(options.threads, count)));
  const int window = std::max(1, (options.concurrency + threads - 1) / threads);
  for (int t = 0; t < threads; ++t) {
    auto worker = std::make_unique<ScanWorker>(scan.get(), options, window, options.rate / threads);
    if ((*sys_error = worker->open(options.poller)) != 0) return Status::kPollerFailed;
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

TimingReport ConnectScan::timing() const {
  return TimingReport{rtt_->snapshot(), retried_.load(std::memory_order_relaxed)};
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
