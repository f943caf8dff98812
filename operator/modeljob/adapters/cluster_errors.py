"""What a failed call to the API server is: ClusterError and the kinds callers tell apart.

Kept apart from the gateway (adapters/cluster.py) so that modules which only catch these errors
need not import the one that imports the `kubernetes` client.
"""

from __future__ import annotations


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
