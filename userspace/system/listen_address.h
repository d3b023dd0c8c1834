// SPDX-License-Identifier: Apache-2.0
// Where the Prometheus endpoint listens, and the text that names it.
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"

namespace portwatch {

// Where the Prometheus endpoint listens. A numeric address; loopback unless named.
struct ListenAddress {
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;  // 0: any free port (the ready line says which)

    std::string text() const;  // "127.0.0.1:9464", "[::1]:9464"
};

// "9464", ":9464", "0.0.0.0:9464", "[::1]:9464"; a failure saying why for anything else.
Result<ListenAddress> parse_listen_address(const std::string &text);

}  // namespace portwatch
