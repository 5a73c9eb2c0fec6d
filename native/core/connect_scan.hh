// The non-blocking connect scan: every target in flight at once (up to a window), driven by
// one poller per scan thread, each connect bounded by a deadline. Pure C++, no N-API.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "endpoint.hh"
#include "poller.hh"
#include "probe.hh"
#include "rtt.hh"
#include "status.hh"

namespace sb {

// The outcome of one target. `error` is 0 when the connect completed, kTimedOut when
// nothing answered before the deadline, otherwise the errno the kernel reported. The JS side
// turns this into a state (open/closed/filtered/unreachable/error) with one shared rule.
struct ConnectResult {
  uint32_t index = 0;  // position in the endpoint list
  int32_t error = 0;
  double rtt_ms = 0;  // from the connect() call to the answer or to the deadline
};
static_assert(sizeof(ConnectResult) == 16, "the binding copies results as 16-byte records");

constexpr int32_t kTimedOut = -1;

struct ScanOptions {
  int timeout_ms = 1000;    // fixed: every attempt's timeout; adaptive: the ceiling
  bool adaptive = false;    // timeouts from the round-trip estimator (rtt.hh)
  int min_timeout_ms = 30;  // adaptive: the floor
  int concurrency = 1024;   // sockets in flight at once, over all threads
  int retries = 0;          // extra attempts for targets that timed out (adaptive: given up early)
  double rate = 0;          // new connects per second over all threads; 0 = unlimited
  int threads = 1;          // scan threads; targets are dealt round-robin
  PollerKind poller = PollerKind::kAuto;
  int probe_timeout_ms = 2000;  // per probe step, from its start to its last byte
  std::string grpc_service;     // the service the gRPC health probe asks about
};

// The timing a scan ended with, for the report.
struct TimingReport {
  RttEstimator::Snapshot rtt;
  uint32_t retried = 0;  // attempts started again after a timeout
};

// Receives results on the scan threads. on_results may be called concurrently from several
// threads; on_finished is called exactly once, by the last thread to end, after its results.
// A target with a probe plan that connected gets its ConnectResult when its probes end, in
// the same call as its ProbeReport.
class ResultSink {
 public:
  virtual ~ResultSink() = default;
  virtual void on_results(const ConnectResult* results, size_t count,
                          std::vector<ProbeReport>* reports) = 0;
  virtual void on_finished(bool aborted) = 0;
};

class ScanWorker;

class ConnectScan {
 public:
  ~ConnectScan();  // aborts and joins
  ConnectScan(const ConnectScan&) = delete;
  ConnectScan& operator=(const ConnectScan&) = delete;

  // Validates the options, creates every poller, then starts the threads. On failure nothing
  // is running, no fd is left open and the sink is never called.
  static Status start(EndpointList endpoints, const ScanOptions& options, ResultSink* sink,
                      std::unique_ptr<ConnectScan>* out, int* sys_error);

  // Any thread. Idempotent. Threads close their sockets and end within one poller wake-up.
  void abort();
  // Waits for every thread to end. Call from the thread that owns this object.
  void join();

  bool aborted() const { return aborted_.load(std::memory_order_acquire); }
  TimingReport timing() const;

 private:
  enum class Gate { kWait, kGo, kCancel };

  ConnectScan() = default;
  friend class ScanWorker;
  void worker_finished();
  void open_gate(Gate state);
  bool pass_gate();  // scan thread: false when start() failed and the thread must not run

  EndpointList endpoints_;
  ResultSink* sink_ = nullptr;
  std::unique_ptr<RttEstimator> rtt_;  // one per scan: every thread samples and reads it
  std::atomic<uint32_t> retried_{0};
  std::vector<std::unique_ptr<ScanWorker>> workers_;
  std::vector<std::thread> threads_;
  std::atomic<bool> aborted_{false};
  std::atomic<int> running_{0};
  std::mutex gate_mutex_;
  std::condition_variable gate_;
  Gate gate_state_ = Gate::kWait;
};

}  // namespace sb
