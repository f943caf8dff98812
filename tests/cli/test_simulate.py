"""`modeljob simulate`: reading every openb file format, its outputs, and one clear error per bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modeljob.cli import main

NODE_HEADER = "sn,cpu_milli,memory_mib,gpu,model"
POD_HEADER = ",".join(
    (
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec",
        "qos,pod_phase,creation_time,deletion_time,scheduled_time",
    )
)
MULTIGPU_HEADER = "name,cpu_milli,memory_mib,num_gpu,gpu_milli"


def write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def pod_row(
    name: str, *, cpu: int = 8000, memory: int = 16384, gpus: int = 1, milli: int = 1000, spec: str = ""
) -> str:
    return f"{name},{cpu},{memory},{gpus},{milli},{spec},LS,Running,0,100,0"


@pytest.fixture
def nodes(tmp_path: Path) -> Path:
    return write(
        tmp_path / "openb_node_list_gpu_node.csv",
        NODE_HEADER,
        [
            "openb-node-0000,96000,393216,8,G2",
            "openb-node-0001,104000,524288,2,T4",
            "openb-node-0002,32000,65536,0,",
        ],
    )


@pytest.fixture
def pods(tmp_path: Path) -> Path:
    rows = [
        pod_row(f"openb-pod-{i:04d}", milli=(1000, 500, 250)[i % 3], spec="T4" if i == 4 else "")
        for i in range(9)
    ]
    rows.append(pod_row("openb-pod-0009", gpus=0, milli=0))
    return write(tmp_path / "openb_pod_list_small.csv", POD_HEADER, rows)


def simulate(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["simulate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_output_has_the_curves_indexed_by_arrived_percent(capsys, nodes, pods) -> None:
    code, out, err = simulate(
        capsys, "--nodes", str(nodes), "--pods", str(pods), "--policy", "fgd", "--seed", "7", "-o", "json"
    )
    assert (code, err) == (0, "")
    result = json.loads(out)
    assert result["policy"] == "fgd"
    assert result["seed"] == 7
    assert result["capacityGpus"] == 10
    assert isinstance(result["failedPods"], int)
    assert len(result["allocationPercentByArrivedPercent"]) == 131
    assert len(result["fragmentationPercentByArrivedPercent"]) == 131
    assert result["podsArrived"] >= 10


def test_the_same_seed_gives_the_same_replay(capsys, nodes, pods) -> None:
    args = ("--nodes", str(nodes), "--pods", str(pods), "--policy", "random", "-o", "json")
    assert simulate(capsys, *args, "--seed", "3")[1] == simulate(capsys, *args, "--seed", "3")[1]


def test_weights_change_the_default_policys_choices(capsys, nodes, pods) -> None:
    # Spreading (least-allocated alone) and the default weights place this trace differently;
    # naming the default's own weights changes nothing.
    def curve(*extra: str) -> list[float | None]:
        code, out, _ = simulate(
            capsys, "--nodes", str(nodes), "--pods", str(pods), "--tune", "0", "-o", "json", *extra
        )
        assert code == 0
        return json.loads(out)["fragmentationPercentByArrivedPercent"]

    default = curve()
    assert curve("--weights", "gpu-fragmentation=1,cpu-balance=3") == default
    spread = "least-allocated=1,gpu-fragmentation=0,cpu-balance=0,best-fit=0"
    assert curve("--weights", spread) != default


def test_table_output_summarises_the_curve(capsys, nodes, pods) -> None:
    code, out, _ = simulate(capsys, "--nodes", str(nodes), "--pods", str(pods))
    assert code == 0
    assert out.startswith("policy default, seed 42, tune 1.3:")
    assert "arrived %" in out


def test_five_column_multigpu_files_are_read(capsys, nodes, tmp_path) -> None:
    pods = write(
        tmp_path / "openb_pod_list_multigpu20.csv",
        MULTIGPU_HEADER,
        [
            "openb-pod-0000,12000,16384,1,1000",
            "openb-pod-0001,6000,12288,1,460",
            "openb-pod-0002,48000,65536,4,1000",
        ],
    )
    code, out, _ = simulate(
        capsys, "--nodes", str(nodes), "--pods", str(pods), "--policy", "best-fit", "-o", "json"
    )
    assert code == 0
    assert json.loads(out)["policy"] == "best-fit"


def test_plot_draws_the_curve_against_the_published_baselines(capsys, nodes, pods, tmp_path) -> None:
    reference = tmp_path / "reference"
    reference.mkdir()
    columns = ",".join(str(i) for i in range(131))
    values = ",".join(str(min(i, 90)) for i in range(131))
    write(
        reference / "analysis_allo_discrete.csv",
        f"workload,sc_policy,tune,seed,total_gpus,{columns}",
        [f"openb_pod_list_small,06-FGD,1.3,{seed},10,{values}" for seed in (42, 43)],
    )
    picture = tmp_path / "curve.png"
    code, out, _ = simulate(
        capsys,
        "--nodes",
        str(nodes),
        "--pods",
        str(pods),
        "--plot",
        str(picture),
        "--reference-dir",
        str(reference),
    )
    assert code == 0
    assert picture.read_bytes().startswith(b"\x89PNG")
    assert "06-FGD" in out


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([pod_row("p0"), "p1,8000,16384,1"], ":3: row: expected 11 columns as in the header, found 4"),
        ([pod_row("p0", cpu=-1000)], ":2: cpu_milli: must not be negative, got -1000"),
        ([pod_row("p0", memory=-5)], ":2: memory_mib: must not be negative, got -5"),
        (
            [pod_row("p0").replace(",8000,", ",8 cores,")],
            ":2: cpu_milli: expected a whole number, got '8 cores'",
        ),
        ([pod_row("p0", milli=1500)], ":2: gpu_milli: must be at most 1000, got 1500"),
        ([pod_row("p0", gpus=2, milli=500)], ":2: gpu_milli: a task with 2 GPUs must ask for whole devices"),
        ([pod_row("p0", gpus=1, milli=0)], ":2: gpu_milli: must be 1..1000 when num_gpu is 1, got 0"),
        ([pod_row("p0"), pod_row("p0")], ":3: name: duplicate name 'p0' (first on line 2)"),
        ([], ":2: row: the file has a header but no rows"),
    ],
    ids=[
        "short-row",
        "negative-cpu",
        "negative-memory",
        "not-a-number",
        "share-above-one-device",
        "multi-gpu-share",
        "gpu-without-share",
        "duplicate-name",
        "no-rows",
    ],
)
def test_a_bad_pod_row_is_one_error_naming_file_line_and_column(
    capsys, nodes, tmp_path, rows, message
) -> None:
    pods = write(tmp_path / "pods.csv", POD_HEADER, rows)
    code, out, err = simulate(capsys, "--nodes", str(nodes), "--pods", str(pods))
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"error: {pods}")
    assert message in err


def test_a_missing_column_is_named_with_the_header_it_found(capsys, nodes, tmp_path) -> None:
    pods = write(tmp_path / "pods.csv", "name,cpu_milli,memory_mib,num_gpu", ["p0,8000,16384,1"])
    code, _, err = simulate(capsys, "--nodes", str(nodes), "--pods", str(pods))
    assert code == 2
    header = "name, cpu_milli, memory_mib, num_gpu"
    assert err == f"error: {pods}:1: gpu_milli: missing column (the header has: {header})\n"


def test_a_bad_node_row_names_the_node_file(capsys, pods, tmp_path) -> None:
    nodes = write(tmp_path / "nodes.csv", NODE_HEADER, ["n0,96000,393216,-8,G2"])
    code, _, err = simulate(capsys, "--nodes", str(nodes), "--pods", str(pods))
    assert code == 2
    assert err == f"error: {nodes}:2: gpu: must not be negative, got -8\n"


def test_a_cluster_without_gpus_is_refused(capsys, pods, tmp_path) -> None:
    nodes = write(tmp_path / "nodes.csv", NODE_HEADER, ["n0,96000,393216,0,"])
    code, _, err = simulate(capsys, "--nodes", str(nodes), "--pods", str(pods))
    assert code == 2
    assert "no node has a GPU" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--policy", "tetris"), "error: --policy: unknown policy 'tetris'; choose one of random, dotprod,"),
        (("-o", "yaml"), "error: -o/--output: unknown format 'yaml'; choose table or json"),
        (("--tune", "-1"), "error: --tune: must be between 0 and 10, got -1.0"),
        (("--tune", "nan"), "error: --tune: must be between 0 and 10, got nan"),
        (("--weights", "tetris=1"), "error: --weights: unknown scorer 'tetris'; known: least_allocated,"),
        (("--weights", "best-fit"), "error: --weights: expected SCORER=WEIGHT, got 'best-fit'"),
        (("--weights", "best-fit=-1"), "error: --weights: best_fit: must be between 0 and 1000.0, got '-1'"),
        (("--weights", "best-fit=x"), "error: --weights: best_fit: expected a number, got 'x'"),
        (
            ("--weights", "gpu-fragmentation=0,cpu-balance=0,best-fit=0,template-preferences=0"),
            "error: --weights: at least one scoring weight must be above 0",
        ),
        (
            ("--policy", "fgd", "--weights", "best-fit=1"),
            "error: --weights: only the default policy has weights; --policy is fgd",
        ),
    ],
    ids=[
        "unknown-policy",
        "unknown-format",
        "negative-tune",
        "nan-tune",
        "unknown-scorer",
        "weight-without-value",
        "negative-weight",
        "weight-not-a-number",
        "all-weights-zero",
        "weights-for-a-baseline",
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(capsys, nodes, pods, args, message) -> None:
    code, out, err = simulate(capsys, "--nodes", str(nodes), "--pods", str(pods), *args)
    assert (code, out) == (2, "")
    assert err.startswith(message)
    assert err.count("\n") == 1


def test_a_missing_file_is_named(capsys, nodes, tmp_path) -> None:
    missing = tmp_path / "nope.csv"
    code, _, err = simulate(capsys, "--nodes", str(nodes), "--pods", str(missing))
    assert code == 2
    assert err.startswith(f"error: {missing}: cannot read:")
