"""The node's own images (pause, CoreDNS, a busybox test-pod image) as docker-archive tars.

No registry and no Docker: each image is one layer tar written here, plus a config and manifest.json,
which `ctr -n k8s.io images import` reads. Called by up.py; tars are cached under
~/.cache/actormesh/images/node/ by a content key (the inputs' hashes), so a warm run writes nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.cluster import layout

BUSYBOX = Path("/bin/busybox")  # Debian busybox-static
BUSYBOX_APPLETS = (
    "sh",
    "httpd",
    "wget",
    "nslookup",
    "nc",
    "sleep",
    "cat",
    "echo",
    "ls",
    "env",
    "true",
    "timeout",
)
_NOBODY = 65534


@dataclass(frozen=True)
class ImageFile:
    path: str  # inside the image, no leading slash
    source: Path | None = None  # regular file copied from the host
    symlink: str | None = None
    mode: int = 0o755


@dataclass(frozen=True)
class ImageSpec:
    ref: str
    files: Sequence[ImageFile]
    entrypoint: Sequence[str] = ()
    cmd: Sequence[str] = ()
    user: str = f"{_NOBODY}:{_NOBODY}"
    directories: Sequence[str] = field(default=("tmp",))


def node_images(node_bin: Path) -> list[ImageSpec]:
    busybox_files = [ImageFile("bin/busybox", BUSYBOX)]
    busybox_files += [ImageFile(f"bin/{a}", symlink="busybox") for a in BUSYBOX_APPLETS]
    return [
        ImageSpec(layout.PAUSE_IMAGE, [ImageFile("pause", node_bin / "pause")], entrypoint=["/pause"]),
        ImageSpec(
            layout.COREDNS_IMAGE,
            [ImageFile("coredns", node_bin / "coredns")],
            entrypoint=["/coredns"],
            user="65532:65532",
        ),
        ImageSpec(layout.BUSYBOX_IMAGE, busybox_files, cmd=["sh"], directories=("tmp", "www")),
    ]


def _layer(spec: ImageSpec) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in spec.directories:
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        for dirname in sorted({str(Path(f.path).parent) for f in spec.files} - {"."}):
            info = tarfile.TarInfo(dirname)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for f in spec.files:
            info = tarfile.TarInfo(f.path)
            info.mode = f.mode
            if f.symlink is not None:
                info.type, info.linkname = tarfile.SYMTYPE, f.symlink
                tar.addfile(info)
            else:
                assert f.source is not None
                data = f.source.read_bytes()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_docker_archive(spec: ImageSpec, out: Path) -> None:
    """One image, one layer: manifest.json + <config>.json + <layer>/layer.tar (mtime 0, reproducible)."""
    layer = _layer(spec)
    layer_id = _sha(layer)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": list(spec.entrypoint) or None,
            "Cmd": list(spec.cmd) or None,
            "User": spec.user,
            "Env": ["PATH=/bin"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_id}"]},
        "history": [{"created_by": "tests/harness/cluster/images.py"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = f"{_sha(config_bytes)}.json"
    manifest = [{"Config": config_name, "RepoTags": [spec.ref], "Layers": [f"{layer_id}/layer.tar"]}]
    entries = [
        (config_name, config_bytes),
        (f"{layer_id}/layer.tar", layer),
        ("manifest.json", json.dumps(manifest).encode()),
    ]
    tmp = out.with_suffix(".tmp")
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(layer_id)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(out)


def _content_key(spec: ImageSpec) -> str:
    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(repr((spec.ref, spec.entrypoint, spec.cmd, spec.user, spec.directories)).encode())
    for f in spec.files:
        h.update(f.path.encode())
        h.update((f.symlink or "").encode())
        if f.source is not None:
            st = f.source.stat()
            h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def ensure_node_images(node_bin: Path, out_dir: Path) -> list[tuple[str, Path]]:
    """Write (or reuse) every node image's tar; return (ref, tar) pairs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    result = []
    for spec in node_images(node_bin):
        name = spec.ref.split("/", 1)[1].replace(":", "_")
        tar = out_dir / f"{name}-{_content_key(spec)}.tar"
        if not tar.exists():
            write_docker_archive(spec, tar)
        result.append((spec.ref, tar))
    return result


def listed_images(images_txt: Path) -> list[tuple[str, Path]]:
    """`<ref> <tarfile>` per line (INTERFACES.md); relative tar paths are relative to the list."""
    pairs: list[tuple[str, Path]] = []
    for line in images_txt.read_text().splitlines():
        parts = line.split()
        if len(parts) != 2 or line.lstrip().startswith("#"):
            continue
        tar = Path(parts[1])
        pairs.append((parts[0], tar if tar.is_absolute() else images_txt.parent / tar))
    return pairs


def refs(pairs: Iterable[tuple[str, Path]]) -> list[str]:
    return [ref for ref, _ in pairs]
