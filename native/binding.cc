// The only N-API file: JS arguments in, batches of results out, core status codes mapped to
// JS errors. Everything it drives lives in native/core and knows nothing of Node.
//
// A scan's life, and the thread each step runs on:
//   Scan constructor (JS)      decode endpoints, start the core scan, register the env
//                              cleanup hook
//   on_results / on_finished   scan threads: append to `pending_`, queue one TSFN call if none
//   (scan threads)             is queued (results coalesce into one batch per JS turn)
//   deliver (JS)               hand the batch to JS as an ArrayBuffer of 16-byte records (plus
//                              probe reports as objects, for targets that had a plan); after
//                              the last batch join the threads, remove the hook, release the TSFN
//   tsfn finalizer (JS)        drop the job's self-reference
//   env cleanup hook (JS, at   abort, join, abort the TSFN: a worker_thread that is terminated
//   env teardown)              or a process that exits mid-scan leaves no thread or socket
#include <napi.h>
#include <sys/resource.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/connect_scan.hh"
#include "core/endpoint.hh"
#include "core/poller.hh"
#include "core/probe.hh"
#include "core/probe_ggml_rpc.hh"
#include "core/status.hh"
#include "core/unix_datagram.hh"

namespace {

Napi::Error make_error(Napi::Env env, sb::Status status, int sys_error, const std::string& detail) {
  std::string message = std::string(sb::status_message(status));
  if (!detail.empty()) message += ": " + detail;
  if (sys_error != 0) message += std::string(" (") + std::strerror(sys_error) + ")";
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, sb::status_code(status)));
  return error;
}

// A step in the shape TS reads as ProbeStep (lib/probes/types.ts), the JS engine's shape: a
// field the step lacks (the -1s, an empty message) is left out, not sent as a marker.
Napi::Value probe_step_to_js(Napi::Env env, const sb::ProbeStep& step) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("kind", sb::probe_kind_name(step.kind));
  o.Set("outcome", sb::probe_outcome_name(step.outcome));
  o.Set("detail", step.detail);
  o.Set("elapsedMs", step.elapsed_ms);
  o.Set("received", static_cast<double>(step.received));
  if (step.has_version) {
    Napi::Array version = Napi::Array::New(env, 3);
    for (uint32_t i = 0; i < 3; ++i) version.Set(i, Napi::Number::New(env, step.version[i]));
    o.Set("version", version);
    o.Set("legacyHello", step.legacy_hello);
  }
  if (step.kind == sb::ProbeKind::kGgmlRpc) {
    Napi::Array devices = Napi::Array::New(env, step.devices.size());
    for (uint32_t i = 0; i < step.devices.size(); ++i) {
      Napi::Object d = Napi::Object::New(env);
      d.Set("index", step.devices[i].index);
      // Byte counts stay exact as doubles up to 8 PiB.
      d.Set("freeBytes", static_cast<double>(step.devices[i].free_bytes));
      d.Set("totalBytes", static_cast<double>(step.devices[i].total_bytes));
      devices.Set(i, d);
    }
    o.Set("devices", devices);
  } else {
    if (step.http_status >= 0) o.Set("httpStatus", step.http_status);
    if (step.grpc_status >= 0) o.Set("grpcStatus", step.grpc_status);
    if (step.serving_status >= 0) o.Set("servingStatus", step.serving_status);
    if (!step.grpc_message.empty()) o.Set("grpcMessage", step.grpc_message);
  }
  return o;
}

Napi::Value probe_reports_to_js(Napi::Env env, const std::vector<sb::ProbeReport>& reports) {
  if (reports.empty()) return env.Undefined();
  Napi::Array out = Napi::Array::New(env, reports.size());
  for (uint32_t i = 0; i < reports.size(); ++i) {
    Napi::Object r = Napi::Object::New(env);
    r.Set("index", reports[i].target);
    Napi::Array steps = Napi::Array::New(env, reports[i].steps.size());
    for (uint32_t j = 0; j < reports[i].steps.size(); ++j)
      steps.Set(j, probe_step_to_js(env, reports[i].steps[j]));
    r.Set("steps", steps);
    out.Set(i, r);
  }
  return out;
}

// The timing a scan ended with, in the shape of the JS engine's EngineTiming; srttMs and
// rttvarMs are null when no connect was answered.
Napi::Value timing_to_js(Napi::Env env, const sb::TimingReport& timing) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("srttMs",
        timing.rtt.sampled ? Napi::Value(Napi::Number::New(env, timing.rtt.srtt_ms)) : env.Null());
  o.Set("rttvarMs", timing.rtt.sampled ? Napi::Value(Napi::Number::New(env, timing.rtt.rttvar_ms))
                                       : env.Null());
  o.Set("timeoutMs", timing.rtt.timeout_ms);
  o.Set("retried", static_cast<double>(timing.retried));
  return o;
}

class ScanJob;
void deliver(Napi::Env env, Napi::Function callback, ScanJob* job, std::nullptr_t* unused);
using ResultsTsfn = Napi::TypedThreadSafeFunction<ScanJob, std::nullptr_t, deliver>;

class ScanJob final : public sb::ResultSink {
 public:
  // Scan threads.
  void on_results(const sb::ConnectResult* results, size_t count,
                  std::vector<sb::ProbeReport>* reports) override {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_.insert(pending_.end(), results, results + count);
    for (auto& report : *reports) pending_reports_.push_back(std::move(report));
    queue_delivery_locked();
  }
  void on_finished(bool aborted) override {
    std::lock_guard<std::mutex> lock(mutex_);
    finished_ = true;
    aborted_ = aborted;
    queue_delivery_locked();
  }

  // JS thread.
  void abort() {
    if (scan_) scan_->abort();
  }

  // JS thread: the TSFN callback.
  void deliver(Napi::Env env, Napi::Function callback) {
    std::vector<sb::ConnectResult> batch;
    std::vector<sb::ProbeReport> reports;
    bool finished;
    bool aborted;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      batch.swap(pending_);
      reports.swap(pending_reports_);
      finished = finished_;
      aborted = aborted_;
      delivery_queued_ = false;
    }
    if (!batch.empty()) {
      const size_t bytes = batch.size() * sizeof(sb::ConnectResult);
      Napi::ArrayBuffer records = Napi::ArrayBuffer::New(env, bytes);
      std::memcpy(records.Data(), batch.data(), bytes);
      callback.Call({records, Napi::Boolean::New(env, false), Napi::Boolean::New(env, false),
                     probe_reports_to_js(env, reports)});
    }
    if (finished && !completed_) {
      const Napi::Value timing = timing_to_js(env, scan_->timing());
      complete();
      callback.Call({env.Null(), Napi::Boolean::New(env, true), Napi::Boolean::New(env, aborted),
                     env.Undefined(), timing});
    }
  }

  // JS thread, at env teardown.
  static void on_env_cleanup(void* arg) {
    auto* job = static_cast<ScanJob*>(arg);
    job->hook_registered_ = false;
    if (job->scan_) {
      job->scan_->abort();
      job->scan_->join();
      job->scan_.reset();
    }
    job->tsfn_.Abort();
  }

  std::unique_ptr<sb::ConnectScan> scan_;
  ResultsTsfn tsfn_;
  napi_env env_ = nullptr;
  bool hook_registered_ = false;
  std::shared_ptr<ScanJob> self_;  // alive until the TSFN is finalized

 private:
  void queue_delivery_locked() {
    if (delivery_queued_) return;
    delivery_queued_ = true;
    // napi_closing means the env is going away; the cleanup hook finishes the job then.
    tsfn_.NonBlockingCall();
  }

  // JS thread: every scan thread has ended (the last one queued this call).
  void complete() {
    completed_ = true;
    scan_->join();
    scan_.reset();  // closes the pollers and wakers
    if (hook_registered_) {
      napi_remove_env_cleanup_hook(env_, on_env_cleanup, this);
      hook_registered_ = false;
    }
    tsfn_.Release();
  }

  std::mutex mutex_;
  std::vector<sb::ConnectResult> pending_;
  std::vector<sb::ProbeReport> pending_reports_;
  bool finished_ = false;
  bool aborted_ = false;
  bool delivery_queued_ = false;
  bool completed_ = false;
};

void deliver(Napi::Env env, Napi::Function callback, ScanJob* job, std::nullptr_t* /*unused*/) {
  if (env == nullptr || job == nullptr) return;  // the TSFN is being torn down
  job->deliver(env, callback);
}

// The `timing` names a scan takes (TIMINGS in lib/common/options.ts); in the layout, so a
// build from before adaptive timing, which would ignore the option, is refused at load.
constexpr const char* kTimingFixed = "fixed";
constexpr const char* kTimingAdaptive = "adaptive";

int get_int(const Napi::Object& options, const char* name, int fallback) {
  const Napi::Value v = options.Get(name);
  return v.IsNumber() ? v.As<Napi::Number>().Int32Value() : fallback;
}

class Scan : public Napi::ObjectWrap<Scan> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "Scan", {InstanceMethod<&Scan::abort>("abort")});
  }

  // JS thread: new Scan(endpoints: Uint8Array, options: object, onEvent: function)
  explicit Scan(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Scan>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsTypedArray() || !info[1].IsObject() ||
        !info[2].IsFunction()) {
      make_error(env, sb::Status::kInvalidArgument, 0,
                 "expected (endpoints: Uint8Array, options: object, onEvent: function)")
          .ThrowAsJavaScriptException();
      return;
    }
    Napi::TypedArray array = info[0].As<Napi::TypedArray>();
    const auto* bytes =
        static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
    sb::EndpointList endpoints;
    if (auto st = sb::EndpointList::decode(bytes, array.ByteLength(), &endpoints);
        st != sb::Status::kOk) {
      make_error(env, st, 0, "").ThrowAsJavaScriptException();
      return;
    }

    Napi::Object opts = info[1].As<Napi::Object>();
    sb::ScanOptions options;
    options.timeout_ms = get_int(opts, "timeoutMs", options.timeout_ms);
    options.adaptive = opts.Get("timing").IsString() &&
                       opts.Get("timing").As<Napi::String>().Utf8Value() == kTimingAdaptive;
    options.min_timeout_ms = get_int(opts, "minRttTimeoutMs", options.min_timeout_ms);
    options.concurrency = get_int(opts, "concurrency", options.concurrency);
    options.retries = get_int(opts, "retries", options.retries);
    options.threads = get_int(opts, "threads", options.threads);
    options.probe_timeout_ms = get_int(opts, "probeTimeoutMs", options.probe_timeout_ms);
    const Napi::Value grpc_service = opts.Get("grpcService");
    if (grpc_service.IsString()) options.grpc_service = grpc_service.As<Napi::String>().Utf8Value();
    const Napi::Value rate = opts.Get("rate");
    if (rate.IsNumber()) options.rate = rate.As<Napi::Number>().DoubleValue();
    const Napi::Value poller = opts.Get("poller");
    if (poller.IsString() &&
        !sb::parse_poller(poller.As<Napi::String>().Utf8Value().c_str(), &options.poller)) {
      make_error(env, sb::Status::kInvalidArgument, 0, "unknown poller")
          .ThrowAsJavaScriptException();
      return;
    }

    auto job = std::make_shared<ScanJob>();
    job->env_ = env;
    job->tsfn_ =
        ResultsTsfn::New(env, info[2].As<Napi::Function>(), "scan_backends.scan", 0, 1, job.get(),
                         [](Napi::Env, void*, ScanJob* j) { j->self_.reset(); });
    // The TSFN's finalizer owns the job from here on, whatever happens next: it runs later,
    // on this thread, even when the scan fails to start below.
    job->self_ = job;
    int sys_error = 0;
    const sb::Status st =
        sb::ConnectScan::start(std::move(endpoints), options, job.get(), &job->scan_, &sys_error);
    if (st != sb::Status::kOk) {
      job->tsfn_.Release();
      make_error(env, st, sys_error, "").ThrowAsJavaScriptException();
      return;
    }
    // Registered after the TSFN, so it runs before the TSFN's own teardown (reverse order).
    napi_add_env_cleanup_hook(env, ScanJob::on_env_cleanup, job.get());
    job->hook_registered_ = true;
    job_ = job;
  }

 private:
  Napi::Value abort(const Napi::CallbackInfo& info) {
    if (auto job = job_.lock()) job->abort();
    return info.Env().Undefined();
  }

  std::weak_ptr<ScanJob> job_;
};

// The soft RLIMIT_NOFILE: the JS side sizes the default window from it.
Napi::Value fd_limit(const Napi::CallbackInfo& info) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return info.Env().Null();
  const double soft = rl.rlim_cur == RLIM_INFINITY ? 1e9 : static_cast<double>(rl.rlim_cur);
  return Napi::Number::New(info.Env(), soft);
}

// notifyDatagram(path, message): one datagram to an AF_UNIX socket (systemd's NOTIFY_SOCKET);
// returns 0 or the errno, never throws for a socket that is not there.
Napi::Value notify_datagram(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
    Napi::TypeError::New(env, "notifyDatagram(path, message): two strings")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const int error = sb::send_unix_datagram(info[0].As<Napi::String>().Utf8Value(),
                                           info[1].As<Napi::String>().Utf8Value());
  return Napi::Number::New(env, error);
}

// The records, ids and names the JS side mirrors (lib/scan/addon/layout.ts and the constants
// load.ts gathers): the loader compares them and refuses a build that differs.
Napi::Object layout(Napi::Env env) {
  Napi::Object layout = Napi::Object::New(env);
  layout.Set("endpointRecordSize", static_cast<double>(sb::kEndpointRecordSize));
  layout.Set("resultRecordSize", static_cast<double>(sizeof(sb::ConnectResult)));
  layout.Set("timedOut", sb::kTimedOut);
  layout.Set("newestKnownMajor", sb::GgmlRpcSession::kNewestKnownMajor);
  Napi::Object plans = Napi::Object::New(env);
  for (uint8_t plan = 0; plan <= sb::kMaxProbePlan; ++plan) {
    std::string name;
    for (sb::ProbeKind kind : sb::plan_kinds(static_cast<sb::ProbePlan>(plan))) {
      name += (name.empty() ? "" : ",") + std::string(sb::probe_kind_name(kind));
    }
    plans.Set(name, plan);
  }
  layout.Set("plans", plans);
  // The names JS and the core exchange, each list read from the core's own table.
  std::vector<const char*> names;
  const auto name_list = [&env, &names]() {
    Napi::Array list = Napi::Array::New(env, names.size());
    for (uint32_t i = 0; i < names.size(); ++i) list.Set(i, names[i]);
    names.clear();
    return list;
  };
#define SB_LAYOUT_NAME(name, text) names.push_back(text);
#define SB_LAYOUT_STATUS(name, code, message) names.push_back(code);
  SB_PROBE_KIND_MAP(SB_LAYOUT_NAME)
  layout.Set("probeKinds", name_list());
  SB_PROBE_OUTCOME_MAP(SB_LAYOUT_NAME)
  layout.Set("outcomes", name_list());
  SB_POLLER_MAP(SB_LAYOUT_NAME)
  layout.Set("pollers", name_list());
  SB_STATUS_MAP(SB_LAYOUT_STATUS)
  layout.Set("statuses", name_list());
#undef SB_LAYOUT_STATUS
#undef SB_LAYOUT_NAME
  Napi::Object commands = Napi::Object::New(env);
#define SB_LAYOUT_COMMAND(name, text, id) commands.Set(text, id);
  SB_GGML_RPC_COMMAND_MAP(SB_LAYOUT_COMMAND)
#undef SB_LAYOUT_COMMAND
  layout.Set("ggmlRpcCommands", commands);
  Napi::Array timings = Napi::Array::New(env, 2);
  timings.Set(0u, kTimingFixed);
  timings.Set(1u, kTimingAdaptive);
  layout.Set("timings", timings);
  return layout;
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  exports.Set("Scan", Scan::define(env));
  exports.Set("fdLimit", Napi::Function::New(env, fd_limit, "fdLimit"));
  exports.Set("notifyDatagram", Napi::Function::New(env, notify_datagram, "notifyDatagram"));
  exports.Set("layout", layout(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(scan_backends, init)
