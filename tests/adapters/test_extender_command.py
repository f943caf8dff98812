"""`modeljob extender`: bad settings or flags are one line naming the culprit (exit 2); no cluster, exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeljob.commands.extender import main


@pytest.mark.parametrize(
    ("argv", "environment", "message"),
    [
        (["--port", "70000"], {}, "error: --port: Input should be less than or equal to 65535"),
        (["--port", "0"], {}, "error: --port: Input should be greater than or equal to 1"),
        (
            [],
            {"MODELJOB_SCORING__COST": "-1"},
            "error: MODELJOB_SCORING: Value error, cost: must be between 0 and",
        ),
    ],
    ids=["port-too-large", "port-zero", "bad-scoring-weight"],
)
def test_bad_settings_are_one_line_and_exit_2(
    argv: list[str],
    environment: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message)
    assert err.count("\n") == 1


def test_an_unreadable_kubeconfig_is_reported_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.kubeconfig"
    assert main(["--kubeconfig", str(missing)]) == 1
    assert f"cannot load kubeconfig {missing}" in capsys.readouterr().err
