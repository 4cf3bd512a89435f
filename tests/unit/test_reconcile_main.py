"""main.py: the console entry point's arguments and its refusal to start without credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from actormesh_operator import main


def test_arguments() -> None:
    args = main.parse_args(["--namespace", "shop", "--kubeconfig", "/k", "--log-format", "text"])
    assert (args.namespace, args.kubeconfig, args.log_format) == ("shop", "/k", "text")
    args = main.parse_args([])
    assert args.namespace is None


def test_exits_with_a_message_without_credentials(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(main, "configure_logging", lambda settings: None)  # keep the test run's logging
    with pytest.raises(SystemExit) as exited:
        main.main(["--kubeconfig", str(tmp_path / "missing"), "--log-format", "text"])
    assert exited.value.code == 1
    assert "cannot read kubeconfig" in caplog.text
