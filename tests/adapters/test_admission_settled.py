"""A job whose status records its generation is not looked at again while its document stands
(adapters/job_admission.py): the cycle sees the same job, and a new version of the document is
read and judged as any other."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from modeljob.adapters import cluster_view
from tests.adapters.test_operator_admission import NAME, _change_spec, _status, api  # noqa: F401
from tests.adapters.test_operator_scheduling_loop import FakeApiServer, start_operator


def test_an_admitted_jobs_document_is_read_once_until_it_changes(
    api: FakeApiServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read: list[str] = []
    original = cluster_view.ParsedJobs.parse

    def counted(self: cluster_view.ParsedJobs, documents: Iterable[Any]) -> Any:
        documents = list(documents)
        read.extend(d["metadata"]["name"] for d in documents)
        return original(self, documents)

    monkeypatch.setattr(cluster_view.ParsedJobs, "parse", counted)
    loop, view = start_operator(api)
    loop.run_once()  # admitted and planned: its status now records generation 1
    loop.run_once()  # the written status read once
    read.clear()
    first = loop.run_once()
    again = loop.run_once()
    assert read == []
    assert [s.job for s in first.steps if s.job.name == NAME] == [
        s.job for s in again.steps if s.job.name == NAME
    ]
    _change_spec(api, view, lambda spec: spec.update(priority=5))
    loop.run_once()
    assert read == [NAME]
    assert _status(api)["observedGeneration"] == 2
