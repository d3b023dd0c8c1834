// SPDX-License-Identifier: Apache-2.0
// `portwatch monitor --json` run for a test: its lines about one netns, and lookups in them.
#pragma once

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>
#include <vector>

#include "kernel_support.h"

namespace portwatch::test {

// The monitor's lines about one netns, from its ready line to its exit.
class MonitorLog {
  public:
    MonitorLog()
        : monitor_({"monitor", "--json", "--stats-interval", "0", "--report-interval", "0"}) {
        nlohmann::json ready = nlohmann::json::parse(monitor_.next_line());
        EXPECT_EQ(ready["type"], "ready");
    }

    // Stops the monitor and returns the lines of `netns` (events, warnings) and its report.
    std::vector<nlohmann::json> stop_and_collect(std::uint32_t netns) {
        monitor_.signal(SIGINT);
        std::vector<nlohmann::json> lines;
        for (std::string line = monitor_.next_line(); !line.empty(); line = monitor_.next_line()) {
            nlohmann::json object = nlohmann::json::parse(line);
            if (object["type"] == "report") {
                for (const auto &ns : object["netns"])
                    if (ns["netns"] == netns) lines.push_back(ns);
            } else if (object.value("netns", 0u) == netns) {
                lines.push_back(object);
            }
        }
        EXPECT_EQ(monitor_.wait_exit_code(), 0);
        return lines;
    }

  private:
    Monitor monitor_;
};

// Index of the first line with that type (and level and scope, for warnings), or -1.
inline int first(const std::vector<nlohmann::json> &lines, const char *type,
                 const char *level = nullptr, const char *scope = nullptr) {
    for (std::size_t i = 0; i < lines.size(); i++)
        if (lines[i].value("type", "") == type && (!level || lines[i]["level"] == level) &&
            (!scope || lines[i]["scope"] == scope))
            return int(i);
    return -1;
}

// The report entry of the netns (the one line without a type).
inline const nlohmann::json *report_of(const std::vector<nlohmann::json> &lines) {
    for (const auto &line : lines)
        if (!line.contains("type")) return &line;
    return nullptr;
}

inline const nlohmann::json *scope_in(const nlohmann::json &report, const char *scope,
                                      int remote_port = -1) {
    for (const auto &entry : report["scopes"])
        if (entry["scope"] == scope && (remote_port < 0 || entry["remote_port"] == remote_port))
            return &entry;
    return nullptr;
}

// One loopback connection to the listener `server` (on `port`), closed by the client first:
// the client's port goes to TIME_WAIT and stays taken (tcp_tw_reuse=0).
inline void connect_and_close(int server, std::uint16_t port) {
    int client = make_socket(Family::ipv4, Proto::tcp);
    ASSERT_EQ(connect_to(client, Family::ipv4, port), 0) << std::strerror(errno);
    int accepted = accept(server, nullptr, nullptr);
    ASSERT_GE(accepted, 0);
    close(client);
    char byte;
    ASSERT_EQ(read(accepted, &byte, 1), 0);
    close(accepted);
}

}  // namespace portwatch::test
