"""main.py: the console entry point's arguments and its refusal to start without credentials."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml

from actormesh_operator import main
from actormesh_operator.settings import OperatorSettings


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


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_logs_are_json_lines_in_containers(log_format: str) -> None:
    """ACTORMESH_OPERATOR_LOG_FORMAT=json (the Deployment's setting) makes every line one JSON object."""
    root, asyncio_logger = logging.getLogger(), logging.getLogger("asyncio")
    saved = (root.handlers[:], root.level, asyncio_logger.handlers[:], asyncio_logger.propagate)
    try:
        main.configure_logging(OperatorSettings(log_format=log_format))
        [handler] = [h for h in root.handlers if h not in saved[0]]
        record = logging.LogRecord(
            "actormesh_operator.reconcile.runner",
            logging.WARNING,
            __file__,
            1,
            "reconcile %s failed",
            ("shop/demo",),
            None,
        )
        line = handler.format(record)
    finally:
        root.handlers[:], asyncio_logger.handlers[:] = saved[0], saved[2]
        root.setLevel(saved[1])
        asyncio_logger.propagate = saved[3]
    assert "\n" not in line
    if log_format == "json":
        entry = json.loads(line)
        assert entry["message"] == "reconcile shop/demo failed"
        assert entry["severity"] == "warn"  # kopf's JSON formatter
    else:
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)


def test_the_operator_deployment_asks_for_json_logs() -> None:
    manager = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "config/manager/manager.yaml").read_text()
    )
    env = {e["name"]: e.get("value") for e in manager["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ACTORMESH_OPERATOR_LOG_FORMAT"] == "json"
    assert OperatorSettings().log_format == "json"
