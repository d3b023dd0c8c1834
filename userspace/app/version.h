#pragma once

namespace portwatch {
inline constexpr const char *kPortwatchVersion = "0.1.0";
}
