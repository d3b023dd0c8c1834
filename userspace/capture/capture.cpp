// SPDX-License-Identifier: Apache-2.0
#include "capture/capture.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <fstream>

#include "capture/feature_probe.h"
#include "events/decoder.h"
#include "base/unique_fd.h"
#include "system/mounts.h"
#include "portwatch.skel.h"
#include "system/host_info.h"

namespace portwatch {
namespace {

// Big enough for the log level 1 verifier log of the largest program: a truncated log
// fails the load with ENOSPC on kernels before 6.4, hiding the real reason.
constexpr std::size_t kVerifierLogBytes = 16 << 20;

// libbpf reports through a process-wide callback; keep its last warnings so a
// failure can say why in one line instead of dumping the verifier log.
std::string &libbpf_last_warning() {
    static std::string last;
    return last;
}

int capture_libbpf_output(enum libbpf_print_level level, const char *format, va_list args) {
    if (level == LIBBPF_DEBUG) return 0;
    char line[512];
    int n = std::vsnprintf(line, sizeof(line), format, args);
    std::string text(line, n > 0 ? std::min<std::size_t>(n, sizeof(line) - 1) : 0);
    while (!text.empty() && text.back() == '\n') text.pop_back();
    if (!text.empty()) libbpf_last_warning() = text;
    return 0;
}

std::string explain(const std::string &what, int error) {
    error = std::abs(error);
    std::string message = what + ": " + std::strerror(error);
    if (error == EPERM || error == EACCES)
        message +=
            " (portwatch needs root, or CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN and CAP_NET_ADMIN)";
    else if (!libbpf_last_warning().empty())
        message += " (libbpf: " + libbpf_last_warning() + ")";
    return message;
}

// The root cgroup's id (its kernfs inode), as bpf_get_current_cgroup_id() reports it.
constexpr ino_t kRootCgroupId = 1;

std::string cgroup2_root() {
    std::ifstream mounts("/proc/mounts");
    auto root = find_cgroup2_mount(mounts);
    if (!root)
        throw CaptureError(
            "cgroup v2 is not mounted (no cgroup2 line in /proc/mounts); portwatch needs it to see "
            "UDP releases: mount -t cgroup2 none /sys/fs/cgroup/unified");
    return *root;
}

void copy_comm(const std::string &comm, volatile char (&out)[PW_COMM_LEN]) {
    for (std::size_t i = 0; i < PW_COMM_LEN; i++) out[i] = i < comm.size() ? comm[i] : '\0';
}

// Probes the kernel and refuses, in one sentence, one that lacks what the programs need.
KernelVerdict judge_this_kernel() {
    ProbeResult probe = probe_kernel_features();
    if (probe.error)
        throw CaptureError(explain(
            "cannot probe the kernel's BPF features (" + probe.failed_probe + ")", probe.error));
    KernelVerdict verdict = judge_kernel(probe.features, kernel_release());
    if (!verdict.can_run) throw CaptureError(verdict.refusal);
    return verdict;
}

}  // namespace

Capture::Capture(const CaptureConfig &config) {
    libbpf_set_print(capture_libbpf_output);
    verdict_ = judge_this_kernel();
    Result<HookDecision> hooks = choose_hooks(
        config.hooks, config.hooks == HookChoice::tracepoint ? Status() : fexit_attaches());
    if (!hooks) throw CaptureError(hooks.error());
    hooks_decision_ = std::move(hooks).value();
    skel_.reset(portwatch_bpf__open());
    if (!skel_) throw CaptureError(explain("cannot open the BPF object", errno));
    configure(config);
    load();
    fill_cgroup_filter(config.filters);
    seed_followed(config.filters);
    calibrate_user_regs();
    attach_all();
    ring_.reset(ring_buffer__new(bpf_map__fd(skel_->maps.events), on_record, this, nullptr));
    if (!ring_) throw CaptureError(explain("cannot open the ring buffer", errno));
}

Capture::~Capture() = default;

void Capture::SkeletonDeleter::operator()(portwatch_bpf *skeleton) const {
    portwatch_bpf__destroy(skeleton);
}

void Capture::LinkDeleter::operator()(bpf_link *link) const {
    bpf_link__destroy(link);
}

void Capture::RingDeleter::operator()(ring_buffer *ring) const {
    ring_buffer__free(ring);
}

// Each hook set's own programs, with the hook each attaches to.
std::vector<std::pair<bpf_program *, const char *>> Capture::programs_of(HookSet set) const {
    auto *p = &skel_->progs;
    if (set == HookSet::fexit)
        return {{p->pw_inet_hash_connect, "fexit/inet_hash_connect"},
                {p->pw_inet6_hash_connect, "fexit/inet6_hash_connect"},
                {p->pw_inet_csk_get_port, "fexit/inet_csk_get_port"},
                {p->pw_udp_lib_get_port, "fexit/udp_lib_get_port"},
                {p->pw_inet_dgram_connect, "fexit/inet_dgram_connect"},
                {p->pw_udp_disconnect, "fexit/udp_disconnect"}};
    return {{p->pw_sys_enter, "tp_btf/sys_enter"}, {p->pw_sys_exit, "tp_btf/sys_exit"}};
}

// The io_uring programs that fit this kernel's tracepoints: none before 5.19.
std::vector<std::pair<bpf_program *, const char *>> Capture::io_uring_programs() const {
    auto *p = &skel_->progs;
    std::pair<bpf_program *, const char *> complete{p->pw_io_uring_complete,
                                                    "tp_btf/io_uring_complete"};
    switch (io_uring_submit_tracepoint()) {
        case IoUringSubmit::submit_req:
            return {{p->pw_io_uring_submit_req, "tp_btf/io_uring_submit_req"}, complete};
        case IoUringSubmit::submit_sqe:
            return {{p->pw_io_uring_submit_sqe, "tp_btf/io_uring_submit_sqe"}, complete};
        case IoUringSubmit::submit_sqe_after_ctx:
            return {{p->pw_io_uring_submit_sqe_after_ctx, "tp_btf/io_uring_submit_sqe"}, complete};
        case IoUringSubmit::none:
            break;
    }
    return {};
}

// Only the chosen set's programs load; the programs both sets share always do, and the
// io_uring programs where the kernel has their tracepoints.
void Capture::choose_programs() {
    for (auto [program, hook] : io_uring_programs()) bpf_program__set_autoload(program, true);
    for (HookSet set : {HookSet::tracepoint, HookSet::fexit})
        for (auto [program, hook] : programs_of(set))
            bpf_program__set_autoload(program, set == hook_set());
    bool fexit = hook_set() == HookSet::fexit;
    bpf_program__set_autoload(skel_->progs.pw_calibrate_user_regs, fexit && !has_task_pt_regs());
    skel_->rodata->tcp_connect_path = fexit ? PW_TCP_CONNECT_BY_FEXIT
                                      : verdict_.lacks(Feature::sockops_task)
                                          ? PW_TCP_CONNECT_BY_SYSCALL
                                          : PW_TCP_CONNECT_BY_SOCKOPS;
}

// sockops programs may not call bpf_current_task_under_cgroup() nor bpf_get_current_uid_gid()
// (5.10 to 6.12 at least): with the cgroup or the uid filter, TCP connects go through the
// syscall path.
void Capture::take_tcp_connects_at_the_syscall() {
    if (skel_->rodata->tcp_connect_path == PW_TCP_CONNECT_BY_SOCKOPS)
        skel_->rodata->tcp_connect_path = PW_TCP_CONNECT_BY_SYSCALL;
}

void Capture::configure_cgroup_filter(const Filters &filters) {
    if (filters.cgroups.empty()) return;
    std::size_t most = bpf_map__max_entries(skel_->maps.filter_cgroup);
    if (filters.cgroups.size() > most)
        throw CaptureError("at most " + std::to_string(most) + " cgroups filter at once");
    skel_->rodata->filter_cgroup_count = filters.cgroups.size();
    take_tcp_connects_at_the_syscall();
}

void Capture::configure_container_filter(const Filters &filters) {
    if (filters.container_cgroups.empty()) return;
    std::size_t most = bpf_map__max_entries(skel_->maps.filter_any_cgroup);
    if (filters.container_cgroups.size() > most)
        throw CaptureError("at most " + std::to_string(most) + " container cgroups at once, not " +
                           std::to_string(filters.container_cgroups.size()));
    skel_->rodata->filter_any_cgroup_count = filters.container_cgroups.size();
    take_tcp_connects_at_the_syscall();
}

// --children: the fork and exit programs load only then, and fill followed_tgids.
void Capture::configure_children(const Filters &filters) {
    bool follow = filters.follow_children && !filters.pids.empty();
    skel_->rodata->filter_follow_children = follow;
    bpf_program__set_autoload(skel_->progs.pw_sched_process_fork, follow);
    bpf_program__set_autoload(skel_->progs.pw_sched_process_exit, follow);
}

// After load, before attach: the --pid processes are followed from the start.
void Capture::seed_followed(const Filters &filters) {
    if (!skel_->rodata->filter_follow_children) return;
    std::uint8_t followed = 1;
    for (std::uint32_t pid : filters.pids)
        if (bpf_map_update_elem(bpf_map__fd(skel_->maps.followed_tgids), &pid, &followed,
                                BPF_ANY) != 0)
            throw CaptureError(explain("cannot follow process " + std::to_string(pid), errno));
}

std::vector<std::uint32_t> Capture::followed_pids() const {
    std::vector<std::uint32_t> pids;
    int map = bpf_map__fd(skel_->maps.followed_tgids);
    std::uint32_t key = 0, next = 0;
    for (const std::uint32_t *previous = nullptr; bpf_map_get_next_key(map, previous, &next) == 0;
         previous = &key) {
        key = next;
        pids.push_back(key);
    }
    return pids;
}

void Capture::configure_uid_filter(const Filters &filters) {
    if (filters.uids.empty()) return;
    auto *ro = skel_->rodata;
    if (filters.uids.size() > std::size(ro->filter_uids))
        throw CaptureError("at most " + std::to_string(std::size(ro->filter_uids)) +
                           " --uid at once");
    std::copy(filters.uids.begin(), filters.uids.end(), ro->filter_uids);
    ro->filter_uid_count = filters.uids.size();
    take_tcp_connects_at_the_syscall();
}

void Capture::configure_port_filter(const Filters &filters) {
    auto *ro = skel_->rodata;
    if (filters.ports.size() > std::size(ro->filter_port_low))
        throw CaptureError("at most " + std::to_string(std::size(ro->filter_port_low)) +
                           " --port at once");
    for (std::size_t i = 0; i < filters.ports.size(); ++i) {
        ro->filter_port_low[i] = filters.ports[i].low;
        ro->filter_port_high[i] = filters.ports[i].high;
    }
    ro->filter_port_count = filters.ports.size();
}

// After load, before attach: the cgroups' directory fds into the filter's map.
void Capture::fill_cgroup_filter(const Filters &filters) {
    if (filters.cgroups.empty() && filters.container_cgroups.empty()) return;
    std::ifstream proc_mounts("/proc/mounts");
    std::optional<std::string> mount = find_cgroup2_mount(proc_mounts);
    if (!mount) throw CaptureError("no cgroup v2 file system is mounted (cgroup2 in /proc/mounts)");
    for (std::uint32_t key = 0; key < filters.cgroups.size(); ++key)
        add_cgroup_to_filter(skel_->maps.filter_cgroup, *mount + filters.cgroups[key], key);
    for (std::uint32_t key = 0; key < filters.container_cgroups.size(); ++key)
        add_cgroup_to_filter(skel_->maps.filter_any_cgroup, *mount + filters.container_cgroups[key],
                             key);
}

void Capture::add_cgroup_to_filter(bpf_map *map, const std::string &directory, std::uint32_t key) {
    UniqueFd cgroup(open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (cgroup.get() < 0) throw CaptureError(explain("cannot open the cgroup " + directory, errno));
    int fd = cgroup.get();
    if (bpf_map_update_elem(bpf_map__fd(map), &key, &fd, BPF_ANY) != 0)
        throw CaptureError(explain("cannot set the cgroup filter to " + directory, errno));
}

void Capture::configure(const CaptureConfig &config) {
    choose_programs();
    auto *ro = skel_->rodata;
    ro->nr_bind = SYS_bind;
    ro->nr_listen = SYS_listen;
    ro->nr_connect = SYS_connect;
    ro->nr_sendto = SYS_sendto;
    ro->nr_sendmsg = SYS_sendmsg;
    ro->nr_sendmmsg = SYS_sendmmsg;
    const Filters &f = config.filters;
    if (f.pids.size() > std::size(ro->filter_pids))
        throw CaptureError("at most " + std::to_string(std::size(ro->filter_pids)) +
                           " --pid at once");
    std::copy(f.pids.begin(), f.pids.end(), ro->filter_pids);
    ro->filter_pid_count = f.pids.size();
    ro->filter_netns = f.netns.value_or(0);
    if (f.proto) ro->filter_proto = *f.proto == Proto::tcp ? IPPROTO_TCP : IPPROTO_UDP;
    if (f.family) ro->filter_family = *f.family == Family::ipv4 ? AF_INET : AF_INET6;
    if (f.comm) {
        ro->filter_comm_enabled = 1;
        copy_comm(*f.comm, ro->filter_comm);
    }
    configure_cgroup_filter(f);
    configure_uid_filter(f);
    configure_container_filter(f);
    configure_children(f);
    configure_port_filter(f);
    std::uint64_t ring_bytes = std::uint64_t(config.ringbuf_mb) << 20;
    // The reader polls every 100 ms and is woken besides once half the ring is full. Past that
    // mark every record the programs submit forces a wake-up, and queues the ring's irq_work
    // again once the last has run (bpf_ringbuf_commit()): an interrupt on the producing CPU
    // until the reader has drained below the mark. At an eighth, a connect storm of ~48k
    // connections a second crossed it between polls and took ~140 of them a second, ~30 ns per
    // connection in the programs (bpf_stats); at half, none.
    ro->wakeup_bytes = ring_bytes / 2;
    if (int err = bpf_map__set_max_entries(skel_->maps.events, ring_bytes))
        throw CaptureError(explain(
            "cannot size the ring buffer to " + std::to_string(config.ringbuf_mb) + " MiB", err));
    if (int err = bpf_map__set_max_entries(skel_->maps.held_ports, config.max_tracked_sockets))
        throw CaptureError(explain("cannot size the socket table to " +
                                       std::to_string(config.max_tracked_sockets) + " entries",
                                   err));
    std::uint32_t calls = calls_in_flight(config);
    for (bpf_map *map :
         {skel_->maps.pending, skel_->maps.tcp_calls_in_flight, skel_->maps.io_uring_calls})
        if (int err = bpf_map__set_max_entries(map, calls))
            throw CaptureError(explain(std::string("cannot size the table ") + bpf_map__name(map) +
                                           " to " + std::to_string(calls) + " entries",
                                       err));
}

// libbpf loads without a log and, when the kernel refuses a program, loads it again with
// the verifier's log into that program's buffer: its last line is the reason. (The pages
// of a buffer no verifier writes are never touched.)
void Capture::load() {
    struct ProgramLog {
        bpf_program *program;
        std::unique_ptr<char[]> text;
    };
    std::vector<ProgramLog> logs;
    bpf_program *program = nullptr;
    bpf_object__for_each_program(program, skel_->obj) {
        ProgramLog &log = logs.emplace_back(
            ProgramLog{program, std::make_unique_for_overwrite<char[]>(kVerifierLogBytes)});
        log.text[0] = '\0';
        if (int err = bpf_program__set_log_buf(program, log.text.get(), kVerifierLogBytes))
            throw CaptureError(explain("cannot give libbpf a verifier log buffer", err));
    }
    int err = portwatch_bpf__load(skel_.get());
    for (ProgramLog &log : logs) bpf_program__set_log_buf(log.program, nullptr, 0);
    if (!err) return;
    for (ProgramLog &log : logs) {
        std::string reason =
            verifier_reason({log.text.get(), strnlen(log.text.get(), kVerifierLogBytes)});
        if (!reason.empty())
            throw CaptureError(std::string("the kernel's verifier rejects BPF program ") +
                               bpf_program__name(log.program) + ": " + reason + " (kernel " +
                               kernel_release() + ")");
    }
    throw CaptureError(explain("cannot load the BPF programs", err));
}

void Capture::attach(bpf_link *link, const std::string &name) {
    if (!link) throw CaptureError(explain("cannot attach " + name, errno));
    links_.emplace_back(link);
    hooks_.push_back(name);
}

// held_ports_keys (records.bpf.h) keeps the deleted keys' slots one too high: each costs
// the programs a lookup that misses, never one skipped.
std::size_t Capture::forget_held_ports(const std::vector<std::uint64_t> &cookies) {
    int held_ports = bpf_map__fd(skel_->maps.held_ports);
    std::size_t deleted = 0;
    for (std::uint64_t cookie : cookies) deleted += bpf_map_delete_elem(held_ports, &cookie) == 0;
    return deleted;
}

std::vector<std::string> Capture::detached_hooks() const {
    std::vector<std::string> detached;
    for (std::size_t i = 0; i < links_.size(); ++i) {
        bpf_link_info info{};
        __u32 length = sizeof(info);
        if (bpf_obj_get_info_by_fd(bpf_link__fd(links_[i].get()), &info, &length) != 0) {
            detached.push_back(hooks_[i] + " (" + std::strerror(errno) + ")");
            continue;
        }
        // bpf_cgroup_link_detach() leaves the link open with no cgroup.
        if (info.type == BPF_LINK_TYPE_CGROUP && info.cgroup.cgroup_id == 0)
            detached.push_back(hooks_[i]);
    }
    return detached;
}

// Before bpf_task_pt_regs() (5.15) the fexit set finds a caller's registers at an offset from
// its kernel stack that depends on THREAD_SIZE (KASAN doubles it): measured here on a call
// with known arguments, or the fexit set is refused.
void Capture::calibrate_user_regs() {
    bpf_program *program = skel_->progs.pw_calibrate_user_regs;
    if (!bpf_program__autoload(program)) return;
    skel_->bss->calibration_tid = std::uint32_t(gettid());
    {
        std::unique_ptr<bpf_link, LinkDeleter> link(bpf_program__attach(program));
        if (!link)
            throw CaptureError(explain("cannot attach tp_btf/sys_enter to calibrate", errno));
        syscall(SYS_bind, -1, PW_CALIBRATION_ADDR, PW_CALIBRATION_LEN);
    }
    if (!skel_->bss->user_regs_offset)
        throw CaptureError(
            "the fexit set cannot find a caller's registers on this kernel (no bpf_task_pt_regs(), "
            "and a bind() with known arguments was not seen at sys_enter): use --hooks "
            "tracepoint");
}

void Capture::attach_all() {
    auto *p = &skel_->progs;
    for (auto [program, hook] : programs_of(hook_set())) attach(bpf_program__attach(program), hook);
    for (auto [program, hook] : io_uring_programs()) attach(bpf_program__attach(program), hook);
    attach(bpf_program__attach(p->pw_tcp_destroy), "tp_btf/tcp_destroy_sock");
    if (skel_->rodata->filter_follow_children) {
        attach(bpf_program__attach(p->pw_sched_process_fork), "tp_btf/sched_process_fork");
        attach(bpf_program__attach(p->pw_sched_process_exit), "tp_btf/sched_process_exit");
    }
    std::string root = cgroup2_root();
    cgroup_fd_ = UniqueFd(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    int cgroup = cgroup_fd_.get();
    if (cgroup < 0) throw CaptureError(explain("cannot open cgroup " + root, errno));
    struct stat root_stat {};
    sees_every_cgroup_ = fstat(cgroup, &root_stat) == 0 && root_stat.st_ino == kRootCgroupId;
    attach(bpf_program__attach_cgroup(p->pw_sock_create, cgroup), "cgroup/sock_create@" + root);
    attach(bpf_program__attach_cgroup(p->pw_sock_release, cgroup), "cgroup/sock_release@" + root);
    attach(bpf_program__attach_cgroup(p->pw_sockops, cgroup), "sockops@" + root);
}

int Capture::on_record(void *self, void *data, std::size_t size) {
    auto *capture = static_cast<Capture *>(self);
    Decoded decoded = decode_record({static_cast<const std::uint8_t *>(data), size});
    if (!decoded.event) {
        capture->decode_errors_++;
        return 0;
    }
    capture->decoded_++;
    // No exception may unwind through libbpf's C frames: it is kept for poll() to rethrow,
    // and the error ends ring_buffer__poll() (which has moved past this record already).
    try {
        (*capture->handler_)(*decoded.event);
    } catch (...) {
        capture->handler_exception_ = std::current_exception();
        return -ECANCELED;
    }
    return 0;
}

Result<int> Capture::poll(int timeout_ms, const EventHandler &handler) {
    handler_ = &handler;
    // epoll only wakes us once enough has piled up (wakeup_bytes); consume the
    // rest ourselves when the timeout passes.
    int polled = ring_buffer__poll(ring_.get(), timeout_ms);
    int consumed = polled == -EINTR || handler_exception_ ? 0 : ring_buffer__consume(ring_.get());
    handler_ = nullptr;
    if (handler_exception_) std::rethrow_exception(std::exchange(handler_exception_, nullptr));
    if (polled == -EINTR) return 0;
    int error = polled < 0 ? polled : consumed;
    if (error < 0)
        return Failure{"cannot wait on the ring buffer: " + std::string(std::strerror(-error))};
    return polled + consumed;
}

Capture::CounterReading Capture::counters() const {
    int cpus = libbpf_num_possible_cpus();
    if (cpus <= 0)
        return {last_counters_, "cannot read the event counters: cannot count the possible CPUs: " +
                                    std::string(std::strerror(-cpus))};
    std::vector<pw_counters> per_cpu(cpus);
    std::uint32_t zero = 0;
    if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.counters), &zero, per_cpu.data()) != 0)
        return {last_counters_,
                "cannot read the event counters: " + std::string(std::strerror(errno))};
    last_counters_ = CounterTotals::sum(per_cpu);
    return {last_counters_, ""};
}

}  // namespace portwatch
