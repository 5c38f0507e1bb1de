"""The suite's per-test timeout (pytest-timeout, set in pyproject.toml): a hanging test fails, the run goes on."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vtpose.paths import PROJECT_ROOT


def test_the_suite_has_a_generous_default_timeout(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.hasplugin("timeout")
    # Long enough for a smoke pipeline run on 2 busy cores, short enough that CI notices a hang.
    assert 600 <= float(pytestconfig.getini("timeout")) <= 1800


def test_a_hanging_test_fails_and_the_next_one_still_runs(tmp_path: Path) -> None:
    tests = tmp_path / "test_hang.py"
    tests.write_text(
        textwrap.dedent(
            """
            import threading
            import pytest

            @pytest.mark.timeout(2)
            def test_waits_forever():
                threading.Event().wait()

            def test_after():
                assert True
            """
        )
    )
    # The project's own ini file (its timeout settings), on a test file outside the suite.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(PROJECT_ROOT / "pyproject.toml"),
            str(tests),
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Timeout" in output and "1 failed, 1 passed" in output, output
