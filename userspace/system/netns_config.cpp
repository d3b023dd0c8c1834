// SPDX-License-Identifier: Apache-2.0
#include "system/netns_config.h"

#include "system/netns_thread.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <unordered_set>
#include <functional>
#include <string_view>

namespace portwatch {
namespace {

constexpr const char *kPortRangePath = "/proc/sys/net/ipv4/ip_local_port_range";
constexpr const char *kReservedPortsPath = "/proc/sys/net/ipv4/ip_local_reserved_ports";
constexpr const char *kTwReusePath = "/proc/sys/net/ipv4/tcp_tw_reuse";

struct SysctlTexts {
    std::string port_range;
    std::string reserved_ports;
    std::string tw_reuse;
};

Result<std::string> read_whole_file(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Failure{errno_text(path)};
    std::string text;
    char chunk[4096];
    ssize_t n;
    while ((n = ::read(fd, chunk, sizeof(chunk))) > 0) text.append(chunk, n);
    std::string error = n < 0 ? errno_text(path) : std::string();
    close(fd);
    if (n < 0) return Failure{error};
    return text;
}

Result<SysctlTexts> read_sysctl_texts() {
    Result<std::string> port_range = read_whole_file(kPortRangePath);
    if (!port_range) return Failure{port_range.error()};
    Result<std::string> reserved_ports = read_whole_file(kReservedPortsPath);
    if (!reserved_ports) return Failure{reserved_ports.error()};
    Result<std::string> tw_reuse = read_whole_file(kTwReusePath);
    if (!tw_reuse) return Failure{tw_reuse.error()};
    return SysctlTexts{std::move(port_range).value(), std::move(reserved_ports).value(),
                       std::move(tw_reuse).value()};
}

std::string shown(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    return "'" + text + "'";
}

Result<NetnsPortConfig> parse_sysctl_texts(const SysctlTexts &texts) {
    auto range = parse_port_range(texts.port_range);
    auto reserved = parse_reserved_ports(texts.reserved_ports);
    auto tw_reuse = parse_tw_reuse(texts.tw_reuse);
    if (!range) return Failure{"cannot parse ip_local_port_range " + shown(texts.port_range)};
    if (!reserved)
        return Failure{"cannot parse ip_local_reserved_ports " + shown(texts.reserved_ports)};
    if (!tw_reuse) return Failure{"cannot parse tcp_tw_reuse " + shown(texts.tw_reuse)};
    return NetnsPortConfig{*range, std::move(*reserved), *tw_reuse};
}

// The calling thread's namespace.
Result<NetnsPortConfig> read_own_netns() {
    Result<SysctlTexts> texts = read_sysctl_texts();
    if (!texts) return Failure{texts.error()};
    return parse_sysctl_texts(*texts);
}

bool is_number(const char *name) {
    return *name && std::all_of(name, name + std::strlen(name),
                                [](unsigned char c) { return std::isdigit(c); });
}

// true from `visit` stops a walk, which then returns true.
using PathVisitor = std::function<bool(const std::string &path)>;

// Visits the entries of `directory` (numeric names only if `numeric_only`).
bool visit_directory(const std::string &directory, bool numeric_only, const PathVisitor &visit) {
    DIR *stream = opendir(directory.c_str());
    if (!stream) return false;
    bool stopped = false;
    while (dirent *entry = readdir(stream)) {
        std::string_view name = entry->d_name;
        if (name == "." || name == ".." || (numeric_only && !is_number(entry->d_name))) continue;
        stopped = visit(directory + "/" + entry->d_name);
        if (stopped) break;
    }
    closedir(stream);
    return stopped;
}

// The places that name a network namespace, each walked by one function; visit() is given
// paths that are probably (not surely) namespace files.
bool visit_run_netns(const PathVisitor &visit) {
    return visit_directory("/run/netns", false, visit);
}

bool visit_process_netns(const PathVisitor &visit) {
    return visit_directory("/proc", true,
                           [&](const std::string &process) { return visit(process + "/ns/net"); });
}

bool visit_thread_netns(const PathVisitor &visit) {
    return visit_directory("/proc", true, [&](const std::string &process) {
        return visit_directory(process + "/task", true, [&](const std::string &thread) {
            return visit(thread + "/ns/net");
        });
    });
}

bool visit_open_fds(const PathVisitor &visit) {
    return visit_directory("/proc", true, [&](const std::string &process) {
        return visit_directory(process + "/fd", true, visit);
    });
}

std::string not_found(std::uint32_t netns_inode) {
    return "no network namespace with inode " + std::to_string(netns_inode) + " found";
}

}  // namespace

NetnsConfigReader::NetnsConfigReader(std::size_t max_cached)
    : max_cached_(std::max<std::size_t>(max_cached, 1)) {
    struct stat own {};
    if (stat("/proc/thread-self/ns/net", &own) == 0) nsfs_device_ = own.st_dev;
}

NetnsConfigReader::~NetnsConfigReader() {
    for (const auto &[inode, fd] : fds_) close(fd);
}

Result<NetnsPortConfig> NetnsConfigReader::read(std::uint32_t netns_inode, std::uint32_t pid_hint) {
    Result<int> fd = handle(netns_inode, pid_hint);
    if (!fd) return Failure{fd.error()};
    return read_inside(*fd);
}

Result<NetnsPortConfig> NetnsConfigReader::read_current() {
    return read_own_netns();
}

Result<int> NetnsConfigReader::handle(std::uint32_t netns_inode, std::uint32_t pid_hint) {
    int fd = find_netns(netns_inode, pid_hint);
    if (fd < 0) return Failure{not_found(netns_inode)};
    return fd;
}

std::vector<std::uint32_t> NetnsConfigReader::all_namespaces() const {
    std::vector<std::uint32_t> inodes;
    auto collect = [&](const std::string &path) {
        if (auto inode = netns_inode_at(path)) inodes.push_back(*inode);
        return false;
    };
    visit_run_netns(collect);
    visit_process_netns(collect);
    visit_thread_netns(collect);
    std::sort(inodes.begin(), inodes.end());
    inodes.erase(std::unique(inodes.begin(), inodes.end()), inodes.end());
    return inodes;
}

// A cached fd pins its namespace, so its inode cannot have been reused by another one:
// the cache is trusted, and checked before the hint, which would cost system calls.
int NetnsConfigReader::find_netns(std::uint32_t inode, std::uint32_t pid_hint) {
    if (auto cached = fds_.find(inode); cached != fds_.end()) return cached->second;
    int fd = -1;
    auto opened = [&](const std::string &path) {
        fd = open_if_netns(path, inode);
        return fd >= 0;
    };
    bool found = (pid_hint != 0 && opened("/proc/" + std::to_string(pid_hint) + "/ns/net")) ||
                 visit_run_netns(opened) || visit_process_netns(opened) ||
                 // A namespace may have only non-leader threads in it (like a worker that
                 // called setns).
                 visit_thread_netns(opened) ||
                 // Last and dearest: a namespace that only an open fd keeps alive (no task in it).
                 visit_open_fds(opened);
    return found ? remember(inode, fd) : -1;
}

// Every namespace file lives on the one nsfs; matching its device too means a stray
// regular file (say an unmounted /run/netns entry) cannot match by inode alone.
std::optional<std::uint32_t> NetnsConfigReader::netns_inode_at(const std::string &path) const {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0 || st.st_dev != nsfs_device_) return std::nullopt;
    return static_cast<std::uint32_t>(st.st_ino);
}

// stat() first because it is cheap for the many paths that do not match; the inode is
// checked again on the opened fd since the task may have moved or exited in between.
int NetnsConfigReader::open_if_netns(const std::string &path, std::uint32_t inode) const {
    if (netns_inode_at(path) != inode) return -1;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st {};
    if (fstat(fd, &st) == 0 && st.st_ino == inode && st.st_dev == nsfs_device_) return fd;
    close(fd);
    return -1;
}

int NetnsConfigReader::remember(std::uint32_t inode, int fd) {
    while (fds_.size() >= max_cached_) forget_oldest();
    fds_.emplace(inode, fd);
    oldest_first_.push_back(inode);
    return fd;
}

void NetnsConfigReader::keep_only(const std::vector<std::uint32_t> &inodes) {
    std::unordered_set<std::uint32_t> keep(inodes.begin(), inodes.end());
    for (auto it = fds_.begin(); it != fds_.end();) {
        if (keep.contains(it->first)) {
            ++it;
            continue;
        }
        close(it->second);
        std::erase(oldest_first_, it->first);
        it = fds_.erase(it);
    }
}

void NetnsConfigReader::forget_oldest() {
    std::uint32_t inode = oldest_first_.front();
    oldest_first_.pop_front();
    close(fds_.at(inode));
    fds_.erase(inode);
}

Result<NetnsPortConfig> NetnsConfigReader::read_inside(int netns_fd) {
    Result<NetnsPortConfig> config = Failure{"the netns thread read nothing"};
    Status ran = run_in_netns(netns_fd, [&] { config = read_own_netns(); });
    if (!ran) return Failure{ran.error()};
    return config;
}

}  // namespace portwatch
