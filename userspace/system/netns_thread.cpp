// SPDX-License-Identifier: Apache-2.0
#include "system/netns_thread.h"

#include <sched.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <system_error>
#include <thread>

namespace portwatch {

namespace {

// setns() needs CAP_SYS_ADMIN even into the namespace the thread is already in; an
// unprivileged `snapshot` still reads its own.
bool is_current_netns(int netns_fd) {
    struct stat target {
    }, current{};
    return fstat(netns_fd, &target) == 0 && stat("/proc/thread-self/ns/net", &current) == 0 &&
           target.st_ino == current.st_ino && target.st_dev == current.st_dev;
}

}  // namespace

Status run_in_netns(int netns_fd, const std::function<void()> &body) {
    if (is_current_netns(netns_fd)) {
        body();
        return {};
    }
    Status ran;
    try {
        std::thread inside([&] {
            if (setns(netns_fd, CLONE_NEWNET) != 0)
                ran = Failure{errno_text("setns")};
            else
                body();
        });
        inside.join();
    } catch (const std::system_error &thread_error) {
        return Failure{std::string("cannot start the netns thread: ") + thread_error.what()};
    }
    return ran;
}

std::string errno_text(const std::string &what) {
    return what + ": " + std::strerror(errno);
}

}  // namespace portwatch
