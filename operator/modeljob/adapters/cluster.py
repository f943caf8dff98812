"""The cluster gateway: the only importer of the `kubernetes` client; its errors become ClusterError.

Objects go in and come out as plain Kubernetes dicts (the JSON the API server speaks), never as
the client's generated model classes: `kube_nodes`, `kube_pods` and `kube_jobs` translate dicts to
core values, and raw JSON is several times faster to decode than the models when listing thousands
of nodes.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

JsonObject = dict[str, Any]

# One HTTP connection per worker thread: the client's default pool of 4 connections makes
# parallel callers (bulk node creation) queue for a socket.
DEFAULT_CONNECTIONS = 32


class ClusterError(Exception):
    """A failed call to the API server: unreachable, refused, or an error status."""

    def __init__(
        self, message: str, *, status: int | None = None, reason: str = "", detail: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status  # HTTP status, None when the server was not reached
        self.reason = reason  # the Status reason, e.g. "AlreadyExists", "Forbidden"
        self.detail = detail or message  # the API server's own message, without our prefix

    @property
    def refused(self) -> bool:
        """422 Unprocessable: the object itself is invalid; sending it again cannot succeed."""
        return self.status == 422


class NotFoundError(ClusterError):
    """404: the object (or its namespace) does not exist."""


class AlreadyExistsError(ClusterError):
    """409 AlreadyExists on create."""


class ForbiddenError(ClusterError):
    """401/403: the caller is not authenticated, or RBAC refuses the verb."""


class NotLeaderError(ClusterError):
    """A write the scheduling loop was about to send, not sent: this replica cannot prove it still
    holds the leader Lease (adapters/lease.py's fencing)."""


def _translate(exc: ApiException, action: str) -> ClusterError:
    status = int(exc.status) if exc.status else None
    reason, message = str(exc.reason or ""), str(exc.reason or "")
    if exc.body:
        try:
            body = json.loads(exc.body)
        except (ValueError, TypeError):
            body = None
        if isinstance(body, dict):
            reason = str(body.get("reason") or reason)
            message = str(body.get("message") or message)
    text = f"{action}: {status} {reason}: {message}"
    kind = ClusterError
    if status == 404:
        kind = NotFoundError
    elif status == 409 and reason == "AlreadyExists":
        kind = AlreadyExistsError
    elif status in {401, 403}:
        kind = ForbiddenError
    return kind(text, status=status, reason=reason, detail=message)


class ClusterGateway:
    """Typed calls to one API server. Thread-safe: the underlying HTTP pool is shared."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._api = api_client
        self._core = client.CoreV1Api(api_client)
        self.server = str(api_client.configuration.host)
        self._leases: client.CoordinationV1Api | None = None  # made on the first Lease call

    @classmethod
    def from_kubeconfig(
        cls, path: Path | None = None, *, context: str | None = None, connections: int = DEFAULT_CONNECTIONS
    ) -> ClusterGateway:
        """Connect with a kubeconfig file (None: $KUBECONFIG, else ~/.kube/config)."""
        configuration = client.Configuration()
        try:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(path) if path is not None else None,
                context=context,
                client_configuration=configuration,
            )
        except (ConfigException, OSError, TypeError) as exc:
            where = path if path is not None else "$KUBECONFIG or ~/.kube/config"
            raise ClusterError(f"cannot load kubeconfig {where}: {exc}") from None
        configuration.connection_pool_maxsize = connections
        return cls(client.ApiClient(configuration))

    @property
    def api_client(self) -> client.ApiClient:
        """The HTTP client."""
        return self._api

    def unretried_client(self) -> client.ApiClient:
        """A client to the same server with the same credentials, on connections of its own, that
        never repeats a call, so a call's timeout bounds when it can land (the Lease, fenced
        writes): urllib3 by default sends a GET, PUT or DELETE that timed out, and any call that
        could not connect, up to three more times, each with the whole timeout again. Their
        callers try again themselves (the next retry period, the next cycle)."""
        configuration = copy.copy(self._api.configuration)
        configuration.retries = False
        return client.ApiClient(configuration)

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]
        if self._leases is not None:
            self._leases.api_client.close()

    def __enter__(self) -> ClusterGateway:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- plumbing ----------------------------------------------------------------------------

    def _call(self, action: str, method: Any, *args: Any, **kwargs: Any) -> JsonObject:
        """Call one generated client method and decode its JSON reply as a dict."""
        try:
            response = method(*args, _preload_content=False, **kwargs)
        except ApiException as exc:
            raise _translate(exc, action) from None
        except urllib3.exceptions.HTTPError as exc:
            raise ClusterError(f"{action}: cannot reach the API server at {self.server}: {exc}") from None
        try:
            decoded = json.loads(response.data)
        finally:
            response.release_conn()
        if not isinstance(decoded, dict):
            raise ClusterError(
                f"{action}: the API server replied with {type(decoded).__name__}, not an object"
            )
        return decoded

    # --- discovery ---------------------------------------------------------------------------

    def server_version(self) -> str:
        """The server's gitVersion, e.g. v1.36.3."""
        try:
            info = client.VersionApi(self._api).get_code()
        except ApiException as exc:
            raise _translate(exc, "get /version") from None
        except urllib3.exceptions.HTTPError as exc:
            raise ClusterError(f"get /version: cannot reach the API server at {self.server}: {exc}") from None
        return str(info.git_version)

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

    @classmethod
    def in_cluster(cls, *, connections: int = DEFAULT_CONNECTIONS) -> ClusterGateway:
        """Connect as the pod's service account (the operator's Deployment)."""
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except ConfigException as exc:
            raise ClusterError(f"cannot load the in-cluster service account: {exc}") from None
        configuration.connection_pool_maxsize = connections
        return cls(client.ApiClient(configuration))

    def connection(self) -> dict[str, Any]:
        """How this gateway reaches the API server, as kopf.ConnectionInfo's fields, so kopf's own
        client uses the same server and credentials (the in-cluster token is kopf's to refresh)."""
        configuration = self._api.configuration
        keys = configuration.api_key or {}
        token = keys.get("authorization") or keys.get("BearerToken")
        return {
            "server": configuration.host,
            "ca_path": configuration.ssl_ca_cert,
            "insecure": not configuration.verify_ssl,
            "certificate_path": configuration.cert_file,
            "private_key_path": configuration.key_file,
            "token": str(token).removeprefix("Bearer ") if token else None,
        }

    def _collection(self, kind: Watched) -> tuple[Any, tuple[Any, ...]]:
        if kind is Watched.NODES:
            return self._core.list_node, ()
        if kind is Watched.PODS:
            return self._core.list_pod_for_all_namespaces, ()
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
        action = f"watch {kind.value}"
        try:
            response = method(
                *args,
                watch=True,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=timeout_seconds,
                _preload_content=False,
                _request_timeout=(10, timeout_seconds + 30),
            )
        except ApiException as exc:
            raise _translate(exc, action) from None
        except urllib3.exceptions.HTTPError as exc:
            raise ClusterError(f"{action}: cannot reach the API server at {self.server}: {exc}") from None
        try:
            buffer = b""
            for chunk in response.stream(amt=None, decode_content=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    kind_of_event = str(event.get("type", ""))
                    obj = event.get("object") or {}
                    if kind_of_event == "ERROR":
                        code = int(obj.get("code") or 0) or None
                        raise ClusterError(
                            f"{action}: {code} {obj.get('reason', '')}: {obj.get('message', '')}",
                            status=code,
                            reason=str(obj.get("reason", "")),
                        )
                    yield kind_of_event, obj
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise ClusterError(f"{action}: the watch broke: {exc}") from None
        finally:
            response.release_conn()

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
