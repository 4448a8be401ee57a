"""Schemathesis, with all its checks, against the live server and its own OpenAPI document."""

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import IN_CI, PROJECT_ROOT
from tests.live_server import running_server

# Bounded so the run takes seconds per backend; every phase (examples, coverage, fuzzing,
# stateful) still runs on every operation.
MAX_EXAMPLES = 40
RUN_TIMEOUT_SECONDS = 240


def test_schemathesis_finds_nothing(migrated_url: str, tmp_path: Path) -> None:
    with running_server(migrated_url, tmp_path / "server.log") as (_, client):
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "st"),
                "--config-file",
                str(PROJECT_ROOT / "tests" / "schemathesis.toml"),
                "run",
                f"{client.base_url}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                str(MAX_EXAMPLES),
                # In CI the same inputs every run; elsewhere new ones, remembered by no file.
                *(
                    ["--generation-deterministic"]
                    if IN_CI
                    else ["--generation-database", ":memory:"]
                ),
                "--report-dir",
                str(tmp_path / "reports"),
            ],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
            cwd=PROJECT_ROOT,
            env=os.environ | {"SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks"},
        )
    assert result.returncode == 0, result.stdout[-20_000:] + result.stderr[-5_000:]
    assert "failures" not in result.stdout.splitlines()[-1]
