"""How `actormesh dlq` and `actormesh erase` choose between a running `actormesh dev` (its
`dev-mesh.json`, `local.dev_handle`) and the NATS server the environment or the command line names.
The processes themselves: tests/integration/test_dev_operator_clis.py."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from actormesh_runtime.cli import parse
from actormesh_runtime.commands.options import BUS_OPTIONS, admin_settings_from
from actormesh_runtime.local.dev_handle import (
    DEFAULT_DATA_DIR,
    LOCK_NAME,
    DevMeshHandle,
    NoDevMesh,
    handle_path,
    locked_data_dir,
    read_handle,
    remove_handle,
    write_handle,
)

HANDLE = DevMeshHandle(
    nats_url="nats://127.0.0.1:41234",
    mesh_name="devmesh",
    nats_user="admin",
    nats_password="pw",
    pid=os.getpid(),
)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A developer's shell in `tmp_path`: nothing about NATS or the mesh in the environment."""
    for name in ("NATS_URL", "NATS_USER", "NATS_PASSWORD", "NATS_TOKEN", "MESH_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _args(*argv: str) -> argparse.Namespace:
    parsed = parse(["dlq", *argv])
    assert not isinstance(parsed, int)
    return parsed[1]


def test_the_handle_is_private_and_read_back(tmp_path: Path) -> None:
    path = write_handle(tmp_path, HANDLE)
    assert path == handle_path(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_handle(tmp_path) == HANDLE
    assert "pw" not in repr(HANDLE)
    remove_handle(tmp_path)
    remove_handle(tmp_path)  # idempotent
    assert read_handle(tmp_path) is None


def test_a_handle_whose_process_is_gone_is_ignored(tmp_path: Path) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    write_handle(tmp_path, HANDLE.model_copy(update={"pid": int(gone.stdout)}))
    assert read_handle(tmp_path) is None


def test_a_handle_is_live_only_while_its_dev_holds_the_lock(tmp_path: Path) -> None:
    # After a `kill -9` the pid may be reused by an unrelated process; the kernel has let go of the
    # dead dev's flock, so the handle is known stale anyway (HANDLE's pid is this live process).
    write_handle(tmp_path, HANDLE)
    (tmp_path / LOCK_NAME).touch()
    assert read_handle(tmp_path) is None
    with locked_data_dir(tmp_path):
        assert read_handle(tmp_path) == HANDLE
    assert read_handle(tmp_path) is None


def test_a_damaged_handle_is_ignored(tmp_path: Path) -> None:
    handle_path(tmp_path).write_text('{"nats_url": "nats://x:1"')
    assert read_handle(tmp_path) is None


def test_naming_nothing_reaches_the_dev_mesh_running_here(in_tmp: Path) -> None:
    (in_tmp / DEFAULT_DATA_DIR).mkdir()
    write_handle(in_tmp / DEFAULT_DATA_DIR, HANDLE)
    settings = admin_settings_from(_args("list"), BUS_OPTIONS)
    assert (settings.nats_url, settings.mesh_name) == (HANDLE.nats_url, HANDLE.mesh_name)
    assert (settings.nats_user, settings.nats_password) == ("admin", "pw")
    # --mesh still names the mesh.
    assert admin_settings_from(_args("list", "--mesh", "other"), BUS_OPTIONS).mesh_name == "other"


@pytest.mark.parametrize(
    ("env", "argv"),
    [
        pytest.param({"NATS_URL": "nats://10.0.0.1:4222"}, [], id="NATS_URL"),
        pytest.param({"NATS_USER": "admin", "NATS_PASSWORD": "cluster"}, [], id="NATS_USER"),
        pytest.param({"NATS_TOKEN": "t0ken"}, [], id="NATS_TOKEN"),
        pytest.param({}, ["--nats-url", "nats://10.0.0.1:4222"], id="--nats-url"),
    ],
)
def test_a_named_server_wins_over_the_dev_mesh(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], argv: list[str]
) -> None:
    (in_tmp / DEFAULT_DATA_DIR).mkdir()
    write_handle(in_tmp / DEFAULT_DATA_DIR, HANDLE)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = admin_settings_from(_args("list", *argv), BUS_OPTIONS)
    assert settings.nats_url != HANDLE.nats_url
    assert settings.nats_password != "pw"


def test_no_dev_mesh_here_keeps_the_defaults(in_tmp: Path) -> None:
    settings = admin_settings_from(_args("list"), BUS_OPTIONS)
    assert (settings.nats_url, settings.nats_user, settings.mesh_name) == (
        "nats://127.0.0.1:4222",
        None,
        "local",
    )


def test_dev_dir_names_a_dev_mesh_elsewhere(in_tmp: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    data = tmp_path_factory.mktemp("data")
    write_handle(data, HANDLE)
    settings = admin_settings_from(_args("list", "--dev-dir", str(data)), BUS_OPTIONS)
    assert (settings.nats_url, settings.nats_user) == (HANDLE.nats_url, "admin")
    # Before the subcommand too, as the bus options are accepted.
    assert admin_settings_from(_args("--dev-dir", str(data), "list"), BUS_OPTIONS).nats_url == HANDLE.nats_url


def test_dev_dir_without_a_running_dev_mesh_or_with_nats_url_is_an_error(in_tmp: Path) -> None:
    with pytest.raises(NoDevMesh, match="no `actormesh dev --data-dir nowhere` is running"):
        admin_settings_from(_args("list", "--dev-dir", "nowhere"), BUS_OPTIONS)
    (in_tmp / "data").mkdir()
    write_handle(in_tmp / "data", HANDLE)
    with pytest.raises(NoDevMesh, match="give one"):
        admin_settings_from(_args("list", "--dev-dir", "data", "--nats-url", "nats://x:1"), BUS_OPTIONS)


def test_dev_dir_is_accepted_before_the_command_name(
    in_tmp: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The shared options work on either side of the command: `--dev-dir` was refused before it."""
    data = tmp_path_factory.mktemp("data")
    write_handle(data, HANDLE)
    for argv in (["--dev-dir", str(data), "dlq", "list"], [f"--dev-dir={data}", "dlq", "list"]):
        parsed = parse(argv)
        assert not isinstance(parsed, int), argv
        assert admin_settings_from(parsed[1], BUS_OPTIONS).nats_url == HANDLE.nats_url


@pytest.mark.parametrize("found_by", ["--dev-dir", "here"])
def test_the_dev_mesh_is_reached_without_the_environments_nats_tls(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch, found_by: str
) -> None:
    """The dev mesh's embedded nats-server speaks no TLS: NATS_TLS_* kept from the shell made the CLI
    try TLS against it."""
    (in_tmp / DEFAULT_DATA_DIR).mkdir()
    write_handle(in_tmp / DEFAULT_DATA_DIR, HANDLE)
    monkeypatch.setenv("NATS_TLS_CA", str(in_tmp / "ca.pem"))
    monkeypatch.setenv("NATS_TLS_CERT", str(in_tmp / "cert.pem"))
    monkeypatch.setenv("NATS_TLS_KEY", str(in_tmp / "key.pem"))
    argv = ["--dev-dir", str(in_tmp / DEFAULT_DATA_DIR)] if found_by == "--dev-dir" else []
    settings = admin_settings_from(_args("list", *argv), BUS_OPTIONS)
    assert settings.nats_url == HANDLE.nats_url
    assert (settings.nats_tls_ca, settings.nats_tls_cert, settings.nats_tls_key) == (None, None, None)
