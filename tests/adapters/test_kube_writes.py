"""What the operator writes: each replica's Pod (the estimate, its owner, the product pin, what it
needs to run: hostname, rendezvous and layout env, /dev/shm, restart policy), names, Events."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from modeljob.adapters import kube_jobs, kube_pods, kube_writes, pod_env
from modeljob.adapters.job_fields import ObjectError
from modeljob.core.resources import GIB, MIB, TIB, Resources, parse_bytes
from modeljob.core.sizing import Device, Estimate, size_replica
from tests.operator_builders import H100, at, container, modeljob_dict

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "crds" / "examples"


def _estimate(document: dict[str, Any]) -> Estimate:
    return size_replica(kube_jobs.job_facts(document).shape, Device(80 * GIB, 8))


def _pod(document: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    estimate = _estimate(document)
    arguments: dict[str, Any] = {
        "replica": 1,
        "name": "llama-3-1-8b-chat-1-abcde",
        "requests": Resources(
            cpu_milli=estimate.cpu_milli,
            memory_bytes=estimate.memory_bytes,
            ephemeral_storage_bytes=estimate.ephemeral_storage_bytes,
            gpus=estimate.gpus,
        ),
        "layout": kube_writes.PodLayout.of(estimate),
        "accelerator": "nvidia.com/gpu",
        "product": H100,
        "scheduler_name": "modeljob",
        "product_label": "nvidia.com/gpu.product",
    }
    arguments.update(overrides)
    return kube_writes.pod_manifest(document, **arguments)


def test_pod_requests_exactly_the_estimate_and_is_owned_by_its_job() -> None:
    document = modeljob_dict()
    pod = _pod(document)
    requests, accelerator = kube_pods.pod_requests(pod["spec"])
    estimate = size_replica(kube_jobs.job_facts(document).shape, Device(80 * GIB, 8))
    assert requests == Resources(
        cpu_milli=estimate.cpu_milli,
        memory_bytes=estimate.memory_bytes,
        ephemeral_storage_bytes=estimate.ephemeral_storage_bytes,
        gpus=estimate.gpus,
    )
    assert accelerator == "nvidia.com/gpu"
    main = pod["spec"]["containers"][0]
    assert main["resources"]["limits"] == {
        "memory": main["resources"]["requests"]["memory"],
        "nvidia.com/gpu": str(estimate.gpus),
    }
    assert pod["spec"]["schedulerName"] == "modeljob"
    assert "nodeName" not in pod["spec"]
    owner = pod["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == (
        "ModelJob",
        "uid-llama-3.1-8b-inference",
        True,
    )
    assert pod["metadata"]["labels"][kube_pods.LABEL_REPLICA] == "1"
    assert pod["metadata"]["annotations"][kube_pods.ANNOTATION_SPEC_HASH] == kube_jobs.spec_hash(
        document["spec"]
    )
    facts = kube_pods.pod_facts(pod)
    assert (facts.job_uid, facts.replica) == ("uid-llama-3.1-8b-inference", 1)


def test_a_pod_given_its_node_is_bound_by_its_creation() -> None:
    assert _pod(modeljob_dict(), node="gpu-h100-1")["spec"]["nodeName"] == "gpu-h100-1"
    assert "nodeName" not in _pod(modeljob_dict())["spec"], "without a node, left to pods/binding"


def test_pod_is_pinned_to_the_gpu_product_within_the_templates_own_affinity() -> None:
    own_term = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
    template = {
        "spec": {
            "containers": [container()],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [own_term]}
                }
            },
        }
    }
    pod = _pod(modeljob_dict(template=template))
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms == [
        {
            "matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["a"]},
                {"key": "nvidia.com/gpu.product", "operator": "In", "values": [H100]},
            ]
        }
    ]


def test_sidecars_keep_their_own_requests() -> None:
    template = {"spec": {"containers": [container(), container("proxy", requests={"cpu": "250m"})]}}
    pod = _pod(modeljob_dict(template=template))
    assert pod["spec"]["containers"][1]["resources"] == {"requests": {"cpu": "250m"}}
    assert kube_jobs.job_facts(modeljob_dict(template=template)).extra_requests == Resources(cpu_milli=250)


def test_pod_names_stay_within_the_limit_and_differ_per_attempt() -> None:
    long = "j" * 300
    assert len(kube_writes.pod_name(long, 12, "abcde")) == 253
    assert kube_writes.pod_name("job", 0, "abcde") == "job-0-abcde"
    assert kube_writes.placement_nonce("uid", "1") != kube_writes.placement_nonce("uid", "2")


def test_event_names_the_job_it_is_about() -> None:
    event = kube_writes.event_manifest(
        modeljob_dict(), warning=True, reason="NodeLost", message="node gone", now=at(0), instance="op-1"
    )
    assert event["involvedObject"] == {
        "apiVersion": "modeljob.dev/v1alpha1",
        "kind": "ModelJob",
        "name": "llama-3-1-8b-chat",
        "namespace": "ml",
        "uid": "uid-llama-3.1-8b-inference",
    }
    assert (event["type"], event["reason"], event["message"]) == ("Warning", "NodeLost", "node gone")
    assert event["metadata"] == {"generateName": "llama-3-1-8b-chat.", "namespace": "ml"}


@pytest.mark.parametrize(
    ("value", "quantity"),
    [
        (80 * GIB, "80Gi"),
        (157 * GIB + GIB // 2, "157.5Gi"),
        (1536 * MIB, "1.5Gi"),
        (165_153_601 * 1024, "165153601Ki"),
        (3 * TIB // 4, "768Gi"),
        (1001, "1001"),
    ],
    ids=["whole-gib", "half-gib", "mib-as-gib", "only-kib", "under-a-tib", "bytes"],
)
def test_memory_requests_are_written_as_exact_readable_quantities(value: int, quantity: str) -> None:
    assert kube_writes.bytes_quantity(value) == quantity
    assert parse_bytes(quantity) == value, "the quantity means exactly the bytes"


def test_a_pods_memory_request_reads_as_a_quantity_not_raw_bytes() -> None:
    pod = _pod(modeljob_dict(), requests=Resources(cpu_milli=4000, memory_bytes=157 * GIB + GIB // 2, gpus=1))
    assert pod["spec"]["containers"][0]["resources"]["requests"]["memory"] == "157.5Gi"


def test_a_pod_the_api_server_refuses_is_explained_with_the_modeljobs_field_names() -> None:
    detail = (
        'Pod "job-0-abcde" is invalid: [spec.containers[0].name: Invalid value: "Server_1": a lowercase '
        "RFC 1123 label must consist of lower case alphanumeric characters or '-', spec.restartPolicy: "
        'Unsupported value: "never": supported values: "Always", "OnFailure", "Never"]'
    )
    message = kube_writes.refused_pod_message(detail)
    assert message.startswith('[spec.template.spec.containers[0].name: Invalid value: "Server_1"')
    assert 'spec.template.spec.restartPolicy: Unsupported value: "never"' in message
    assert "job-0-abcde" not in message, "the pod's name means nothing to the job's owner"


# --- what each pod needs to run -----------------------------------------------------------------

# RFC 1035, what a Service name must be (a pod's subdomain is the Service's name, so it too).
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_TRAINING = "llama-2-13b-training-zero3"  # llama-2-13b-sft: 4 replicas, ZeRO-3, one trainer container


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"]}


def _names(container: dict[str, Any]) -> list[str]:
    return [item["name"] for item in container["env"]]


def test_each_pod_has_a_stable_hostname_under_the_jobs_headless_service() -> None:
    pod = _pod(modeljob_dict(), replica=3)
    assert (pod["spec"]["hostname"], pod["spec"]["subdomain"]) == ("llama-3-1-8b-chat-3", "llama-3-1-8b-chat")
    assert (
        pod_env.rendezvous_address("llama-3-1-8b-chat", "ml")
        == "llama-3-1-8b-chat-0.llama-3-1-8b-chat.ml.svc"
    )


@pytest.mark.parametrize(
    ("job", "index", "hostname", "subdomain"),
    [
        ("j" * 61, 0, "j" * 61 + "-0", "j" * 61),
        ("j" * 63, 0, "j" * 61 + "-0", "j" * 63),
        ("j" * 63, 1234, "j" * 58 + "-1234", "j" * 63),
        ("a" * 60 + "-bc", 7, "a" * 60 + "-7", "a" * 60 + "-bc"),  # no "--7" where the cut falls on a dash
        ("llama-3.1-8b", 2, "llama-3-1-8b-2", "llama-3-1-8b"),
        ("x" * 200 + ".y", 0, "x" * 61 + "-0", "x" * 63),
        ("13b-sft", 3, "mj-13b-sft-3", "mj-13b-sft"),
        ("7" * 63, 0, "mj-" + "7" * 58 + "-0", "mj-" + "7" * 60),
    ],
    ids=[
        "61-chars",
        "63-chars",
        "long-index",
        "cut-at-a-dash",
        "dots",
        "subdomain-name",
        "digit-first",
        "digits",
    ],
)
def test_long_or_dotted_job_names_are_cut_to_dns_labels_keeping_the_index(
    job: str, index: int, hostname: str, subdomain: str
) -> None:
    assert kube_writes.pod_hostname(job, index) == hostname
    assert kube_writes.job_dns_label(job) == subdomain
    assert _DNS_LABEL.match(hostname)
    assert _DNS_LABEL.match(subdomain)


@pytest.mark.parametrize("field", ["hostname", "subdomain"])
def test_a_template_that_names_its_pods_itself_is_refused_naming_the_field(field: str) -> None:
    template = {"spec": {"containers": [container()], field: "mine"}}
    with pytest.raises(ObjectError, match=rf"^spec\.template\.spec\.{field}: must not be set"):
        kube_jobs.parse_spec(modeljob_dict(template=template))


def test_a_training_pod_gets_the_rendezvous_and_the_layout_of_its_rank() -> None:
    document = modeljob_dict(_TRAINING)
    estimate = _estimate(document)
    pods = [_pod(document, replica=index, name=f"llama-2-13b-sft-{index}-abcde") for index in range(4)]
    envs = [_env(pod["spec"]["containers"][0]) for pod in pods]
    master = "llama-2-13b-sft-0.llama-2-13b-sft.ml.svc"
    assert envs[2] == {
        "MASTER_ADDR": master,
        "MASTER_PORT": "29500",
        "WORLD_SIZE": "4",
        "RANK": "2",
        "NODE_RANK": "2",
        "PET_NNODES": "4",
        "PET_NPROC_PER_NODE": str(estimate.gpus),
        "PET_NODE_RANK": "2",
        "PET_MASTER_ADDR": master,
        "PET_MASTER_PORT": "29500",
        "MODELJOB_JOB": "llama-2-13b-sft",
        "MODELJOB_REPLICA": "2",
        "MODELJOB_REPLICAS": "4",
        "MODELJOB_GPUS_PER_POD": str(estimate.gpus),
        "MODELJOB_TENSOR_PARALLEL_SIZE": str(estimate.tensor_parallel_size),
        "MODELJOB_PIPELINE_PARALLEL_SIZE": "1",
        "MODELJOB_NODES_PER_REPLICA": "1",
    }
    assert [env["RANK"] for env in envs] == ["0", "1", "2", "3"]
    assert {env["MASTER_ADDR"] for env in envs} == {master}
    assert [pod["spec"]["hostname"] for pod in pods] == [f"llama-2-13b-sft-{i}" for i in range(4)]


def test_the_tensor_parallel_size_is_the_one_the_estimator_chose() -> None:
    document = modeljob_dict("llama-3.1-70b-inference")
    estimate = _estimate(document)
    assert (estimate.gpus, estimate.tensor_parallel_size, estimate.pipeline_parallel_size) == (4, 4, 1)
    env = _env(_pod(document)["spec"]["containers"][0])
    assert (
        env["MODELJOB_TENSOR_PARALLEL_SIZE"],
        env["MODELJOB_GPUS_PER_POD"],
        env["PET_NPROC_PER_NODE"],
    ) == (
        "4",
        "4",
        "4",
    )


def test_the_70b_example_tells_vllm_the_tensor_parallel_size_it_was_placed_for() -> None:
    # The example's args refer to $(MODELJOB_TENSOR_PARALLEL_SIZE): the variable must be defined in
    # the same container, earlier than anything that refers to it, for Kubernetes to expand it.
    server = _pod(modeljob_dict("llama-3.1-70b-inference"))["spec"]["containers"][0]
    assert (
        server["args"][server["args"].index("--tensor-parallel-size") + 1]
        == "$(MODELJOB_TENSOR_PARALLEL_SIZE)"
    )
    assert _env(server)["MODELJOB_TENSOR_PARALLEL_SIZE"] == "4"


def test_a_gpu_override_that_is_not_a_power_of_two_is_told_its_pipeline_stages() -> None:
    document = modeljob_dict("llama-3.1-70b-inference", resources={"gpus": 6})
    env = _env(_pod(document)["spec"]["containers"][0])
    assert (env["MODELJOB_TENSOR_PARALLEL_SIZE"], env["MODELJOB_PIPELINE_PARALLEL_SIZE"]) == ("2", "3")


def test_the_rendezvous_port_is_the_specs() -> None:
    env = _env(_pod(modeljob_dict(_TRAINING, rendezvous={"port": 23456}))["spec"]["containers"][0])
    assert (env["MASTER_PORT"], env["PET_MASTER_PORT"]) == ("23456", "23456")


def test_the_users_own_env_wins_and_can_refer_to_what_is_injected() -> None:
    trainer = {
        **container("trainer"),
        "env": [
            {"name": "MASTER_PORT", "value": "1234"},
            {"name": "INIT_METHOD", "value": "tcp://$(MASTER_ADDR):$(MASTER_PORT)"},
        ],
        "args": ["--tensor-parallel-size=$(MODELJOB_TENSOR_PARALLEL_SIZE)"],
    }
    pod = _pod(modeljob_dict(_TRAINING, template={"spec": {"containers": [trainer]}}))
    names = _names(pod["spec"]["containers"][0])
    assert names.count("MASTER_PORT") == 1, "one definition: the user's"
    assert _env(pod["spec"]["containers"][0])["MASTER_PORT"] == "1234"
    # Kubernetes expands $(VAR) only from entries earlier in the list: the injected ones come first.
    assert names.index("MASTER_ADDR") < names.index("INIT_METHOD")
    assert names[-2:] == ["MASTER_PORT", "INIT_METHOD"]


def test_every_container_and_init_container_gets_the_env() -> None:
    template = {
        "spec": {
            "initContainers": [container("wait-for-rank-0")],
            "containers": [container("trainer"), container("sidecar")],
        }
    }
    pod = _pod(modeljob_dict(_TRAINING, template=template), replica=1)
    every = [*pod["spec"]["initContainers"], *pod["spec"]["containers"]]
    assert [_env(c)["RANK"] for c in every] == ["1", "1", "1"]


def test_multi_gpu_pods_mount_the_counted_shared_memory_at_dev_shm() -> None:
    document = modeljob_dict("llama-3.1-70b-inference")
    pod = _pod(document)
    assert pod["spec"]["volumes"] == [
        {"name": "modeljob-shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}}
    ]
    assert pod["spec"]["containers"][0]["volumeMounts"] == [{"name": "modeljob-shm", "mountPath": "/dev/shm"}]
    assert "shared memory 16.0 GiB" in " ".join(
        rule.explanation for rule in _estimate(document).rules if rule.field == "memoryBytes"
    ), "the size mounted is the size the estimate counts"


def test_a_single_gpu_pod_mounts_one_gib_of_shared_memory() -> None:
    pod = _pod(modeljob_dict())
    assert pod["spec"]["volumes"][0]["emptyDir"]["sizeLimit"] == "1Gi"


def test_a_container_that_mounts_its_own_dev_shm_keeps_it() -> None:
    own = {**container("server"), "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm/"}]}
    template = {"spec": {"containers": [own], "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory"}}]}}
    pod = _pod(modeljob_dict(template=template))
    assert pod["spec"]["volumes"] == [{"name": "shm", "emptyDir": {"medium": "Memory"}}]
    assert pod["spec"]["containers"][0]["volumeMounts"] == own["volumeMounts"]


@pytest.mark.parametrize(
    ("example", "template_policy", "policy"),
    [
        (_TRAINING, None, "Never"),
        ("llama-2-7b-lora", None, "Never"),
        ("llama-65b-qlora", None, "Never"),
        (_TRAINING, "OnFailure", "OnFailure"),
        ("llama-3.1-8b-inference", None, None),
    ],
    ids=["training", "lora", "qlora", "template-says", "inference-default"],
)
def test_training_pods_do_not_restart_when_they_finish(
    example: str, template_policy: str | None, policy: str | None
) -> None:
    document = modeljob_dict(example)
    if template_policy:
        document["spec"]["template"]["spec"]["restartPolicy"] = template_policy
    assert _pod(document)["spec"].get("restartPolicy") == policy


@pytest.mark.parametrize("example", sorted(p.stem for p in EXAMPLES_DIR.glob("*.yaml")))
def test_every_examples_pods_define_each_name_once(example: str) -> None:
    pod = _pod(modeljob_dict(example))
    for c in pod["spec"]["containers"]:
        assert len(_names(c)) == len(set(_names(c)))
        assert len({m["mountPath"] for m in c["volumeMounts"]}) == len(c["volumeMounts"])
    assert len({v["name"] for v in pod["spec"]["volumes"]}) == len(pod["spec"]["volumes"])
    assert _DNS_LABEL.match(pod["spec"]["hostname"])
    assert _DNS_LABEL.match(pod["spec"]["subdomain"])
