"""Cluster add-ons applied by `up` once the API server answers: CoreDNS, a default StorageClass and the
metrics.k8s.io APIService of the metrics-server host process.

Pure: returns manifest dicts (applied with kubectl by up.py); unit-tested. CoreDNS runs as a pod with
the `kubernetes` plugin and *no* `forward` plugin, so no name ever resolves through the host.
"""

from __future__ import annotations

from typing import Any

from tests.harness.cluster import layout

DNS_NAMESPACE = "kube-system"
DNS_NAME = "coredns"
DNS_LABELS = {"k8s-app": "kube-dns"}

COREFILE = f"""\
.:53 {{
    errors
    health :8080
    ready :8181
    kubernetes {layout.CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
    loadbalance
}}
"""


def coredns_manifests() -> list[dict[str, Any]]:
    meta = {"name": DNS_NAME, "namespace": DNS_NAMESPACE}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:coredns",
            },
            "subjects": [{"kind": "ServiceAccount", **meta}],
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"Corefile": COREFILE}},
        _coredns_deployment(meta),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": DNS_NAMESPACE, "labels": DNS_LABELS},
            "spec": {
                "clusterIP": layout.DNS_SERVICE_IP,
                "selector": DNS_LABELS,
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                ],
            },
        },
    ]


def _coredns_deployment(meta: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {**meta, "labels": DNS_LABELS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": DNS_LABELS},
            "template": {
                "metadata": {"labels": DNS_LABELS},
                "spec": {
                    "serviceAccountName": DNS_NAME,
                    "priorityClassName": "system-cluster-critical",
                    # CoreDNS must not use itself: Default = the kubelet's resolvConf, which names only
                    # the cluster DNS IP, and the Corefile has no forward plugin anyway.
                    "dnsPolicy": "Default",
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65532,
                        "runAsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                        # Port 53 without any capability.
                        "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "53"}],
                    },
                    "containers": [
                        {
                            "name": "coredns",
                            "image": layout.COREDNS_IMAGE,
                            "imagePullPolicy": "Never",
                            "args": ["-conf", "/etc/coredns/Corefile"],
                            "ports": [
                                {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                            ],
                            "livenessProbe": {
                                "httpGet": {"path": "/health", "port": 8080},
                                "periodSeconds": 10,
                            },
                            "readinessProbe": {
                                "httpGet": {"path": "/ready", "port": 8181},
                                "periodSeconds": 2,
                            },
                            "resources": {
                                "requests": {"cpu": "50m", "memory": "32Mi"},
                                "limits": {"memory": "128Mi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [
                                {"name": "config", "mountPath": "/etc/coredns", "readOnly": True}
                            ],
                        }
                    ],
                    "volumes": [{"name": "config", "configMap": {"name": DNS_NAME}}],
                },
            },
        },
    }


STORAGE_CLASS = "standard"
PV_CAPACITY = "100Gi"  # more than any claim asks for; hostPath sizes are not enforced anyway


def storage_class() -> dict[str, Any]:
    """Default class over a pool of pre-made volumes (no provisioner: see `volume_pool`)."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": "kubernetes.io/no-provisioner",
        "reclaimPolicy": "Retain",
        "volumeBindingMode": "WaitForFirstConsumer",
    }


def volume_pool(directories: list[str]) -> list[dict[str, Any]]:
    """One hostPath PersistentVolume per directory (made 0777 by up.py).

    Not the controller-manager's hostPath provisioner: it makes root-owned 0750 directories and
    hostPath volumes get no fsGroup handling, so NATS, Redis and history (uid 10001) could not write
    their claims. A released volume is not reused (Retain), so the pool is sized for a whole suite.
    """
    return [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"pool-{index:03d}", "labels": {"actormesh.io/test-pool": "true"}},
            "spec": {
                "capacity": {"storage": PV_CAPACITY},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": STORAGE_CLASS,
                "hostPath": {"path": path, "type": "Directory"},
            },
        }
        for index, path in enumerate(directories)
    ]


METRICS_API = "v1beta1.metrics.k8s.io"
METRICS_SERVICE = "metrics-server"


def metrics_api_manifests() -> list[dict[str, Any]]:
    """The resource metrics API (HPAs, `kubectl top`) served by metrics-server on the node's address:
    a selector-less Service whose Endpoints name that address, and the APIService pointing at it."""
    meta = {"name": METRICS_SERVICE, "namespace": DNS_NAMESPACE}
    port = layout.METRICS_SERVER_PORT
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port, "protocol": "TCP"}]},
        },
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": meta,
            "subsets": [{"addresses": [{"ip": layout.NODE_IP}], "ports": [{"name": "https", "port": port}]}],
        },
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": METRICS_API},
            "spec": {
                "service": {"name": METRICS_SERVICE, "namespace": DNS_NAMESPACE, "port": 443},
                "group": "metrics.k8s.io",
                "version": "v1beta1",
                # metrics-server serves a self-signed certificate it makes at start-up.
                "insecureSkipTLSVerify": True,
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        },
    ]
