// ProbeRun on its own: a socketpair plays the server, a fake ProbeIo stands in for the scan
// thread (it records what is watched and when the run asked to be woken), and the test hands
// the run its events and timers by hand, at the times it chooses.
#include "../core/probe_run.hh"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include "check.hh"

namespace {

std::string le64(uint64_t v) {
  std::string s;
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return s;
}

std::string le32(uint32_t v) { return le64(v).substr(0, 4); }

// A connected pair: the run's end non-blocking, the server's end blocking.
void pair(int* client, int* server) {
  int fds[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, fds);
  fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  *client = fds[0];
  *server = fds[1];
}

std::string read_n(int fd, size_t n) {
  std::string got(n, '\0');
  size_t at = 0;
  while (at < n) {
    const ssize_t r = ::read(fd, &got[at], n - at);
    if (r <= 0) break;
    at += static_cast<size_t>(r);
  }
  return got.substr(0, at);
}

void write_all(int fd, const std::string& data) {
  size_t at = 0;
  while (at < data.size())
    at += static_cast<size_t>(::write(fd, data.data() + at, data.size() - at));
}

class FakeIo final : public sb::ProbeIo {
 public:
  ~FakeIo() override {
    for (int fd : servers) ::close(fd);
  }
  int watch(int, sb::Interest) override { return ++watched, 0; }
  void rewatch(int, sb::Interest) override {}
  void unwatch(int) override { ++unwatched; }
  int connect(bool* in_progress) override {
    int client = -1;
    int server = -1;
    pair(&client, &server);
    servers.push_back(server);
    *in_progress = false;
    return client;
  }
  void wake_for_deadline(sb::Nanos at) override { deadlines.push_back(at); }
  void wake_for_quiet(sb::Nanos at) override { quiets.push_back(at); }

  int watched = 0;
  int unwatched = 0;
  std::vector<int> servers;  // the server ends of the connections the run asked for
  std::vector<sb::Nanos> deadlines;
  std::vector<sb::Nanos> quiets;
};

constexpr sb::Nanos kStep = 1000;
constexpr sb::Nanos kQuiet = 250;
const sb::PollEvent kReadable{0, true, false, false, 0};

// A run of `plan` started on one end of a fresh socketpair; *server gets the other end.
std::unique_ptr<sb::ProbeRun> started(FakeIo* io, int* server,
                                      sb::ProbeKind kind = sb::ProbeKind::kGgmlRpc) {
  int client = -1;
  pair(&client, server);
  auto run = std::make_unique<sb::ProbeRun>(std::vector<sb::ProbeKind>{kind},
                                            sb::ProbeConfig{"", "127.0.0.1:50052"},
                                            sb::ProbeLimits{kStep, kQuiet}, io);
  run->start(sb::UniqueFd(client), sb::Interest{false, true}, 0);
  return run;
}

}  // namespace

TEST(probe_run_reads_a_5x_server_and_its_device_over_one_connection) {
  FakeIo io;
  int server = -1;
  auto run = started(&io, &server);
  CHECK(io.deadlines == std::vector<sb::Nanos>{kStep});
  CHECK(io.quiets == std::vector<sb::Nanos>{kQuiet});
  CHECK(read_n(server, 33).size() == 33);  // HELLO with 24 bytes of caps
  write_all(server, le64(28) + std::string("\x05\x00\x00\x00", 4) + std::string(24, '\0'));
  run->on_event(kReadable, 1);
  CHECK(read_n(server, 9) == std::string("\x0f", 1) + le64(0));  // DEVICE_COUNT
  write_all(server, le64(4) + le32(1));
  run->on_event(kReadable, 2);
  CHECK(read_n(server, 13).size() == 13);  // GET_DEVICE_MEMORY of device 0
  write_all(server, le64(16) + le64(7) + le64(9));
  run->on_event(kReadable, 3);
  CHECK(run->done());
  const sb::ProbeReport report = run->take_report(42);
  CHECK(report.target == 42);
  CHECK(report.steps.size() == 1);
  CHECK(report.steps[0].outcome == sb::ProbeOutcome::kRecognized);
  CHECK(report.steps[0].devices.size() == 1 && report.steps[0].devices[0].total_bytes == 9);
  CHECK(io.unwatched == 1);
  ::close(server);
}

TEST(probe_run_ignores_an_early_timer_and_nudges_once_quiet) {
  FakeIo io;
  int server = -1;
  auto run = started(&io, &server);
  read_n(server, 33);
  run->on_quiet(kQuiet - 1);  // not yet quiet for this connection
  run->on_quiet(kQuiet);
  CHECK(read_n(server, 3) == "\xff\r\n");
  run->on_deadline(kStep - 1);  // a timer of an earlier step would come this early
  CHECK(!run->done());
  run->on_deadline(kStep);
  CHECK(run->done());
  const sb::ProbeReport report = run->take_report(0);
  CHECK(report.steps[0].outcome == sb::ProbeOutcome::kSilent);
  ::close(server);
}

TEST(probe_run_ends_a_step_at_its_read_budget) {
  FakeIo io;
  int server = -1;
  auto run = started(&io, &server, sb::ProbeKind::kGrpcHealth);
  const int big = 256 * 1024;
  setsockopt(server, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
  // An endless stream of empty SETTINGS frames, more than the budget.
  std::string flood;
  while (flood.size() <= sb::kProbeReadBudget + 4096)
    flood += std::string("\x00\x00\x00\x04\x00\x00\x00\x00\x00", 9);
  write_all(server, flood);
  for (int i = 0; i < 4 && !run->done(); ++i) run->on_event(kReadable, 1);
  CHECK(run->done());
  const sb::ProbeReport report = run->take_report(0);
  CHECK(report.steps[0].outcome == sb::ProbeOutcome::kProtocolError);
  CHECK(report.steps[0].detail.find("read budget") != std::string::npos ||
        report.steps[0].detail.find("does not read") != std::string::npos);
  ::close(server);
}

TEST(probe_run_reconnects_for_the_old_hello_when_the_new_one_is_dropped) {
  FakeIo io;
  int server = -1;
  auto run = started(&io, &server);
  read_n(server, 33);
  ::close(server);  // a 3.x server drops the 24-byte HELLO without a byte
  run->on_event(kReadable, 1);
  CHECK(io.servers.size() == 1);  // a new connection, asked of the scan thread
  const int second = io.servers[0];
  CHECK(read_n(second, 9) == std::string("\x0e", 1) + le64(0));  // the empty HELLO
  write_all(second, le64(3) + std::string("\x03\x06\x01", 3));
  run->on_event(kReadable, 2);
  CHECK(read_n(second, 9) == std::string("\x0f", 1) + le64(0));
  CHECK(!run->done());
}

TEST(probe_run_given_up_closes_its_connection) {
  FakeIo io;
  int server = -1;
  {
    auto run = started(&io, &server);
    read_n(server, 33);
  }  // HELLO unanswered: the run is dropped, as an abort drops it
  CHECK(io.unwatched == 1);
  char byte = 0;
  CHECK(::read(server, &byte, 1) == 0);  // the run's end is closed
  ::close(server);
}

// A port that answers the gRPC preface in another protocol and is silent to HELLO: the steps
// must say what each got, so the verdict can tell it from a busy ggml-rpc server.
TEST(probe_run_counts_what_each_step_received) {
  FakeIo io;
  int server = -1;
  int client = -1;
  pair(&client, &server);
  sb::ProbeRun run({sb::ProbeKind::kGrpcHealth, sb::ProbeKind::kGgmlRpc},
                   sb::ProbeConfig{"", "127.0.0.1:6379"}, sb::ProbeLimits{kStep, kQuiet}, &io);
  run.start(sb::UniqueFd(client), sb::Interest{false, true}, 0);
  const std::string error = "-ERR unknown command 'PRI'\r\n";
  write_all(server, error);
  run.on_event(kReadable, 1);
  CHECK(io.servers.size() == 1);  // the ggml-rpc step's own connection
  read_n(io.servers[0], 33);
  run.on_deadline(1 + kStep);
  CHECK(run.done());
  const sb::ProbeReport report = run.take_report(0);
  CHECK(report.steps.size() == 2);
  CHECK(report.steps[0].outcome == sb::ProbeOutcome::kNotRecognized);
  CHECK(report.steps[0].received == error.size());
  CHECK(report.steps[1].outcome == sb::ProbeOutcome::kSilent);
  CHECK(report.steps[1].received == 0);
  ::close(server);
}
