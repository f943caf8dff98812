"""Print, for `kubectl get modeljobs -o json` on stdin, where each replica went and why (hack/demo.sh)."""

import json
import sys

GIB = 2**30

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
        print(f"  replica {entry['replica']} -> {entry['node']}{score}, pod {entry['pod']}")
    scheduled = next((c for c in status.get("conditions") or [] if c["type"] == "Scheduled"), None)
    why = scheduled["message"] if scheduled else status.get("message", "")
    if why:
        print(f"  why: {why}")
