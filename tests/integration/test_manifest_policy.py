"""`make policy` in CI: checkov passes over every sample's rendered children and config/, with every
skip explained in hack/policy/checkov.yaml — and the same scan does fail a manifest that breaks a rule.

checkov is installed by the Makefile into its own venv (.venv-policy) from PyPI the first time.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / ".venv-policy" / "bin" / "checkov"


def _make_policy() -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-s", "policy"], cwd=ROOT, capture_output=True, text=True, timeout=840)


def test_every_rendered_child_and_config_pass_the_policy_scan() -> None:
    run = _make_policy()
    assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
    summaries = [line for line in run.stdout.splitlines() if line.startswith("Passed checks:")]
    assert len(summaries) == 2, run.stdout[-3000:]
    assert all("Failed checks: 0" in line for line in summaries), summaries
    rendered = sorted(p.name for p in (ROOT / ".actormesh" / "policy" / "rendered").glob("*.yaml"))
    samples = sorted(p.stem for p in (ROOT / "config" / "samples").glob("*.yaml"))
    assert rendered == sorted([f"{s}.yaml" for s in samples] + [f"{s}-keda.yaml" for s in samples])
    scanned = {p.stem for p in (ROOT / ".actormesh" / "policy" / "config").glob("*.yaml")}
    assert _top_level_kustomizations() <= scanned, "every install config/ builds is scanned"


def _top_level_kustomizations() -> set[str]:
    """The kustomize directories of config/ that no other one includes: what a user applies with -k."""
    kustomizations = list((ROOT / "config").glob("*/kustomization.yaml"))
    included = {
        resource.removeprefix("../")
        for path in kustomizations
        for resource in yaml.safe_load(path.read_text()).get("resources", [])
        if resource.startswith("../")
    }
    return {path.parent.name for path in kustomizations} - included


def test_the_scan_is_not_vacuous(tmp_path: Path) -> None:
    # Only the checkov venv: a second `make policy` here would render into the directory the other test
    # (maybe on another xdist worker) is scanning.
    install = subprocess.run(
        ["make", "-s", ".venv-policy/.installed"], cwd=ROOT, capture_output=True, text=True, timeout=840
    )
    assert install.returncode == 0, (install.stdout + install.stderr)[-3000:]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad", "namespace": "support"},
        "spec": {
            "containers": [{"name": "c", "image": "busybox:1.36", "securityContext": {"privileged": True}}]
        },
    }
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(pod))
    run = subprocess.run(
        [str(CHECKOV), "--config-file", str(ROOT / "hack/policy/checkov.yaml"), "-d", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode != 0
    assert "CKV_K8S_16" in run.stdout, "a privileged container is caught"
