// SPDX-License-Identifier: Apache-2.0
#include "system/listen_address.h"

#include <arpa/inet.h>

#include <charconv>

namespace portwatch {

std::string ListenAddress::text() const {
    bool ipv6 = host.find(':') != std::string::npos;
    return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Result<ListenAddress> parse_listen_address(const std::string &text) {
    ListenAddress address;
    std::string port = text;
    std::size_t colon = text.rfind(':');
    if (colon != std::string::npos) {
        address.host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (address.host.size() >= 2 && address.host.front() == '[' && address.host.back() == ']')
            address.host = address.host.substr(1, address.host.size() - 2);
        else if (address.host.find(':') != std::string::npos)
            address.host.clear();  // an IPv6 address needs brackets: [::1]:9464
        else if (address.host.empty())
            address.host = "127.0.0.1";
    }
    unsigned char buffer[16];
    bool numeric = inet_pton(AF_INET, address.host.c_str(), buffer) == 1 ||
                   inet_pton(AF_INET6, address.host.c_str(), buffer) == 1;
    if (!numeric)
        return Failure{"'" + text +
                       "' is not [ADDR:]PORT with a numeric address (IPv6 in brackets)"};
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || port.empty() || value > 65535)
        return Failure{"'" + port + "' is not a port number (0-65535)"};
    address.port = static_cast<std::uint16_t>(value);
    return address;
}

}  // namespace portwatch
