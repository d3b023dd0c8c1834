// SPDX-License-Identifier: Apache-2.0
#include "capture/feature_probe.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iterator>
#include <memory>

namespace portwatch {
namespace {

struct BtfDeleter {
    void operator()(btf *types) const { btf__free(types); }
};
using BtfHandle = std::unique_ptr<btf, BtfDeleter>;

bool has_enumerator(const btf *types, const char *enum_name, const char *value) {
    int id = btf__find_by_name_kind(types, enum_name, BTF_KIND_ENUM);
    if (id < 0) return false;
    const btf_type *type = btf__type_by_id(types, id);
    const struct btf_enum *values = btf_enum(type);
    for (int i = 0; i < btf_vlen(type); i++)
        if (std::strcmp(btf__name_by_offset(types, values[i].name_off), value) == 0) return true;
    return false;
}

// tp_btf/<name> attaches to the raw tracepoint whose BTF typedef is btf_trace_<name>.
bool has_tracepoint(const btf *types, const char *name) {
    return btf__find_by_name_kind(types, (std::string("btf_trace_") + name).c_str(),
                                  BTF_KIND_TYPEDEF) >= 0;
}

// The type of argument `index` of tracepoint `name` (0 is the first after the tracepoint's
// own `void *__data`), with typedefs and modifiers skipped; nullptr if there is none.
const btf_type *tracepoint_arg(const btf *types, const char *name, unsigned index) {
    int id =
        btf__find_by_name_kind(types, (std::string("btf_trace_") + name).c_str(), BTF_KIND_TYPEDEF);
    if (id < 0) return nullptr;
    const btf_type *pointer = btf__type_by_id(types, btf__resolve_type(types, id));
    if (!pointer || !btf_is_ptr(pointer)) return nullptr;
    const btf_type *proto = btf__type_by_id(types, pointer->type);
    if (!proto || !btf_is_func_proto(proto) || btf_vlen(proto) <= index + 1) return nullptr;
    int arg = btf__resolve_type(types, btf_params(proto)[index + 1].type);
    return arg < 0 ? nullptr : btf__type_by_id(types, arg);
}

bool arg_is_pointer(const btf_type *arg) {
    return arg && btf_is_ptr(arg);
}

bool arg_points_to_struct(const btf *types, const btf_type *arg, const char *struct_name) {
    if (!arg_is_pointer(arg)) return false;
    const btf_type *target = btf__type_by_id(types, arg->type);
    return target && btf_is_struct(target) &&
           std::strcmp(btf__name_by_offset(types, target->name_off), struct_name) == 0;
}

IoUringSubmit io_uring_submit_in(const btf *types) {
    if (arg_is_pointer(tracepoint_arg(types, "io_uring_submit_req", 0)))
        return IoUringSubmit::submit_req;
    if (arg_points_to_struct(types, tracepoint_arg(types, "io_uring_submit_sqe", 0), "io_kiocb"))
        return IoUringSubmit::submit_sqe;
    // 5.15 also passes (ctx, req), but its io_uring_complete has no request
    if (arg_is_pointer(tracepoint_arg(types, "io_uring_submit_sqe", 1)))
        return IoUringSubmit::submit_sqe_after_ctx;
    return IoUringSubmit::none;
}

// Both ends of an io_uring op carry the request (5.19): the submit tracepoint in one of its
// three forms, and io_uring_complete(ctx, req, ...).
bool has_io_uring_requests(const btf *types) {
    return io_uring_submit_in(types) != IoUringSubmit::none &&
           arg_is_pointer(tracepoint_arg(types, "io_uring_complete", 1));
}

// 1: supported, 0: not; anything else is the probe failing (no privileges).
bool probed(int answer, ProbeResult &result, const char *what) {
    if (answer < 0 && !result.error) {
        result.error = -answer;
        result.failed_probe = what;
    }
    return answer == 1;
}

// Loads "r1 = fp - 16; r2 = 16; call helper; r0 = 1; exit": 1 if the kernel takes it,
// 0 if the verifier refuses. libbpf_probe_bpf_helper() counts a refusal other than
// "unknown func" as support, and 6.12 refuses sockops' bpf_get_current_uid_gid() with
// "program of this type cannot use helper".
int trial_load_helper_call(bpf_prog_type type, bpf_func_id helper) {
    const bpf_insn program[] = {
        {BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_1, BPF_REG_10, 0, 0},
        {BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_1, 0, 0, -16},
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_2, 0, 0, 16},
        {BPF_JMP | BPF_CALL, 0, 0, 0, helper},
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 1},
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
    };
    int fd = bpf_prog_load(type, nullptr, "GPL", program, std::size(program), nullptr);
    if (fd >= 0) {
        close(fd);
        return 1;
    }
    return errno == EPERM ? -EPERM : 0;
}

}  // namespace

ProbeResult probe_kernel_features() {
    ProbeResult result;
    auto add = [&](Feature feature, bool present) {
        if (present) result.features.present.push_back(feature);
    };
    BtfHandle types(access("/sys/kernel/btf/vmlinux", R_OK) == 0 ? btf__load_vmlinux_btf()
                                                                 : nullptr);
    if (types) {
        add(Feature::btf, true);
        add(Feature::tp_btf, has_tracepoint(types.get(), "sys_enter"));
        add(Feature::tcp_destroy_sock, has_tracepoint(types.get(), "tcp_destroy_sock"));
        add(Feature::cgroup_sock_release,
            has_enumerator(types.get(), "bpf_attach_type", "BPF_CGROUP_INET_SOCK_RELEASE"));
        add(Feature::io_uring_requests, has_io_uring_requests(types.get()));
        // The programs test the same enumerator (bpf_core_enum_value_exists).
        add(Feature::current_task_btf,
            has_enumerator(types.get(), "bpf_func_id", "BPF_FUNC_get_current_task_btf"));
    }
    add(Feature::ringbuf,
        probed(libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, nullptr), result, "map types"));
    add(Feature::sockops,
        probed(libbpf_probe_bpf_helper(BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_skc_to_tcp_sock, nullptr),
               result, "sockops helpers"));
    add(Feature::socket_cookie, probed(libbpf_probe_bpf_helper(BPF_PROG_TYPE_CGROUP_SOCK,
                                                               BPF_FUNC_get_socket_cookie, nullptr),
                                       result, "cgroup/sock helpers"));
    bool sockops_task = true;
    for (bpf_func_id helper : {BPF_FUNC_get_current_pid_tgid, BPF_FUNC_get_current_uid_gid,
                               BPF_FUNC_get_current_comm, BPF_FUNC_get_current_cgroup_id})
        sockops_task &= probed(trial_load_helper_call(BPF_PROG_TYPE_SOCK_OPS, helper), result,
                               "sockops helpers");
    add(Feature::sockops_task, sockops_task);
    return result;
}

namespace {

// What bcc's fentry_can_attach() does: load "r0 = 0; exit" as fexit/inet_hash_connect and
// attach it. Kernels without trampolines (this development VM) refuse the attach.
Status try_fexit() {
    BtfHandle types(btf__load_vmlinux_btf());
    if (!types) return Failure{"no kernel BTF"};
    for (const char *function : {"inet_hash_connect", "inet6_hash_connect", "inet_csk_get_port",
                                 "udp_lib_get_port", "udp_disconnect", "inet_dgram_connect"})
        if (btf__find_by_name_kind(types.get(), function, BTF_KIND_FUNC) < 0)
            return Failure{std::string("the kernel's BTF has no function ") + function};
    int target = btf__find_by_name_kind(types.get(), "inet_hash_connect", BTF_KIND_FUNC);
    const bpf_insn program[] = {
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
    };
    bpf_prog_load_opts options{};
    options.sz = sizeof(options);
    options.expected_attach_type = BPF_TRACE_FEXIT;
    options.attach_btf_id = std::uint32_t(target);
    int fd = bpf_prog_load(BPF_PROG_TYPE_TRACING, "pw_fexit_probe", "GPL", program,
                           std::size(program), &options);
    if (fd < 0)
        return Failure{std::string("the kernel refuses a trial fexit/inet_hash_connect program: ") +
                       std::strerror(errno)};
    int link = bpf_raw_tracepoint_open(nullptr, fd);
    int attach_error = errno;
    close(fd);
    if (link < 0)
        return Failure{std::string("a trial fexit/inet_hash_connect program does not attach: ") +
                       std::strerror(attach_error)};
    close(link);
    return {};
}

}  // namespace

const Status &fexit_attaches() {
    static const Status attaches = try_fexit();
    return attaches;
}

bool has_task_pt_regs() {
    BtfHandle types(btf__load_vmlinux_btf());
    return types && has_enumerator(types.get(), "bpf_func_id", "BPF_FUNC_task_pt_regs");
}

IoUringSubmit io_uring_submit_tracepoint() {
    BtfHandle types(btf__load_vmlinux_btf());
    return types && has_io_uring_requests(types.get()) ? io_uring_submit_in(types.get())
                                                       : IoUringSubmit::none;
}

}  // namespace portwatch
