// SPDX-License-Identifier: Apache-2.0
// Reads the port sysctls of any network namespace on this machine, found by its inode.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/netns_ports.h"
#include "base/result.h"

namespace portwatch {

// /proc/sys/net shows the namespace of the thread that reads it, so another namespace is
// read from a short-lived thread that joins it with setns(); the caller's thread never
// changes namespace. Needs root (setns, other processes' /proc/PID/ns/net).
// Not thread-safe: one reader per thread, or a lock around it.
class NetnsConfigReader {
  public:
    static constexpr std::size_t kDefaultMaxCached = 1024;

    explicit NetnsConfigReader(std::size_t max_cached = kDefaultMaxCached);
    ~NetnsConfigReader();
    NetnsConfigReader(const NetnsConfigReader &) = delete;
    NetnsConfigReader &operator=(const NetnsConfigReader &) = delete;

    // The namespace whose inode is `netns_inode` (the N of `net:[N]`). `pid_hint`, if not 0,
    // is a process likely to be in it. A namespace is found only while something names it:
    // a cached fd, /run/netns, a process or thread inside it, or an open fd of any process.
    // A failure says why (not found, setns refused, a sysctl unreadable or unparsable).
    Result<NetnsPortConfig> read(std::uint32_t netns_inode, std::uint32_t pid_hint = 0);
    // The calling thread's own namespace.
    Result<NetnsPortConfig> read_current();

    // An fd on the namespace read() would read, or a failure if none is found. The reader
    // owns it: valid until the reader is destroyed or evicts it for max_cached newer ones.
    Result<int> handle(std::uint32_t netns_inode, std::uint32_t pid_hint = 0);
    // Inodes (unique, sorted) of the namespaces of /run/netns and of every process and
    // thread. A namespace that only an open fd keeps alive is not among them.
    std::vector<std::uint32_t> all_namespaces() const;

    std::size_t cached() const { return fds_.size(); }
    // Closes the cached fds of every other namespace: a cached fd keeps a namespace alive.
    void keep_only(const std::vector<std::uint32_t> &inodes);

  private:
    int find_netns(std::uint32_t inode, std::uint32_t pid_hint);
    std::optional<std::uint32_t> netns_inode_at(const std::string &path) const;
    int open_if_netns(const std::string &path, std::uint32_t inode) const;
    int remember(std::uint32_t inode, int fd);
    void forget_oldest();

    Result<NetnsPortConfig> read_inside(int netns_fd);

    std::size_t max_cached_;
    dev_t nsfs_device_ = 0;
    std::unordered_map<std::uint32_t, int> fds_;
    std::deque<std::uint32_t> oldest_first_;
};

}  // namespace portwatch
