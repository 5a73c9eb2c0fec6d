#include "probe_run.hh"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "socket_ops.hh"

namespace sb {

ProbeRun::ProbeRun(std::vector<ProbeKind> plan, ProbeConfig config, ProbeLimits limits, ProbeIo* io)
    : plan_(std::move(plan)), config_(std::move(config)), limits_(limits), io_(io) {}

ProbeRun::~ProbeRun() {
  if (fd_) {
    io_->unwatch(fd_.get());
    abortive_close(fd_);
  }
}

void ProbeRun::start(UniqueFd connected, Interest watched, Nanos now) {
  begin_step(now, std::move(connected), watched);
}

// Starts step `step_index_` on `connection` when given (the scan's), else on a new one.
void ProbeRun::begin_step(Nanos now, UniqueFd connection, Interest watched) {
  session_ = make_probe_session(plan_[step_index_], config_);
  step_started_ = now;
  step_read_ = 0;
  deadline_ = now + limits_.step_timeout;
  io_->wake_for_deadline(deadline_);
  if (connection) {
    fd_ = std::move(connection);
    interest_ = watched;
    begin_session_io(now);
  } else {
    reconnect(now);
  }
}

void ProbeRun::begin_session_io(Nanos now) {
  connecting_ = false;
  out_.clear();
  quiet_at_ = now + limits_.quiet;
  io_->wake_for_quiet(quiet_at_);
  session_->on_connected(&out_);
  write_pending(now);
}

// Replaces the connection with a new one to the same target.
void ProbeRun::reconnect(Nanos now) {
  close_connection();
  bool in_progress = false;
  const int fd = io_->connect(&in_progress);
  if (fd < 0) {
    end_step(ProbeOutcome::kConnectFailed,
             std::string("a new connection for the probe failed: ") + std::strerror(-fd), now);
    return;
  }
  fd_.reset(fd);
  connecting_ = in_progress;
  interest_ = Interest{!in_progress, in_progress};
  if (io_->watch(fd, interest_) != 0) {
    end_step(ProbeOutcome::kConnectFailed, "the poller refused the new connection", now);
    return;
  }
  if (!in_progress) begin_session_io(now);
}

// Probing connections always read, and wait for writability only while bytes are queued.
// Each probe exchange is a few syscalls; an epoll_ctl that changes nothing is not one of them.
void ProbeRun::update_interest() {
  const Interest wanted{true, !out_.empty()};
  if (wanted.read == interest_.read && wanted.write == interest_.write) return;
  io_->rewatch(fd_.get(), wanted);
  interest_ = wanted;
}

// Writes what the session queued. Returns false when the step ended.
bool ProbeRun::write_pending(Nanos now) {
  if (out_.size() > kProbeWriteBacklog) {
    end_step(
        ProbeOutcome::kProtocolError,
        "does not read what the probe sends (" + std::to_string(out_.size()) + " bytes queued)",
        now);
    return false;
  }
  while (!out_.empty()) {
    const ssize_t n = ::send(fd_.get(), out_.data(), out_.size(), kSendFlags);
    if (n > 0) {
      out_.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    // EPIPE/ECONNRESET: the peer is gone; let the session say what that means.
    apply(session_->on_closed(errno == ECONNRESET), now);
    return false;
  }
  update_interest();
  return true;
}

void ProbeRun::read_available(Nanos now) {
  // Bounded per wake-up so one chatty peer cannot starve the others; level-triggered
  // polling brings the thread back for the rest.
  for (int round = 0; round < 16; ++round) {
    uint8_t buf[4096];
    const ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
    SessionAction action;
    if (n > 0 && (step_read_ += static_cast<size_t>(n)) > kProbeReadBudget) {
      end_step(
          ProbeOutcome::kProtocolError,
          "sent more than " + std::to_string(kProbeReadBudget) + " bytes, a probe's read budget",
          now);
      return;
    }
    if (n > 0) {
      action = session_->on_data(buf, static_cast<size_t>(n), &out_);
    } else if (n == 0) {
      action = session_->on_closed(false);
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return;
    } else {
      action = session_->on_closed(errno == ECONNRESET);
    }
    if (!apply(action, now) || n <= 0) return;
    if (!out_.empty() && !write_pending(now)) return;
    // A short read drained the socket: skip the recv that would only say EAGAIN.
    if (static_cast<size_t>(n) < sizeof(buf)) return;
  }
}

void ProbeRun::on_event(const PollEvent& event, Nanos now) {
  if (done_ || !fd_) return;
  if (connecting_) {
    int err = event.socket_error;
    socklen_t len = sizeof(err);
    if (err == 0 && getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) {
      end_step(ProbeOutcome::kConnectFailed,
               std::string("a new connection for the probe failed: ") + std::strerror(err), now);
    } else {
      begin_session_io(now);
    }
    return;
  }
  if (event.writable && !write_pending(now)) return;
  if (event.readable || event.error) read_available(now);
}

void ProbeRun::on_deadline(Nanos now) {
  if (done_ || now < deadline_) return;  // a timer of an earlier step
  if (connecting_) {
    end_step(ProbeOutcome::kConnectFailed,
             "a new connection for the probe did not complete in time", now);
    return;
  }
  session_->on_timeout();
  end_step(session_->step().outcome, session_->step().detail, now);
}

// A connection that stayed quiet: its session may add bytes (the ggml-rpc nudge).
void ProbeRun::on_quiet(Nanos now) {
  if (done_ || connecting_ || !fd_ || now < quiet_at_) return;  // a timer of an earlier connection
  session_->on_quiet(&out_);
  if (!out_.empty()) write_pending(now);
}

// Acts on what the session said. Returns false when the step ended.
bool ProbeRun::apply(SessionAction action, Nanos now) {
  switch (action) {
    case SessionAction::kContinue:
      return true;
    case SessionAction::kReconnect:
      reconnect(now);
      return false;
    case SessionAction::kDone:
      end_step(session_->step().outcome, session_->step().detail, now);
      return false;
  }
  return false;
}

// Closes the connection: with RST when a request is unanswered (a ggml-rpc server dies of
// SIGPIPE answering a client that closed with FIN), else normally.
void ProbeRun::close_connection() {
  if (!fd_) return;
  io_->unwatch(fd_.get());
  if (session_ && session_->request_pending()) {
    abortive_close(fd_);
  } else {
    fd_.reset();
  }
}

// Records the step and either starts the next probe of the plan or ends the run.
void ProbeRun::end_step(ProbeOutcome outcome, std::string detail, Nanos now) {
  ProbeStep step = std::move(session_->step());
  step.outcome = outcome;
  step.detail = std::move(detail);
  step.elapsed_ms = static_cast<double>(now - step_started_) / kNanosPerMs;
  step.received = step_read_;
  close_connection();
  steps_.push_back(std::move(step));
  connecting_ = false;
  if (outcome == ProbeOutcome::kNotRecognized && step_index_ + 1 < plan_.size()) {
    ++step_index_;
    begin_step(now, UniqueFd(), Interest{});
    return;
  }
  done_ = true;
}

ProbeReport ProbeRun::take_report(uint32_t target) {
  return ProbeReport{target, std::move(steps_)};
}

}  // namespace sb
