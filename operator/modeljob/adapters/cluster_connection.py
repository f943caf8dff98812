"""How the cluster gateway reaches one API server: credentials, connections, retries, and each
call's JSON reply decoded as a dict or its failure translated into a ClusterError.

With adapters/cluster.py, the only importers of the `kubernetes` client.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from modeljob.adapters.cluster_errors import (
    AlreadyExistsError,
    ClusterError,
    ForbiddenError,
    NotFoundError,
)

JsonObject = dict[str, Any]

# One HTTP connection per worker thread: the client's default pool of 4 connections makes
# parallel callers (bulk node creation) queue for a socket.
DEFAULT_CONNECTIONS = 32


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


class ApiConnection:
    """One API server's HTTP client and credentials, and the plumbing every typed call shares.
    Thread-safe: the underlying HTTP pool is shared."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._api = api_client
        self.server = str(api_client.configuration.host)
        self._unretried: client.ApiClient | None = None  # made on the first call for it

    @classmethod
    def from_kubeconfig(
        cls, path: Path | None = None, *, context: str | None = None, connections: int = DEFAULT_CONNECTIONS
    ) -> Self:
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

    @classmethod
    def in_cluster(cls, *, connections: int = DEFAULT_CONNECTIONS) -> Self:
        """Connect as the pod's service account (the operator's Deployment)."""
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except ConfigException as exc:
            raise ClusterError(f"cannot load the in-cluster service account: {exc}") from None
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
        callers try again themselves (the next retry period, the next cycle). One client for
        them all: a standby's Lease reads keep open the connection its first fenced write goes
        on when it takes over, instead of a new TLS handshake added to the failover."""
        if self._unretried is None:
            configuration = copy.copy(self._api.configuration)
            configuration.retries = False
            self._unretried = client.ApiClient(configuration)
        return self._unretried

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

    # --- plumbing ----------------------------------------------------------------------------

    def _send(self, action: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        """Send one generated client method's request; its reply unread (the caller releases it).
        API errors and an unreachable server become ClusterErrors naming ``action``."""
        try:
            return method(*args, _preload_content=False, **kwargs)
        except ApiException as exc:
            raise _translate(exc, action) from None
        except urllib3.exceptions.HTTPError as exc:
            raise ClusterError(f"{action}: cannot reach the API server at {self.server}: {exc}") from None

    def _call(self, action: str, method: Any, *args: Any, **kwargs: Any) -> JsonObject:
        """Call one generated client method and decode its JSON reply as a dict."""
        response = self._send(action, method, *args, **kwargs)
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

    # --- watches -----------------------------------------------------------------------------

    def _stream(
        self, action: str, method: Any, *args: Any, **kwargs: Any
    ) -> Iterator[tuple[str, JsonObject]]:
        """Call one generated client method as a watch and yield its (type, object) events until
        the server closes it; an ERROR event becomes a ClusterError with the event's status."""
        response = self._send(action, method, *args, **kwargs)
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
