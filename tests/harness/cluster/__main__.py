"""`python -m tests.harness.cluster up|down|images|leftovers` (the Makefile's cluster-up / cluster-down)."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.harness.cluster import images, layout
from tests.harness.cluster.down import down, leftovers
from tests.harness.cluster.layout import NodeDirs
from tests.harness.cluster.up import up


def main(argv: list[str]) -> int:
    dirs = NodeDirs.default()
    if argv == ["up"]:
        return up(dirs, layout.state_file())
    if argv == ["down"]:
        return down(layout.state_file())
    if argv == ["images"]:
        # The node's own image tars (pause, CoreDNS, busybox), e.g. for `kind load image-archive`.
        for ref, tar in images.ensure_node_images(dirs.node_bin, layout.node_images_dir()):
            print(f"{ref} {tar}")
        return 0
    if argv == ["leftovers"]:
        found = leftovers(Path(dirs.root), Path(dirs.run))
        print("\n".join(found) if found else "# nothing of the test node is left on this host")
        return 1 if found else 0
    print("usage: python -m tests.harness.cluster up|down|images|leftovers", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
