// SPDX-License-Identifier: Apache-2.0
#include "events/containers.h"

#include <algorithm>
#include <vector>

namespace portwatch {
namespace {

constexpr std::size_t kContainerIdLength = 64;
constexpr std::size_t kShortIdLength = 12;

bool is_container_id(std::string_view text) {
    return text.size() == kContainerIdLength && std::all_of(text.begin(), text.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

struct ScopePrefix {
    std::string_view prefix;
    std::string_view runtime;
};

constexpr ScopePrefix kScopePrefixes[] = {{"docker-", "docker"},
                                          {"cri-containerd-", "containerd"},
                                          {"crio-", "cri-o"},
                                          {"libpod-", "podman"}};

// <prefix><id>.scope (systemd driver) or <prefix><id> (cgroupfs). The id must follow the prefix
// directly, which is what leaves crio-conmon-<id> and libpod-conmon-<id> out.
std::optional<Container> from_prefixed_name(std::string_view name) {
    if (name.ends_with(".scope")) name.remove_suffix(std::string_view(".scope").size());
    for (const auto &[prefix, runtime] : kScopePrefixes) {
        if (!name.starts_with(prefix)) continue;
        std::string_view id = name.substr(prefix.size());
        if (is_container_id(id)) return Container{std::string(runtime), std::string(id)};
    }
    return std::nullopt;
}

// The cgroupfs driver names a container's cgroup by its bare id: known by where it sits.
std::optional<Container> from_bare_id(std::string_view name, std::string_view parent,
                                      bool under_kubepods) {
    if (!is_container_id(name)) return std::nullopt;
    if (parent == "docker") return Container{"docker", std::string(name)};
    if (under_kubepods && parent.starts_with("pod"))
        return Container{"kubepods", std::string(name)};
    return std::nullopt;
}

std::vector<std::string_view> components_of(std::string_view path) {
    std::vector<std::string_view> components;
    while (!path.empty()) {
        std::size_t slash = path.find('/');
        std::string_view component = path.substr(0, slash);
        if (!component.empty()) components.push_back(component);
        path.remove_prefix(slash == std::string_view::npos ? path.size() : slash + 1);
    }
    return components;
}

}  // namespace

std::optional<Container> container_of(std::string_view cgroup_path) {
    std::optional<Container> innermost;
    std::string_view parent;
    bool under_kubepods = false;
    for (std::string_view name : components_of(cgroup_path)) {
        auto found = from_prefixed_name(name);
        if (!found) found = from_bare_id(name, parent, under_kubepods);
        if (found) innermost = std::move(found);
        under_kubepods = under_kubepods || name == "kubepods";
        parent = name;
    }
    return innermost;
}

std::string_view short_container_id(std::string_view id) {
    return id.substr(0, kShortIdLength);
}

std::optional<std::string> cgroup2_path_in(std::string_view proc_pid_cgroup) {
    constexpr std::string_view kUnified = "0::";
    while (!proc_pid_cgroup.empty()) {
        std::size_t end = proc_pid_cgroup.find('\n');
        std::string_view line = proc_pid_cgroup.substr(0, end);
        if (line.starts_with(kUnified) && line.size() > kUnified.size())
            return std::string(line.substr(kUnified.size()));
        proc_pid_cgroup.remove_prefix(end == std::string_view::npos ? line.size() : end + 1);
    }
    return std::nullopt;
}

std::optional<std::string> path_under_mount(std::string_view absolute, std::string_view mount) {
    while (mount.size() > 1 && mount.ends_with('/')) mount.remove_suffix(1);
    if (mount == "/") mount = "";
    if (!absolute.starts_with(mount)) return std::nullopt;
    std::string_view rest = absolute.substr(mount.size());
    if (rest.empty()) return "/";
    if (!rest.starts_with('/')) return std::nullopt;
    return std::string(rest);
}

}  // namespace portwatch
