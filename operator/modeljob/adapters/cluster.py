"""The cluster gateway: typed calls to the API server; with cluster_connection.py, the only importer
of the `kubernetes` client, whose errors become ClusterError (cluster_errors.py).

Objects go in and come out as plain Kubernetes dicts (the JSON the API server speaks), never as
the client's generated model classes: `kube_nodes`, `kube_pods` and `kube_jobs` translate dicts to
core values, and raw JSON is several times faster to decode than the models when listing thousands
of nodes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from enum import StrEnum
from typing import Any

from kubernetes import client

from modeljob.adapters.cluster_connection import ApiConnection, JsonObject


class ClusterGateway(ApiConnection):
    """Typed calls to one API server, one method per object and verb (cluster_connection.py
    connects and does the calling). Thread-safe: the underlying HTTP pool is shared."""

    def __init__(self, api_client: client.ApiClient) -> None:
        super().__init__(api_client)
        self._core = client.CoreV1Api(api_client)
        self._leases: client.CoordinationV1Api | None = None  # made on the first Lease call

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]
        if self._leases is not None:
            self._leases.api_client.close()

    def __enter__(self) -> ClusterGateway:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- nodes -------------------------------------------------------------------------------

    def create_node(self, manifest: Mapping[str, Any]) -> JsonObject:
        """POST a Node (status included: the server keeps status only on create)."""
        name = manifest.get("metadata", {}).get("name", "?")
        return self._call(f"create node {name}", self._core.create_node, body=dict(manifest))

    def list_nodes(self, *, label_selector: str | None = None) -> list[JsonObject]:
        kwargs = {"label_selector": label_selector} if label_selector else {}
        items = self._call("list nodes", self._core.list_node, **kwargs).get("items") or []
        return list(items)

    def delete_node(self, name: str) -> None:
        self._call(f"delete node {name}", self._core.delete_node, name)

    # --- namespaces --------------------------------------------------------------------------

    def create_namespace(self, name: str, *, labels: Mapping[str, str] | None = None) -> JsonObject:
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": dict(labels or {})},
        }
        return self._call(f"create namespace {name}", self._core.create_namespace, body=body)

    def read_namespace(self, name: str) -> JsonObject:
        return self._call(f"get namespace {name}", self._core.read_namespace, name)

    def delete_namespace(self, name: str) -> None:
        self._call(f"delete namespace {name}", self._core.delete_namespace, name)

    def read_service_account(self, namespace: str, name: str) -> JsonObject:
        return self._call(
            f"get serviceaccount {namespace}/{name}",
            self._core.read_namespaced_service_account,
            name,
            namespace,
        )

    def list_events(self, namespace: str, *, field_selector: str | None = None) -> list[JsonObject]:
        kwargs = {"field_selector": field_selector} if field_selector else {}
        reply = self._call(
            f"list events in {namespace}", self._core.list_namespaced_event, namespace, **kwargs
        )
        return list(reply.get("items") or [])

    # --- pods --------------------------------------------------------------------------------

    def create_pod(self, namespace: str, manifest: Mapping[str, Any]) -> JsonObject:
        name = manifest.get("metadata", {}).get("name", "?")
        return self._call(
            f"create pod {namespace}/{name}", self._core.create_namespaced_pod, namespace, body=dict(manifest)
        )

    def read_pod(self, namespace: str, name: str) -> JsonObject:
        return self._call(f"get pod {namespace}/{name}", self._core.read_namespaced_pod, name, namespace)

    def list_pods(
        self, namespace: str | None = None, *, field_selector: str | None = None
    ) -> list[JsonObject]:
        kwargs = {"field_selector": field_selector} if field_selector else {}
        if namespace is None:
            reply = self._call("list pods", self._core.list_pod_for_all_namespaces, **kwargs)
        else:
            reply = self._call(
                f"list pods in {namespace}", self._core.list_namespaced_pod, namespace, **kwargs
            )
        return list(reply.get("items") or [])

    def delete_pod(self, namespace: str, name: str, *, grace_period_seconds: int | None = None) -> None:
        kwargs = {} if grace_period_seconds is None else {"grace_period_seconds": grace_period_seconds}
        self._call(
            f"delete pod {namespace}/{name}", self._core.delete_namespaced_pod, name, namespace, **kwargs
        )

    # --- services: each job's headless Service (adapters/kube_services.py) ----------------------

    def create_service(self, namespace: str, manifest: Mapping[str, Any]) -> JsonObject:
        name = manifest.get("metadata", {}).get("name", "?")
        return self._call(
            f"create service {namespace}/{name}",
            self._core.create_namespaced_service,
            namespace,
            body=dict(manifest),
        )

    def read_service(self, namespace: str, name: str) -> JsonObject:
        return self._call(
            f"get service {namespace}/{name}", self._core.read_namespaced_service, name, namespace
        )

    # --- operator: list+watch, ModelJob status, bindings, events ---------------------------------
    # (appended for `modeljob run`; owned by the operator work, see adapters/cluster_view.py)

    def _collection(self, kind: Watched) -> tuple[Any, tuple[Any, ...]]:
        if kind is Watched.NODES:
            return self._core.list_node, ()
        if kind is Watched.PODS:
            return self._core.list_pod_for_all_namespaces, ()
        if kind is Watched.SERVICES:
            return self._core.list_service_for_all_namespaces, ()
        if kind is Watched.MODELJOBS:
            return client.CustomObjectsApi(self._api).list_cluster_custom_object, MODELJOB_API
        return client.CustomObjectsApi(self._api).list_cluster_custom_object, QUEUE_API

    def list_collection(self, kind: Watched) -> tuple[list[JsonObject], str]:
        """Every object of a kind, cluster-wide, and the list's resourceVersion to watch from."""
        method, args = self._collection(kind)
        reply = self._call(f"list {kind.value}", method, *args)
        return list(reply.get("items") or []), str((reply.get("metadata") or {}).get("resourceVersion", ""))

    def watch_collection(
        self, kind: Watched, *, resource_version: str, timeout_seconds: int = 240
    ) -> Iterator[tuple[str, JsonObject]]:
        """(type, object) events from `resource_version` on; ends when the server closes the watch.

        Raises ClusterError with status 410 when the resourceVersion is too old (list again).
        BOOKMARK events carry only a resourceVersion; callers use it to resume.
        """
        method, args = self._collection(kind)
        yield from self._stream(
            f"watch {kind.value}",
            method,
            *args,
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout_seconds,
            _request_timeout=(10, timeout_seconds + 30),
        )

    def count_pods(self, namespace: str) -> int:
        """How many pods the namespace has, without transferring them (limit=1 and
        remainingItemCount, which the API server gives only for lists without selectors)."""
        reply = self._call(f"count pods in {namespace}", self._core.list_namespaced_pod, namespace, limit=1)
        items = reply.get("items") or []
        return len(items) + int((reply.get("metadata") or {}).get("remainingItemCount") or 0)

    def _modeljobs(self, action: str, verb: str, namespace: str, *args: Any) -> JsonObject:
        """Call one CustomObjectsApi method on the ModelJobs of ``namespace``."""
        group, version, plural = MODELJOB_API
        method = getattr(client.CustomObjectsApi(self._api), verb)
        return self._call(action, method, group, version, namespace, plural, *args)

    def read_modeljob(self, namespace: str, name: str) -> JsonObject:
        return self._modeljobs(
            f"get modeljob {namespace}/{name}", "get_namespaced_custom_object", namespace, name
        )

    def create_modeljob(self, namespace: str, manifest: Mapping[str, Any]) -> JsonObject:
        name = manifest.get("metadata", {}).get("name", "?")
        return self._modeljobs(
            f"create modeljob {namespace}/{name}",
            "create_namespaced_custom_object",
            namespace,
            dict(manifest),
        )

    def patch_modeljob_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> JsonObject:
        """JSON merge patch of the status subresource; a metadata.resourceVersion in the patch makes
        it conditional (409 Conflict if the job changed since)."""
        return self._modeljobs(
            f"patch modeljob {namespace}/{name} status",
            "patch_namespaced_custom_object_status",
            namespace,
            name,
            dict(patch),
        )

    def bind_pod(self, namespace: str, name: str, node: str) -> None:
        """POST pods/binding. _preload_content=False avoids kubernetes-client/python#825 (the reply
        cannot be decoded into V1Binding); 409 means the pod is already assigned."""
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        self._call(
            f"bind pod {namespace}/{name} to {node}",
            self._core.create_namespaced_pod_binding,
            name,
            namespace,
            body,
        )

    def create_event(self, namespace: str, event: Mapping[str, Any]) -> JsonObject:
        return self._call(
            f"create event in {namespace}", self._core.create_namespaced_event, namespace, dict(event)
        )

    def patch_queue_status(self, name: str, patch: Mapping[str, Any]) -> JsonObject:
        """JSON merge patch of a Queue's status (cluster-scoped); conditional as a ModelJob's."""
        group, version, plural = QUEUE_API
        api = client.CustomObjectsApi(self._api)
        return self._call(
            f"patch queue {name} status",
            api.patch_cluster_custom_object_status,
            group,
            version,
            plural,
            name,
            dict(patch),
        )

    # --- leader election: the operator's Lease (adapters/lease.py) -----------------------------
    # Each Lease call is bounded by its ``timeout_seconds`` (None: the client's own, none), sent
    # on ``unretried_client``: a renewal given 8 s could otherwise hang 32. The elector tries
    # again every retry period itself, as client-go does.

    def _lease_api(self) -> client.CoordinationV1Api:
        if self._leases is None:
            self._leases = client.CoordinationV1Api(self.unretried_client())
        return self._leases

    def read_lease(self, namespace: str, name: str, *, timeout_seconds: float | None = None) -> JsonObject:
        return self._call(
            f"get lease {namespace}/{name}",
            self._lease_api().read_namespaced_lease,
            name,
            namespace,
            **_timeout(timeout_seconds),
        )

    def create_lease(
        self, namespace: str, manifest: Mapping[str, Any], *, timeout_seconds: float | None = None
    ) -> JsonObject:
        """POST a Lease; AlreadyExistsError if another replica created it first."""
        name = manifest.get("metadata", {}).get("name", "?")
        return self._call(
            f"create lease {namespace}/{name}",
            self._lease_api().create_namespaced_lease,
            namespace,
            dict(manifest),
            **_timeout(timeout_seconds),
        )

    def replace_lease(
        self, namespace: str, manifest: Mapping[str, Any], *, timeout_seconds: float | None = None
    ) -> JsonObject:
        """PUT a Lease; its metadata.resourceVersion makes it conditional (409 if it changed)."""
        name = str(manifest.get("metadata", {}).get("name", "?"))
        return self._call(
            f"update lease {namespace}/{name}",
            self._lease_api().replace_namespaced_lease,
            name,
            namespace,
            dict(manifest),
            **_timeout(timeout_seconds),
        )


def _timeout(seconds: float | None) -> dict[str, float]:
    """The generated client's per-call timeout (it reads 0 as none, hence the floor)."""
    return {} if seconds is None else {"_request_timeout": max(seconds, 0.001)}


# --- operator: what it lists and watches ------------------------------------------------------

MODELJOB_API = ("modeljob.dev", "v1alpha1", "modeljobs")
QUEUE_API = ("modeljob.dev", "v1alpha1", "queues")


class Watched(StrEnum):
    """The collections the operator keeps a watch-fed copy of (cluster-wide)."""

    NODES = "nodes"
    PODS = "pods"
    MODELJOBS = "modeljobs"
    QUEUES = "queues"
    SERVICES = "services"  # the extender's shortlist: which pods a Service selects
