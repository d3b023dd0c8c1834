// SPDX-License-Identifier: Apache-2.0
// A sock_diag dump answer on any bytes: one datagram, or several in a row, as recv() gives
// them. Every message must be checked to lie within its datagram before it is read.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_input.h"
#include "system/sock_diag_answer.h"

using namespace portwatch;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    fuzz::FuzzInput input(data, size);
    std::vector<KernelSocket> sockets;
    DumpAnswer answer{1, input.byte() % 2 ? Proto::udp : Proto::tcp, 4026531840u, sockets};
    Result<DumpProgress> progress = DumpProgress::more;
    while (progress && *progress == DumpProgress::more && !input.empty()) {
        auto datagram = input.piece(true);
        progress = take_datagram({reinterpret_cast<const char *>(datagram.data()), datagram.size()},
                                 answer);
    }
    fuzz::require(progress.ok() == progress.error().empty());  // a failure says why
    for (const KernelSocket &socket : sockets) fuzz::require(socket.sock.netns == 4026531840u);
    return 0;
}
