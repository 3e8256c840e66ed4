"""The pi workloads and the `lightwork pi` / `lightwork bbp` commands."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import mpmath
import pytest

from lightwork._argtypes import parse_count
from lightwork._cli import main
from lightwork.workloads import (
    TASK_SAMPLES,
    bbp_pi,
    monte_carlo_pi,
    pi_hex,
    split_samples,
)

PI = 3.141592653589793


def test_split_samples_depends_only_on_samples_and_kernel() -> None:
    size = TASK_SAMPLES["numpy"]
    assert split_samples(2 * size + 5, "numpy") == [size, size, 5]
    assert split_samples(size, "numpy") == [size]


@pytest.mark.parametrize("kernel", ["numpy", "python"])
def test_seeded_estimate_is_identical_on_every_backend_and_worker_count(kernel: str) -> None:
    samples = 3 * TASK_SAMPLES[kernel] // 2 if kernel == "python" else 3_000_000
    runs = [
        monte_carlo_pi(samples, kernel=kernel, backend=backend, max_workers=workers, seed=42)
        for backend, workers in [
            ("serial", 1),
            ("threads", 1),
            ("threads", 3),
            ("processes", 1),
            ("processes", 2),
        ]
    ]
    assert len({r.estimate for r in runs}) == 1
    assert len({r.inside for r in runs}) == 1


def test_estimate_reports_error_interval_and_rate() -> None:
    result = monte_carlo_pi(4_000_000, backend="threads", seed=1)
    assert abs(result.estimate - PI) < 5 * result.stderr
    assert result.ci_low < result.estimate < result.ci_high
    assert result.ci_high - result.ci_low == pytest.approx(2 * 1.96 * result.stderr, rel=1e-3)
    assert result.samples == 4_000_000
    assert result.samples_per_second == pytest.approx(result.samples / result.seconds)


def test_target_error_adds_samples_until_precise_enough() -> None:
    result = monte_carlo_pi(target_error=2e-3, kernel="numpy", backend="threads", seed=3)
    assert result.ci_high - result.estimate < 2e-3
    assert result.samples % TASK_SAMPLES["numpy"] == 0
    again = monte_carlo_pi(target_error=2e-3, kernel="numpy", backend="serial", seed=3)
    assert again.estimate == result.estimate  # where it stops is reproducible too


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown kernel"):
        monte_carlo_pi(10, kernel="gpu")
    with pytest.raises(ValueError, match="samples must be a positive int"):
        monte_carlo_pi(0)
    with pytest.raises(ValueError, match="give samples, target_error"):
        monte_carlo_pi()


def test_bbp_precisions_agree_with_mpmath() -> None:
    mpmath.mp.dps = 1100
    reference = str(mpmath.pi)
    values = bbp_pi([500, 1000], backend="processes", max_workers=2)
    assert str(values[0])[:495] == reference[:495]
    assert str(values[1])[:995] == reference[:995]


def test_pi_hex_spreads_blocks_over_workers_and_matches_mpmath() -> None:
    mpmath.mp.dps = 300
    position, digits = 150, 40
    expected = format(int(mpmath.floor(mpmath.pi * 16 ** (position + digits))) % 16**digits, "X")
    assert pi_hex(position, digits, backend="processes", max_workers=2) == expected.zfill(digits)


@pytest.mark.parametrize(
    ("text", "value"), [("1e9", 10**9), ("1_000_000", 10**6), ("250", 250), ("2.5e3", 2500)]
)
def test_counts_accept_exponents_and_underscores(text: str, value: int) -> None:
    assert parse_count(text) == value


def test_cli_pi_json_has_the_documented_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pi", "--samples", "2e6", "--seed", "5", "--backend", "threads", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert set(record) >= {
        "estimate",
        "stderr",
        "ci_low",
        "ci_high",
        "samples",
        "seconds",
        "samples_per_second",
        "max_workers",
        "backend",
        "kernel",
        "seed",
    }
    assert record["samples"] == 2_000_000 and record["seed"] == 5


def test_cli_pi_repeat_headlines_the_median_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pi", "--samples", "1e6", "--repeat", "3", "--backend", "serial"]) == 0
    out = capsys.readouterr().out
    assert "pi ~ 3.1" in out and ", standard error " in out and "+/-" not in out
    headline = re.search(r"the median run: 1,000,000 samples in (\d+\.\d+) s", out)
    summary = re.search(r"3 runs: median (\d+\.\d+) s, min (\d+\.\d+) s", out)
    assert headline and summary, out
    assert headline[1] == summary[1]  # the run shown is the median one, not the cold first


def test_cli_pi_repeat_json_is_the_median_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pi", "--samples", "1e6", "--repeat", "3", "--backend", "serial", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["seconds"] == record["seconds_median"] == sorted(record["seconds_each"])[1]


def test_cli_pi_runs_with_its_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pi"]) == 0  # 10**8 samples: well under a second on two cores
    out = capsys.readouterr().out
    assert "100,000,000 samples in" in out and "numpy kernel" in out
    # auto says how many threads it chose, and the rate line names the same number.
    chose = re.search(r"(\d+) threads? to keep", out)
    ran = re.search(r"on (\d+) threads? \(", out)
    assert chose and ran and chose[1] == ran[1], out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bbp", "--position", "-3"], "--position: must be >= 0"),
        (["bbp", "--position", "x"], "--position: not a whole number"),
        (["pi", "--backend", "thread"], "unknown backend 'thread': did you mean 'threads'?"),
    ],
)
def test_cli_bad_input_exits_2_naming_it(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_bbp_modes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bbp", "--position", "0", "--digits", "12", "--backend", "threads"]) == 0
    assert "243F6A8885A3" in capsys.readouterr().out
    assert main(["bbp", "--precision", "100", "200", "--backend", "serial"]) == 0
    assert "agree on 100 digits" in capsys.readouterr().out


def test_cli_rejects_bad_counts() -> None:
    with pytest.raises(SystemExit):
        main(["pi", "--samples", "lots"])


def test_python_dash_m_lightwork_runs() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lightwork",
            "pi",
            "--samples",
            "1e6",
            "--max-workers",
            "2",
            "--backend",
            "processes",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "samples/s on 2 processes" in out.stdout


def test_pi_and_bbp_runs_leave_the_lab_unimported() -> None:
    code = (
        "import sys\n"
        "from lightwork._cli import main\n"
        "main(['pi', '--samples', '1e4', '--backend', 'serial'])\n"
        "main(['bbp', '--position', '0', '--digits', '4', '--backend', 'serial'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('lightwork.lab')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = capsys.readouterr().out
    assert all(command in listed for command in ("pi", "bbp", "scale", "bench"))
