#include "system/netns_thread.h"

#include <sched.h>

#include <cerrno>
#include <cstring>
#include <system_error>
#include <thread>

namespace portwatch {

std::string run_in_netns(int netns_fd, const std::function<void()> &body) {
    std::string error;
    try {
        std::thread inside([&] {
            if (setns(netns_fd, CLONE_NEWNET) != 0)
                error = errno_text("setns");
            else
                body();
        });
        inside.join();
    } catch (const std::system_error &thread_error) {
        error = std::string("cannot start the netns thread: ") + thread_error.what();
    }
    return error;
}

std::string errno_text(const std::string &what) {
    return what + ": " + std::strerror(errno);
}

}  // namespace portwatch
