"""Print, for `kubectl get modeljobs -o json` on stdin, where each replica went and why (hack/demo.sh).

The optional argument is `kubectl get events -o json` of the same namespace: each job's latest
Scheduled Event holds the detail behind its one-line condition (every node type tried, and what
set each replica's node apart from the runner-up).
"""

import json
import sys
from pathlib import Path

events = json.loads(Path(sys.argv[1]).read_text())["items"] if len(sys.argv) > 1 else []
scheduled_events = {
    event["involvedObject"]["name"]: event["message"]
    for event in sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    if event.get("reason") == "Scheduled" and event["involvedObject"].get("kind") == "ModelJob"
}

GIB = 2**30


def split_outside_parentheses(text: str) -> list[str]:
    """The Event's "; "-separated parts, keeping "(score 0.50; why)" whole."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and text.startswith("; ", i):
            parts.append(text[start:i])
            start = i + 2
    return [*parts, text[start:]] if text else []


for job in json.load(sys.stdin)["items"]:
    name, status = job["metadata"]["name"], job.get("status") or {}
    estimate = status.get("estimate") or {}
    print(f"\n{name}: {status.get('phase')}")
    if estimate:
        device = estimate.get("deviceMemoryBytes", 0) / GIB
        used = estimate["gpuMemoryPerGpuBytes"] / GIB
        host = (
            f"{estimate['cpuMilli'] / 1000:g} CPU, {estimate['memoryBytes'] / GIB:.0f} GiB RAM, "
            f"{estimate['ephemeralStorageBytes'] / GIB:.0f} GiB disk"
        )
        gpus = f"{estimate['gpus']} GPU(s) of {device:.0f} GiB ({used:.1f} GiB used on each)"
        print(f"  sized per replica: {gpus}, {host}")
    for entry in status.get("placement") or []:
        score = f" (score {entry['score']:.2f})" if entry.get("score") is not None else ""
        member = f" pod {entry['member']}" if "member" in entry else ""  # a replica that spans nodes
        print(f"  replica {entry['replica']}{member} -> {entry['node']}{score}, pod {entry['pod']}")
    scheduled = next((c for c in status.get("conditions") or [] if c["type"] == "Scheduled"), None)
    why = scheduled["message"] if scheduled else status.get("message", "")
    if why:
        print(f"  why: {why}")
    detail = split_outside_parentheses(scheduled_events.get(name, ""))
    if len(detail) > 1:
        print("  detail (the Scheduled Event):")
        for line in detail[1:]:
            print(f"    {line}")
