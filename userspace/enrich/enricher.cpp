// SPDX-License-Identifier: Apache-2.0
#include "enrich/enricher.h"

#include <utility>
#include <variant>

namespace portwatch {

Enricher::Enricher(std::size_t max_owners, Attribution attribute, CgroupResolver cgroup_path)
    : owners_(max_owners), attribute_(std::move(attribute)), cgroup_path_(std::move(cgroup_path)) {}

bool Enricher::enrich(Event &event) {
    owners_.apply(event);
    if (auto *release = std::get_if<ReleaseEvent>(&event))
        if (attribute_ && !attribute_(*release)) return false;
    if (cgroup_path_) fill_cgroup_paths(event, cgroup_path_);
    return true;
}

namespace {

void fill(TaskInfo &task, const Enricher::CgroupResolver &path_of) {
    if (task.cgroup_path.empty()) task.cgroup_path = path_of(task.cgroup_id);
}

}  // namespace

void fill_cgroup_paths(Event &event, const Enricher::CgroupResolver &path_of) {
    if (auto *allocation = std::get_if<AllocateEvent>(&event)) {
        fill(allocation->task, path_of);
        return;
    }
    auto &release = std::get<ReleaseEvent>(event);
    if (release.owner_known) fill(release.owner, path_of);
}

}  // namespace portwatch
