// Constructors of the pollers compiled on this platform (see binding.gyp conditions).
#pragma once

#include <memory>

#include "poller.hh"

namespace sb {

std::unique_ptr<Poller> make_epoll_poller(int* err);
std::unique_ptr<Poller> make_kqueue_poller(int* err);
std::unique_ptr<Poller> make_poll_poller(int* err);

}  // namespace sb
