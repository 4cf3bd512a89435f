"""`actormesh chat` and `actormesh escalations` given a `--url` that is not a URL: a one-line error and
exit 2 (a usage error), never a traceback."""

from __future__ import annotations

import pytest

from actormesh_runtime.cli import main

BAD_URLS = ("http://[::1", "http://127.0.0.1:abc")  # rejected before any connection is tried


@pytest.mark.parametrize("url", BAD_URLS)
def test_chat_with_a_malformed_url_says_so(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chat", "--url", url, "--email", "john.doe@example.com", "hi"]) == 2
    err = capsys.readouterr().err
    assert f"--url {url} is not a valid URL" in err, err


@pytest.mark.parametrize("url", BAD_URLS)
def test_escalations_with_a_malformed_url_says_so(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["escalations", "list", "--url", url]) == 2
    err = capsys.readouterr().err
    assert f"--url {url} is not a valid URL" in err, err
