// SPDX-License-Identifier: Apache-2.0
// The only code that owns BPF objects: loads the programs (CO-RE skeleton),
// attaches them as links (gone with the process, even on SIGKILL), reads the
// ring buffer and the counters, and hands decoded events to a callback.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "events/event.h"
#include "capture/capture_config.h"
#include "capture/kernel_features.h"
#include "agent/stats.h"
#include "base/result.h"
#include "base/unique_fd.h"

struct portwatch_bpf;
struct ring_buffer;
struct bpf_link;
struct bpf_program;
struct bpf_map;

namespace portwatch {

class CaptureError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

class Capture {
  public:
    // The event is as decoded: the handler enriches it (enrich/enricher.h) before it passes
    // it on.
    using EventHandler = std::function<void(Event &)>;

    explicit Capture(const CaptureConfig &config);  // throws CaptureError, one clear sentence
    ~Capture();
    Capture(const Capture &) = delete;
    Capture &operator=(const Capture &) = delete;

    // Waits up to timeout_ms, then hands every pending record to `handler`. Returns the
    // count of records (0 when a signal cut the wait short), or a failure when the ring
    // buffer cannot be waited on (what could be read without waiting was read). What
    // `handler` throws stops the poll and is rethrown; the record it was given is consumed.
    Result<int> poll(int timeout_ms, const EventHandler &handler);

    // The kernel's counters, summed over CPUs. When the map cannot be read, the last reading
    // that worked (counters only grow) and the reason in `error`.
    struct CounterReading {
        CounterTotals totals;
        std::string error;
    };
    CounterReading counters() const;
    // Deletes the kernel's entries of sockets that are gone though no release said so (the
    // tables no longer list them): left, they would fill the table until ports go untracked.
    // Returns how many there were.
    std::size_t forget_held_ports(const std::vector<std::uint64_t> &cookies);
    // --children: the processes followed now (the --pid ones and their descendants alive).
    std::vector<std::uint32_t> followed_pids() const;
    std::uint64_t decoded() const { return decoded_; }
    std::uint64_t decode_errors() const { return decode_errors_; }
    const std::vector<std::string> &hooks() const { return hooks_; }
    // The hooks whose link another process detached (`bpftool link detach`: only cgroup
    // links can be, see link_detach() in kernel/bpf/syscall.c), or whose state is unreadable.
    std::vector<std::string> detached_hooks() const;
    // False when the cgroup2 mount is not the root cgroup (a cgroup namespace of its own, or a
    // sub-tree mounted): the cgroup programs then see only the processes below it.
    bool sees_every_cgroup() const { return sees_every_cgroup_; }
    // What the probe found: the optional features the programs do without.
    const KernelVerdict &kernel_verdict() const { return verdict_; }
    // The hook set in use (fexit or tracepoint) and why.
    HookSet hook_set() const { return hooks_decision_.set; }
    const std::string &hook_set_reason() const { return hooks_decision_.reason; }

  private:
    static int on_record(void *self, void *data, std::size_t size);
    std::vector<std::pair<bpf_program *, const char *>> programs_of(HookSet set) const;
    std::vector<std::pair<bpf_program *, const char *>> io_uring_programs() const;
    void choose_programs();
    void configure(const CaptureConfig &config);
    void take_tcp_connects_at_the_syscall();
    void configure_cgroup_filter(const Filters &filters);
    void configure_uid_filter(const Filters &filters);
    void configure_container_filter(const Filters &filters);
    void configure_children(const Filters &filters);
    void seed_followed(const Filters &filters);
    void configure_port_filter(const Filters &filters);
    void fill_cgroup_filter(const Filters &filters);
    void add_cgroup_to_filter(bpf_map *map, const std::string &directory, std::uint32_t key);
    void load();
    void attach_all();
    void calibrate_user_regs();
    void attach(bpf_link *link, const std::string &name);

    // Each libbpf object has one owner; the members go in reverse order of declaration:
    // the ring buffer, the links, the cgroup, then the programs and maps.
    struct SkeletonDeleter {
        void operator()(portwatch_bpf *skeleton) const;
    };
    struct LinkDeleter {
        void operator()(bpf_link *link) const;
    };
    struct RingDeleter {
        void operator()(ring_buffer *ring) const;
    };

    KernelVerdict verdict_;
    HookDecision hooks_decision_;
    std::unique_ptr<portwatch_bpf, SkeletonDeleter> skel_;
    UniqueFd cgroup_fd_;
    std::vector<std::unique_ptr<bpf_link, LinkDeleter>> links_;
    std::unique_ptr<ring_buffer, RingDeleter> ring_;
    bool sees_every_cgroup_ = true;
    std::vector<std::string> hooks_;
    const EventHandler *handler_ = nullptr;
    std::exception_ptr handler_exception_;  // thrown by handler_, rethrown by poll()
    std::uint64_t decoded_ = 0;
    std::uint64_t decode_errors_ = 0;
    mutable CounterTotals last_counters_;
};

}  // namespace portwatch
