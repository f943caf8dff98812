"""kube-scheduler's HTTP extender (filter, prioritize, bind) answering with the operator's core scoring.

`wire` decodes and encodes kube-scheduler's JSON (k8s.io/kube-scheduler/extender/v1), `cache`
keeps the watched nodes and pods as a node table the core scores, `decisions` turns core
results into extender answers, `routes` and `server` are the aiohttp application.
"""
