"""Runs the managed NATS and Redis pods the operator builds, from the local images, the way a kubelet
would, and checks their probes and a round trip. Started by hack/images/pod-smoke.sh (which provides a
Docker Engine); see docs/images.md.

Everything comes from the builders' output (`build_children` for a mesh), not from a hand-written copy:
- user: the pod's runAsUser/runAsGroup, plus fsGroup as a supplementary group;
- the container's security context: read-only root filesystem, all capabilities dropped, no privilege
  escalation; its memory limit;
- volumes: emptyDir as a tmpfs and each volumeClaimTemplate as a Docker volume, both owned by root with
  group fsGroup and mode 2770 (what fsGroup does to a volume, without the world-writable leeway a
  hostPath would give); configMap volumes from the ConfigMap the builders made, read-only;
- env: literal values, `fieldRef: metadata.name` as the pod name, Secret keys as generated values;
  `$(VAR)` in command and args expanded as the kubelet does;
- probes: startup, readiness and liveness, each run as the kubelet runs it (httpGet and tcpSocket from
  the pod's network namespace, exec in the container) until it passes;
- a round trip: Redis SET, restart on the same volume, GET (the append-only file survived); NATS
  JetStream enabled on the store volume, then the preStop hook puts the server into lame-duck mode.
The container logs must not mention a read-only or permission error. Every container and volume made
here is removed on exit.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders import build_children
from actormesh_operator.settings import OperatorSettings

PREFIX = "actormesh-podsmoke"
LABEL = f"io.actormesh.podsmoke={PREFIX}"
WRITE_ERRORS = re.compile(r"read-only file system|permission denied|can't open|could not write", re.I)
VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def log(msg: str) -> None:
    print(f"pod-smoke: {msg}", file=sys.stderr, flush=True)


def docker(*args: str, check: bool = True, input_text: str | None = None) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, input=input_text, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def expand(text: str, env: dict[str, str]) -> str:
    """The kubelet's `$(VAR)` expansion in command and args (unknown names stay as written)."""
    return VAR_REF.sub(lambda m: env.get(m.group(1), m.group(0)), text)


def docker_memory(quantity: str | None) -> list[str]:
    if not quantity:
        return []
    return ["--memory", quantity.replace("Mi", "m").replace("Gi", "g")]


class Pod:
    """One pod of a StatefulSet, run as one container in its own network namespace with no interfaces
    but loopback (`--network none`)."""

    def __init__(self, sts: dict[str, Any], configmaps: dict[str, dict[str, str]], workdir: Path) -> None:
        self.sts = sts
        self.name = f"{sts['metadata']['name']}-0"
        self.container_name = f"{PREFIX}-{self.name}"
        self.spec = sts["spec"]["template"]["spec"]
        self.container = self.spec["containers"][0]
        self.configmaps = configmaps
        self.workdir = workdir
        self.secrets: dict[str, str] = {}
        self.env = self._env()

    def _env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for item in self.container.get("env", []):
            if "value" in item:
                env[item["name"]] = item["value"]
                continue
            source = item["valueFrom"]
            if source.get("fieldRef", {}).get("fieldPath") == "metadata.name":
                env[item["name"]] = self.name
            elif "secretKeyRef" in source:
                env[item["name"]] = self.secrets.setdefault(item["name"], secrets.token_hex(16))
            else:
                raise ValueError(f"{self.name}: env {item['name']} has a source this smoke cannot fake")
        return env

    @property
    def fs_group(self) -> int:
        return int(self.spec["securityContext"]["fsGroup"])

    def volume_name(self, claim: str) -> str:
        return f"{PREFIX}-{claim}-{self.name}"

    def _volume_args(self) -> list[str]:
        mounts = {m["name"]: m["mountPath"] for m in self.container.get("volumeMounts", [])}
        claims = {t["metadata"]["name"] for t in self.sts["spec"].get("volumeClaimTemplates", [])}
        args: list[str] = []
        for volume in self.spec.get("volumes", []):
            path = mounts.pop(volume["name"], None)
            if path is None:
                continue
            if "emptyDir" in volume:
                size = volume["emptyDir"].get("sizeLimit", "64Mi").replace("Mi", "m")
                opts = f"rw,nosuid,nodev,size={size},mode=2770,uid=0,gid={self.fs_group}"
                args += ["--tmpfs", f"{path}:{opts}"]
            elif "configMap" in volume:
                files = self.workdir / volume["name"]
                files.mkdir(mode=0o755)
                for key, value in self.configmaps[volume["configMap"]["name"]].items():
                    (files / key).write_text(value)
                    (files / key).chmod(0o644)
                args += ["-v", f"{files}:{path}:ro"]
            else:
                raise ValueError(f"{self.name}: volume {volume['name']} has a kind this smoke cannot run")
        for claim, path in mounts.items():
            if claim not in claims:
                raise ValueError(f"{self.name}: mount {claim} has no volume")
            args += ["--mount", f"type=volume,src={self.volume_name(claim)},dst={path}"]
        return args

    def prepare_claims(self, helper_image: str) -> None:
        """Docker volumes for the claims, chowned as the kubelet's fsGroup handling would leave them."""
        for template in self.sts["spec"].get("volumeClaimTemplates", []):
            volume = self.volume_name(template["metadata"]["name"])
            docker("volume", "create", "--label", LABEL, volume)
            docker(
                "run", "--rm", "--label", LABEL, "--network", "none", "--user", "0:0",
                "--entrypoint", "/bin/sh", "-v", f"{volume}:/claim", helper_image,
                "-c", f"chown 0:{self.fs_group} /claim && chmod 2770 /claim",
            )  # fmt: skip

    def run_args(self) -> list[str]:
        sc, pod_sc = self.container["securityContext"], self.spec["securityContext"]
        user = f"{pod_sc['runAsUser']}:{pod_sc['runAsGroup']}"
        args = ["run", "--detach", "--name", self.container_name, "--label", LABEL, "--network", "none"]
        args += ["--hostname", self.name, "--user", user, "--group-add", str(self.fs_group)]
        if sc.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        if "ALL" in sc.get("capabilities", {}).get("drop", []):
            args += ["--cap-drop", "ALL"]
        if sc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        args += docker_memory(self.container.get("resources", {}).get("limits", {}).get("memory"))
        for key, value in self.env.items():
            args += ["--env", f"{key}={value}"]
        args += self._volume_args()
        command = [expand(c, self.env) for c in self.container.get("command", [])]
        if command:
            args += ["--entrypoint", command[0]]
        args.append(self.container["image"])
        return args + command[1:] + [expand(a, self.env) for a in self.container.get("args", [])]

    def start(self) -> None:
        docker(*self.run_args())
        log(f"{self.name}: started {self.container['image']} as the builder specifies")

    def pid(self) -> str:
        return docker("inspect", "--format", "{{.State.Pid}}", self.container_name).strip()

    def port(self, ref: int | str) -> int:
        if isinstance(ref, int):
            return ref
        return int(next(p["containerPort"] for p in self.container["ports"] if p["name"] == ref))

    def in_netns(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["nsenter", "--target", self.pid(), "--net", *cmd], capture_output=True, text=True, check=False
        )

    def exec(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        """`kubectl exec`/exec probes: the container's user and environment."""
        return subprocess.run(
            ["docker", "exec", self.container_name, *cmd], capture_output=True, text=True, check=False
        )

    def probe_once(self, probe: dict[str, Any]) -> bool:
        if "httpGet" in probe:
            get = probe["httpGet"]
            url = f"http://127.0.0.1:{self.port(get['port'])}{get.get('path', '/')}"
            return self.in_netns("curl", "-fsS", "-o", "/dev/null", "--max-time", "3", url).returncode == 0
        if "tcpSocket" in probe:
            port = self.port(probe["tcpSocket"]["port"])
            return self.in_netns("bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}").returncode == 0
        if "exec" in probe:
            return self.exec(*probe["exec"]["command"]).returncode == 0
        raise ValueError(f"{self.name}: unknown probe {probe}")

    def running(self) -> bool:
        return docker("inspect", "--format", "{{.State.Running}}", self.container_name).strip() == "true"

    def wait_probes(self, timeout_s: float = 90) -> None:
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = self.container.get(kind)
            if probe is None:
                continue
            deadline = time.monotonic() + timeout_s
            while not self.probe_once(probe):
                if not self.running() or time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name}: {kind} never passed\n{self.logs()}")
                time.sleep(0.5)
            action = {k: v for k, v in probe.items() if k in ("httpGet", "exec", "tcpSocket")}
            log(f"{self.name}: {kind} passes ({json.dumps(action)})")

    def logs(self) -> str:
        done = subprocess.run(
            ["docker", "logs", self.container_name], capture_output=True, text=True, check=False
        )
        return done.stdout + done.stderr

    def check_logs(self) -> None:
        bad = [line for line in self.logs().splitlines() if WRITE_ERRORS.search(line)]
        if bad:
            raise RuntimeError(f"{self.name}: write errors in the log:\n" + "\n".join(bad))

    def remove(self) -> None:
        docker("rm", "-f", self.container_name, check=False)


def redis_round_trip(pod: Pod) -> None:
    cli = ["redis-cli", "-p", str(pod.port("redis"))]
    if pod.exec(*cli, "SET", "actormesh:smoke", "kept").stdout.strip() != "OK":
        raise RuntimeError(f"redis SET failed\n{pod.logs()}")
    if pod.secrets:
        # Without the password (REDISCLI_AUTH unset), the server must refuse.
        denied = subprocess.run(
            ["docker", "exec", "--env", "REDISCLI_AUTH=", pod.container_name, *cli, "GET", "actormesh:smoke"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if "NOAUTH" not in denied.stdout + denied.stderr:
            raise RuntimeError(f"redis answered without the password: {denied.stdout!r}")
        log(f"{pod.name}: refuses clients without the password")
        # ... and the readiness probe, run with a wrong password, must fail (redis-cli -e).
        probe = pod.container["readinessProbe"]["exec"]["command"]
        wrong = subprocess.run(
            ["docker", "exec", "--env", "REDISCLI_AUTH=wrong", pod.container_name, *probe],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if wrong.returncode == 0:
            raise RuntimeError(f"the readiness probe passes with a wrong password: {wrong.stdout!r}")
        log(f"{pod.name}: the readiness probe fails with a wrong password")
    docker("stop", "--time", "30", pod.container_name)
    pod.check_logs()
    pod.remove()
    pod.start()
    pod.wait_probes()
    value = pod.exec(*cli, "GET", "actormesh:smoke").stdout.strip()
    if value != "kept":
        raise RuntimeError(f"redis lost the key across a restart on its volume (got {value!r})\n{pod.logs()}")
    log(f"{pod.name}: SET, restart on the same volume, GET: the append-only file survived")


def nats_round_trip(pod: Pod) -> None:
    out = pod.in_netns("curl", "-fsS", f"http://127.0.0.1:{pod.port('monitor')}/jsz")
    jsz = json.loads(out.stdout or "{}")
    store = jsz.get("config", {}).get("store_dir", "")
    if not store.startswith("/data"):
        raise RuntimeError(f"JetStream is not on the store volume: {out.stdout or out.stderr}")
    log(f"{pod.name}: JetStream enabled, store {store}")
    pre_stop = pod.container["lifecycle"]["preStop"]["exec"]["command"]
    done = pod.exec(*pre_stop)
    if done.returncode != 0:
        raise RuntimeError(
            f"preStop {pre_stop} exited {done.returncode}: {done.stdout}{done.stderr}\n{pod.logs()}"
        )
    deadline = time.monotonic() + 10
    while "lame duck" not in pod.logs().lower():
        if time.monotonic() > deadline:
            raise RuntimeError(f"preStop did not put the server into lame-duck mode\n{pod.logs()}")
        time.sleep(0.3)
    log(f"{pod.name}: preStop {' '.join(pre_stop)} -> lame-duck mode")


def mesh_from(path: Path, *, redis_password: bool) -> ActorMesh:
    body = yaml.safe_load(path.read_text())
    body.setdefault("metadata", {}).setdefault("namespace", "default")
    if redis_password:
        body["spec"].setdefault("redis", {})["passwordSecretRef"] = {"name": "smoke-redis", "key": "password"}
    return ActorMesh.from_body(body)


def operator_settings(patch: Path) -> OperatorSettings:
    """The operator's settings as the e2e install configures them (its manager container's env)."""
    deployment = yaml.safe_load(patch.read_text())
    env = deployment["spec"]["template"]["spec"]["containers"][0].get("env", [])
    for item in env:
        os.environ[item["name"]] = item["value"]
    log(f"operator env from {patch}: " + " ".join(f"{e['name']}={e['value']}" for e in env))
    return OperatorSettings()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mesh", type=Path, default=Path("config/samples/minimal.yaml"))
    parser.add_argument("--helper-image", required=True, help="an image with /bin/sh (volume preparation)")
    parser.add_argument("--redis-password", action="store_true", help="also set spec.redis.passwordSecretRef")
    parser.add_argument(
        "--operator-env",
        type=Path,
        default=Path("config/e2e/manager-images.yaml"),
        help="a Deployment patch whose manager env sets the operator's default images (config/e2e's)",
    )
    opts = parser.parse_args()
    settings = operator_settings(opts.operator_env)
    mesh = mesh_from(opts.mesh, redis_password=opts.redis_password)
    children = build_children(mesh, settings, keda_available=False)
    configmaps = {c["metadata"]["name"]: c["data"] for c in children if c["kind"] == "ConfigMap"}
    workloads = {c["metadata"]["name"]: c for c in children if c["kind"] == "StatefulSet"}
    checks = {f"{mesh.name}-nats": nats_round_trip, f"{mesh.name}-redis": redis_round_trip}
    with tempfile.TemporaryDirectory(prefix="pod-smoke-") as tmp:
        Path(tmp).chmod(0o755)
        pods = []
        try:
            for name, check in checks.items():
                workdir = Path(tmp) / name
                workdir.mkdir(mode=0o755)
                pod = Pod(workloads[name], configmaps, workdir)
                pods.append(pod)
                pod.prepare_claims(opts.helper_image)
                pod.start()
                pod.wait_probes()
                check(pod)
                pod.check_logs()
        finally:
            for pod in pods:
                pod.remove()
            leftovers = docker("volume", "ls", "-q", "--filter", f"label={LABEL}").split()
            if leftovers:
                docker("volume", "rm", "-f", *leftovers, check=False)
    log("NATS and Redis run from the local images exactly as the operator specifies them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
