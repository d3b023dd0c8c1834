// SPDX-License-Identifier: Apache-2.0
// CgroupIdLookup against real cgroups: ids made here resolve to their paths, by file handle and
// by searching the tree when handles are refused; a cgroup that is gone resolves to nothing.
#include <fcntl.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <thread>

#include "kernel_support.h"
#include "system/cgroup_id_lookup.h"

namespace portwatch::test {
namespace {

const std::string kId = "5b4065f1b41a82353422b1c55861a492cd0dcc708c950542d87ec110e3143721";

// Needs root but not the BPF programs.
class CgroupIdLookupTest : public RootTest {
  protected:
    CgroupIdLookupTest() : RootTest("cgroup tests need root (mkdir in cgroup2, open_by_handle_at)") {}
    // Unique per run: another checkout's tests may run at the same time.
    std::string test_slice() const {
        return "/portwatch-test-" + std::to_string(getpid()) + ".slice";
    }
};

// Drops CAP_DAC_READ_SEARCH from the calling thread's effective set (capabilities are per
// thread), which makes open_by_handle_at() fail with EPERM.
void drop_dac_read_search() {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    ASSERT_EQ(syscall(SYS_capget, &header, data), 0) << std::strerror(errno);
    data[CAP_TO_INDEX(CAP_DAC_READ_SEARCH)].effective &= ~CAP_TO_MASK(CAP_DAC_READ_SEARCH);
    ASSERT_EQ(syscall(SYS_capset, &header, data), 0) << std::strerror(errno);
}

bool handles_refused_here(const std::string &mount) {
    int mount_fd = open(mount.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    alignas(file_handle) unsigned char buffer[sizeof(file_handle) + 8] = {};
    auto *handle = reinterpret_cast<file_handle *>(buffer);
    handle->handle_bytes = 8;
    handle->handle_type = 0xfe;
    std::uint64_t root_id = 1;
    std::memcpy(handle->f_handle, &root_id, sizeof(root_id));
    int fd = open_by_handle_at(mount_fd, handle, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bool refused = fd < 0 && errno == EPERM;
    if (fd >= 0) close(fd);
    close(mount_fd);
    return refused;
}

TEST_F(CgroupIdLookupTest, TheRootIsSlash) {
    std::string mount = TestCgroup::mount();
    CgroupIdLookup paths(mount);
    EXPECT_EQ(paths.path_of(cgroup_id_at(mount, "/")), "/");
}

TEST_F(CgroupIdLookupTest, AnIdResolvesToItsPath) {
    TestCgroup cgroup(test_slice() + "/docker-" + kId + ".scope");
    ASSERT_NE(cgroup.id(), 0u);
    CgroupIdLookup paths(TestCgroup::mount());
    EXPECT_EQ(paths.path_of(cgroup.id()), cgroup.path());
    TestCgroup parent(test_slice());
    EXPECT_EQ(paths.path_of(parent.id()), test_slice());
}

TEST_F(CgroupIdLookupTest, WithoutFileHandlesTheTreeIsSearched) {
    TestCgroup cgroup(test_slice() + "/a b\xff.slice/crio-" + kId + ".scope");
    std::uint64_t id = cgroup.id();
    std::string mount = TestCgroup::mount();
    std::string found, root;
    bool refused = false;
    std::thread without_capability([&] {
        drop_dac_read_search();
        refused = handles_refused_here(mount);
        CgroupIdLookup paths(mount);
        found = paths.path_of(id);
        root = paths.path_of(cgroup_id_at(mount, "/"));
    });
    without_capability.join();
    EXPECT_TRUE(refused) << "the premise: no CAP_DAC_READ_SEARCH, no file handles";
    EXPECT_EQ(found, cgroup.path());
    EXPECT_EQ(root, "/");
}

TEST_F(CgroupIdLookupTest, GoneUnknownAndZeroResolveToNothing) {
    std::string mount = TestCgroup::mount();
    CgroupIdLookup paths(mount);
    TestCgroup cgroup(test_slice());
    std::uint64_t id = cgroup.id();
    EXPECT_EQ(paths.path_of(id), cgroup.path());
    cgroup.remove();
    EXPECT_EQ(paths.path_of(id), cgroup.path()) << "what was resolved stays cached";
    EXPECT_EQ(CgroupIdLookup(mount).path_of(id), "") << "gone";
    EXPECT_EQ(paths.path_of(0), "");
    EXPECT_EQ(paths.path_of(~0ull), "");
    EXPECT_EQ(CgroupIdLookup(std::nullopt).path_of(1), "") << "no cgroup2 mount";
}

TEST_F(CgroupIdLookupTest, TheCacheIsBounded) {
    std::string mount = TestCgroup::mount();
    CgroupIdLookup paths(mount, 2);
    for (std::uint64_t id = 1'000'000'000; id < 1'000'000'010; id++) paths.path_of(id);
    EXPECT_EQ(paths.cached(), 2u);
}

TEST_F(CgroupIdLookupTest, AnnotateFillsTheProcessesPath) {
    TestCgroup cgroup(test_slice() + "/docker-" + kId + ".scope");
    CgroupIdLookup paths(TestCgroup::mount());
    AllocateEvent allocation;
    allocation.task.cgroup_id = cgroup.id();
    Event event = allocation;
    paths.annotate(event);
    EXPECT_EQ(std::get<AllocateEvent>(event).task.cgroup_path, cgroup.path());

    ReleaseEvent release;
    release.owner.cgroup_id = cgroup.id();
    event = release;
    paths.annotate(event);
    EXPECT_EQ(std::get<ReleaseEvent>(event).owner.cgroup_path, cgroup.path());

    release.owner_known = false;
    event = release;
    paths.annotate(event);
    EXPECT_EQ(std::get<ReleaseEvent>(event).owner.cgroup_path, "");
}

}  // namespace
}  // namespace portwatch::test
