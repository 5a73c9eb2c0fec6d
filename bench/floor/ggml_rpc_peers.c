// S4's servers: one process answering ggml-rpc like a 5.x server (24-byte caps HELLO,
// DEVICE_COUNT, GET_DEVICE_MEMORY for one device) on every address FIRST..LAST, port PORT.
// Written from the wire notes (../shared/docs/ggml-rpc-wire.md) so the servers cost next to
// nothing: with 254 Node peers, their own CPU (50-80 ms a pass) was what S4 measured.
// Anything unexpected closes the connection, as the real server does. Not product code.
//
// usage: ggml_rpc_peers FIRST LAST PORT   (prints "ready", exits when stdin closes)
#define _GNU_SOURCE  // accept4
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { CMD_GET_DEVICE_MEMORY = 11, CMD_HELLO = 14, CMD_DEVICE_COUNT = 15 };
enum { MAX_FDS = 65536, HEADER = 9, BUF = 64 };
static const uint64_t kDeviceBytes = 24ull << 30;

struct conn {
  uint8_t buf[BUF];
  int used;
  int hello_done;
  int listener;
};
static struct conn conns[MAX_FDS];

static void put_u64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

static uint32_t get_u32(const uint8_t* p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

// Sends `size` reply bytes after the u64 size header; returns -1 when the client is gone.
static int reply(int fd, const uint8_t* data, uint64_t size) {
  uint8_t out[8 + 32];
  put_u64(out, size);
  memcpy(out + 8, data, size);
  return send(fd, out, 8 + size, MSG_NOSIGNAL) == (ssize_t)(8 + size) ? 0 : -1;
}

// Serves every whole request in the buffer; returns -1 to close the connection.
static int serve(int fd, struct conn* c) {
  while (c->used >= HEADER) {
    const uint8_t cmd = c->buf[0];
    const uint64_t size = get_u64(c->buf + 1);
    if (size > BUF - HEADER) return -1;
    if (c->used < HEADER + (int)size) return 0;
    uint8_t out[32] = {0};
    int rc;
    if (cmd == CMD_HELLO && !c->hello_done && size == 24) {
      out[0] = 5;  // 5.0.0, then a padding byte and 24 bytes of caps
      rc = reply(fd, out, 28);
      c->hello_done = 1;
    } else if (cmd == CMD_DEVICE_COUNT && c->hello_done && size == 0) {
      out[0] = 1;
      rc = reply(fd, out, 4);
    } else if (cmd == CMD_GET_DEVICE_MEMORY && c->hello_done && size == 4 && get_u32(c->buf + HEADER) == 0) {
      put_u64(out, kDeviceBytes);
      put_u64(out + 8, kDeviceBytes);
      rc = reply(fd, out, 16);
    } else {
      return -1;
    }
    if (rc < 0) return -1;
    c->used -= HEADER + (int)size;
    memmove(c->buf, c->buf + HEADER + size, (size_t)c->used);
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s FIRST LAST PORT\n", argv[0]);
    return 2;
  }
  struct in_addr first, last;
  if (inet_pton(AF_INET, argv[1], &first) != 1 || inet_pton(AF_INET, argv[2], &last) != 1) return 2;
  const int port = atoi(argv[3]);
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = 0};
  epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);
  for (uint32_t a = ntohl(first.s_addr); a <= ntohl(last.s_addr); a++) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(a)};
    if (fd < 0 || fd >= MAX_FDS || bind(fd, (struct sockaddr*)&sin, sizeof(sin)) != 0 || listen(fd, 64) != 0) {
      perror("listen");
      return 1;
    }
    conns[fd].listener = 1;
    ev.data.fd = fd;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  printf("ready\n");
  fflush(stdout);
  struct epoll_event events[256];
  for (;;) {
    const int n = epoll_wait(ep, events, 256, -1);
    if (n < 0 && errno != EINTR) return 1;
    for (int i = 0; i < n; i++) {
      const int fd = events[i].data.fd;
      if (fd == 0) {
        char sink[64];
        if (read(0, sink, sizeof(sink)) <= 0) return 0;
        continue;
      }
      if (conns[fd].listener) {
        int client;
        while ((client = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          if (client >= MAX_FDS) {
            close(client);
            continue;
          }
          memset(&conns[client], 0, sizeof(conns[client]));
          ev.data.fd = client;
          epoll_ctl(ep, EPOLL_CTL_ADD, client, &ev);
        }
        continue;
      }
      struct conn* c = &conns[fd];
      const ssize_t got = recv(fd, c->buf + c->used, (size_t)(BUF - c->used), 0);
      if (got > 0) c->used += (int)got;
      if (got <= 0 && !(got < 0 && (errno == EAGAIN || errno == EINTR))) {
        close(fd);  // EOF or reset: the client is done
        continue;
      }
      if (serve(fd, c) < 0 || c->used == BUF) close(fd);
    }
  }
}
