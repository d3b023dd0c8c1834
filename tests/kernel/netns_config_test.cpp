// SPDX-License-Identifier: Apache-2.0
// NetnsConfigReader against real namespaces: a namespace is found by inode, even when only
// a non-leader thread is in it, and its sysctls are read without moving the caller's thread.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <latch>
#include <sstream>
#include <thread>

#include "kernel_support.h"
#include "system/netns_config.h"

namespace portwatch::test {
namespace {

const Sysctls kSmallRange = {{"net/ipv4/ip_local_port_range", "40000 40009"},
                             {"net/ipv4/ip_local_reserved_ports", "40002,40005-40006"},
                             {"net/ipv4/tcp_tw_reuse", "0"}};

// Needs root but not the BPF programs.
class NetnsConfigTest : public RootTest {
  protected:
    NetnsConfigTest()
        : RootTest("netns tests need root (unshare, setns, /proc/PID/ns of others)") {}
};

// Keeps one thread of this process inside `netns` (not the main thread, so the namespace
// shows only under /proc/PID/task/TID/ns/net) until release() or destruction.
class ThreadInside {
  public:
    explicit ThreadInside(const Netns &netns)
        : holder_([this, &netns] {
              netns.run([this] {
                  inside_ = true;
                  entered_.count_down();
                  released_.wait();
              });
              if (!inside_) entered_.count_down();  // setns failed; run() reported it
          }) {
        entered_.wait();
    }
    ~ThreadInside() { release(); }

    bool inside() const { return inside_; }
    void release() {
        if (!holder_.joinable()) return;
        released_.count_down();
        holder_.join();
    }

  private:
    bool inside_ = false;
    std::latch entered_{1};
    std::latch released_{1};
    std::thread holder_;  // last: starts after the latches exist
};

std::uint64_t own_thread_netns() {
    struct stat st {};
    EXPECT_EQ(stat("/proc/thread-self/ns/net", &st), 0);
    return st.st_ino;
}

std::string read_text(const std::string &path) {
    std::ifstream file(path);
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
}

void expect_small_range(const Result<NetnsPortConfig> &config) {
    ASSERT_TRUE(config) << config.error();
    EXPECT_EQ(config->range, (PortRange{40000, 40009}));
    EXPECT_EQ(config->reserved, (std::vector<std::uint16_t>{40002, 40005, 40006}));
    EXPECT_EQ(config->tw_reuse, 0);
    EXPECT_EQ(config->capacity(), 7u);
    EXPECT_TRUE(config.error().empty());
}

TEST_F(NetnsConfigTest, ReadsANamespaceByInodeWhileOnlyAThreadIsInside) {
    Netns netns(kSmallRange);
    ThreadInside thread(netns);
    ASSERT_TRUE(thread.inside());

    NetnsConfigReader reader;
    expect_small_range(reader.read(netns.inode()));
}

TEST_F(NetnsConfigTest, AWrongPidHintFallsBackToTheThreadScan) {
    Netns netns(kSmallRange);
    ThreadInside thread(netns);
    ASSERT_TRUE(thread.inside());
    ASSERT_NE(own_thread_netns(), netns.inode());  // the hint's namespace is not the one

    NetnsConfigReader reader;
    expect_small_range(reader.read(netns.inode(), static_cast<std::uint32_t>(getpid())));
}

TEST_F(NetnsConfigTest, UnknownInodeIsAFailureWithAReason) {
    NetnsConfigReader reader;
    Result<NetnsPortConfig> config = reader.read(1);
    EXPECT_FALSE(config);
    EXPECT_FALSE(config.error().empty());
    EXPECT_EQ(reader.cached(), 0u);
}

TEST_F(NetnsConfigTest, ReadCurrentGivesTheHostsOwnSysctls) {
    NetnsConfigReader reader;
    auto config = reader.read_current();
    ASSERT_TRUE(config) << config.error();
    EXPECT_EQ(config->range, parse_port_range(read_text("/proc/sys/net/ipv4/ip_local_port_range")));
    EXPECT_EQ(config->reserved,
              parse_reserved_ports(read_text("/proc/sys/net/ipv4/ip_local_reserved_ports")));
    EXPECT_EQ(config->tw_reuse, parse_tw_reuse(read_text("/proc/sys/net/ipv4/tcp_tw_reuse")));
}

TEST_F(NetnsConfigTest, ReadLeavesTheCallingThreadsNamespaceAlone) {
    Netns netns(kSmallRange);
    ThreadInside thread(netns);
    ASSERT_TRUE(thread.inside());

    std::uint64_t before = own_thread_netns();
    NetnsConfigReader reader;
    Result<NetnsPortConfig> config = reader.read(netns.inode());
    ASSERT_TRUE(config) << config.error();
    EXPECT_EQ(own_thread_netns(), before);
    // And what the calling thread reads is still its own namespace's.
    auto own = reader.read_current();
    ASSERT_TRUE(own) << own.error();
    EXPECT_EQ(own->range, parse_port_range(read_text("/proc/sys/net/ipv4/ip_local_port_range")));
}

TEST_F(NetnsConfigTest, ACachedNamespaceIsReadAfterItsLastThreadLeft) {
    Netns netns(kSmallRange);
    NetnsConfigReader reader;
    {
        ThreadInside thread(netns);
        ASSERT_TRUE(thread.inside());
        Result<NetnsPortConfig> config = reader.read(netns.inode());
        ASSERT_TRUE(config) << config.error();
    }
    EXPECT_EQ(reader.cached(), 1u);
    expect_small_range(reader.read(netns.inode()));
}

TEST_F(NetnsConfigTest, AFullCacheDropsTheOldestNamespace) {
    Netns first(kSmallRange);
    Netns second(kSmallRange);
    NetnsConfigReader reader(1);
    {
        ThreadInside in_first(first);
        ThreadInside in_second(second);
        ASSERT_TRUE(in_first.inside() && in_second.inside());
        Result<NetnsPortConfig> in_first_read = reader.read(first.inode());
        ASSERT_TRUE(in_first_read) << in_first_read.error();
        Result<NetnsPortConfig> in_second_read = reader.read(second.inode());
        ASSERT_TRUE(in_second_read) << in_second_read.error();
        EXPECT_EQ(reader.cached(), 1u);
    }
    // No thread is inside any more: the newer is still cached, the older is found again
    // through this process's open fd on it (the scan of /proc/*/fd), and evicts the newer.
    expect_small_range(reader.read(second.inode()));
    expect_small_range(reader.read(first.inode()));
    EXPECT_EQ(reader.cached(), 1u);
}

TEST_F(NetnsConfigTest, ANamespaceOnlyAnOpenFdKeepsIsFound) {
    Netns netns(kSmallRange);  // holds an fd on it; no task is inside
    NetnsConfigReader reader;
    expect_small_range(reader.read(netns.inode()));
}

}  // namespace
}  // namespace portwatch::test
