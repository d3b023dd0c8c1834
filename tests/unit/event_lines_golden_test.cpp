// SPDX-License-Identifier: Apache-2.0
// The exact bytes of the JSON and text lines for events of every shape (allocate, each failure,
// each release reason, an owner nobody knows, IPv6, odd bytes in comm and cgroup, a container),
// held to tests/unit/golden/event_lines.txt. Any change to a line's bytes shows as a diff there:
// rewrite the file on purpose with PORTWATCH_UPDATE_GOLDEN=1 and read the diff.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "output/json_format.h"
#include "output/text_lines.h"
#include "sample_events.h"

namespace portwatch {
namespace {

using namespace portwatch::testing;

const char *const kGolden = PORTWATCH_SOURCE_DIR "/tests/unit/golden/event_lines.txt";

std::vector<std::pair<std::string, Event>> events_of_every_shape() {
    std::vector<std::pair<std::string, Event>> events;
    events.emplace_back("connect_allocate", connect_allocate());

    AllocateEvent fixed_bind = connect_allocate("nginx");
    fixed_bind.how = How::bind;
    fixed_bind.syscall = Syscall::bind;
    fixed_bind.ephemeral = false;
    fixed_bind.sock.remote_port = 0;
    events.emplace_back("fixed_bind", fixed_bind);

    events.emplace_back("failed_bind_eaddrinuse", failed_bind(EADDRINUSE));
    AllocateEvent failed_connect = connect_allocate();
    failed_connect.error = EADDRNOTAVAIL;
    failed_connect.sock.local_port = 0;
    events.emplace_back("failed_connect_eaddrnotavail", failed_connect);

    AllocateEvent odd = connect_allocate(std::string("c\xff\"\\\n\x01l", 7));
    odd.task.cgroup_path = std::string("/odd\xfe.slice", 11);
    events.emplace_back("odd_bytes", odd);

    AllocateEvent in_container = connect_allocate();
    in_container.task.cgroup_path = kDockerCgroup;
    in_container.syscall = Syscall::sendmmsg;
    in_container.how = How::sendto_autobind;
    in_container.sock.proto = Proto::udp;
    events.emplace_back("container_udp", in_container);

    for (ReleaseReason reason : {ReleaseReason::socket_closed, ReleaseReason::tcp_closed,
                                 ReleaseReason::time_wait, ReleaseReason::disconnect})
        events.emplace_back("release_" + std::string(name_in(kReleaseReasonNames, reason)),
                            ipv6_release(reason));

    ReleaseEvent unknown = ipv6_release(ReleaseReason::tcp_closed);
    unknown.owner_known = false;
    unknown.owner = {};
    unknown.held_ns = 0;
    unknown.sock.remote_addr = ipv6_doc(2);
    unknown.sock.remote_port = 443;
    events.emplace_back("release_owner_unknown", unknown);

    ReleaseEvent contained = ipv6_release(ReleaseReason::time_wait);
    contained.owner.cgroup_path = kDockerCgroup;
    events.emplace_back("release_container", contained);
    return events;
}

std::string lines_of_every_shape() {
    std::string out;
    for (const auto &[name, event] : events_of_every_shape()) {
        out += "## " + name + "\n";
        out += json_line(event, time_base());
        out += text_line(event, time_base());
    }
    out += "## text_header\n" + text_header();
    return out;
}

TEST(EventLinesGolden, BytesAreTheGoldenOnes) {
    std::string lines = lines_of_every_shape();
    if (std::getenv("PORTWATCH_UPDATE_GOLDEN")) {
        std::ofstream(kGolden, std::ios::trunc) << lines;
        GTEST_SKIP() << "rewrote " << kGolden;
    }
    std::ifstream file(kGolden);
    ASSERT_TRUE(file) << "cannot read " << kGolden;
    std::stringstream golden;
    golden << file.rdbuf();
    EXPECT_EQ(lines, golden.str());
}

}  // namespace
}  // namespace portwatch
