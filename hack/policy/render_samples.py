"""Write the children the operator renders for every sample in config/samples/ into one directory.

`make policy` scans the output (and config/) with checkov: one multi-document YAML per sample and
per autoscaler flavour (HPA, and KEDA where it is installed), exactly what `build_children` returns.
Usage: python hack/policy/render_samples.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders import build_children
from actormesh_operator.settings import OperatorSettings

SAMPLES = Path(__file__).resolve().parents[2] / "config" / "samples"
NAMESPACE = "support"


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    settings = OperatorSettings()
    written = 0
    for sample in sorted(SAMPLES.glob("*.yaml")):
        body = yaml.safe_load(sample.read_text())
        # `kubectl apply -n NS` gives a sample its namespace; the children always live in the mesh's.
        body["metadata"].setdefault("namespace", NAMESPACE)
        mesh = ActorMesh.from_body(body)
        for keda in (False, True):
            children = build_children(mesh, settings, keda_available=keda)
            target = out / f"{sample.stem}{'-keda' if keda else ''}.yaml"
            target.write_text(yaml.safe_dump_all(children, sort_keys=False))
            written += len(children)
    print(f"rendered {written} objects from {SAMPLES} into {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1])))
