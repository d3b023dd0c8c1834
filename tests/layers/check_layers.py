#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Includes point down the layers (docs/design.md, "The pipeline"): a file in userspace/X may
include userspace/Y only if Y comes before X in LAYERS. Prints each include that points up and
exits 1 if there is one.

  python3 tests/layers/check_layers.py userspace
"""
import pathlib
import re
import sys

# The floor first; the kernel and host adapters above the pure core; the commands on top.
LAYERS = ["base", "events", "agent", "enrich", "model", "output", "system", "capture", "app"]
INCLUDE = re.compile(r'#include "([a-z_]+)/([^"]+)"')


def upward_includes(root):
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    for source in sorted(root.glob("*/*")):
        layer = source.parent.name
        if layer not in rank:
            yield f"{source.relative_to(root)}: folder not in LAYERS"
            continue
        for match in INCLUDE.finditer(source.read_text()):
            target = match.group(1)
            if target in rank and rank[target] > rank[layer]:
                yield f"{source.relative_to(root)} includes {target}/{match.group(2)}"


def main():
    root = pathlib.Path(sys.argv[1])
    found = list(upward_includes(root))
    for line in found:
        print(line)
    print(f"check_layers: {len(found)} include(s) pointing up in {root}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
