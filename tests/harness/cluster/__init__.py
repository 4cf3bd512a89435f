"""The sealed single-node test cluster behind `make cluster-up` / `make cluster-down` (issue 8).

Modules: `layout` (addresses, paths, pins), `configs` and `argv` (pure: config files and command
lines), `addons` (CoreDNS, StorageClass manifests), `images` (docker-archive tars for the node's own
images), `state` (what `up` made, for `down`), `hostnet` (host network setup and teardown),
`up`/`down` (orchestration), `__main__` (the CLI). See docs/e2e.md.
"""
