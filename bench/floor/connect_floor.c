/* The physical floor for a connect scan, a reference for the limit and not product code:
 * non-blocking connect + epoll, every target in flight up to RLIMIT_NOFILE, one timeout for
 * all. With PROCS > 1 the range is split over that many processes. Prints open hosts.
 * usage: connect_floor FIRST_ADDRESS LAST_ADDRESS PORT TIMEOUT_MS PROCS */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void scan(uint32_t first, uint32_t last, uint32_t step, uint16_t port, int timeout_ms) {
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  long window = (long)rl.rlim_cur - 64;
  int ep = epoll_create1(0);
  struct epoll_event events[1024];
  uint32_t next = first;
  long inflight = 0;
  double deadline = 0;
  while (next <= last || inflight > 0) {
    while (next <= last && inflight < window) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      if (fd < 0) break;
      struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
      sa.sin_addr.s_addr = htonl(next);
      int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
      if (r == 0) {
        printf("%s\n", inet_ntoa(sa.sin_addr));
        close(fd);
      } else if (errno == EINPROGRESS) {
        struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = ((uint64_t)next << 32) | (uint32_t)fd};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        inflight++;
      } else {
        close(fd);
      }
      next += step;
      if (next < step) break; /* wrapped */
      deadline = now_ms() + timeout_ms;
    }
    int wait = (int)(deadline - now_ms());
    if (wait < 0) wait = 0;
    int n = epoll_wait(ep, events, 1024, wait);
    if (n == 0 && now_ms() >= deadline) break; /* everything left is silent */
    for (int i = 0; i < n; i++) {
      int fd = (int)(uint32_t)events[i].data.u64;
      int err = 0;
      socklen_t len = sizeof(err);
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err == 0) {
        struct in_addr a = {.s_addr = htonl((uint32_t)(events[i].data.u64 >> 32))};
        printf("%s\n", inet_ntoa(a));
      }
      close(fd);
      inflight--;
    }
  }
  fflush(stdout);
}

int main(int argc, char **argv) {
  if (argc != 6) return 2;
  struct in_addr a, b;
  inet_aton(argv[1], &a);
  inet_aton(argv[2], &b);
  uint32_t first = ntohl(a.s_addr), last = ntohl(b.s_addr);
  int procs = atoi(argv[5]);
  for (int p = 0; p < procs; p++) {
    if (procs == 1 || fork() == 0) {
      scan(first + p, last, procs, atoi(argv[3]), atoi(argv[4]));
      if (procs > 1) _exit(0);
    }
  }
  while (wait(NULL) > 0) {
  }
  return 0;
}
