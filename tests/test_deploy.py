"""The deployment recipe: the Dockerfile's entry command, run as a plain process on a fresh
venv built only from what the Dockerfile copies (no container runtime runs here), and the
compose file's services and settings, checked against the settings the app documents."""

import configparser
import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.conftest import PROJECT_ROOT
from tests.ports import free_port
from todo_api.settings import Settings

SETTINGS_DOC = PROJECT_ROOT / "docs" / "configuration.md"
READY_WITHIN_SECONDS = 60.0
STOPPED_WITHIN_SECONDS = 20.0


@dataclass
class Dockerfile:
    """The instructions this test acts on, in order."""

    base: str = ""
    copies: list[tuple[list[str], str]] = field(default_factory=list)  # (sources, absolute dest)
    runs: list[tuple[str, str]] = field(default_factory=list)  # (command, workdir)
    env: dict[str, str] = field(default_factory=dict)
    user: str = "root"
    workdir: str = "/"
    healthcheck: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)


def parse_dockerfile(path: Path) -> Dockerfile:
    text = re.sub(r"\\\n", " ", path.read_text())
    parsed = Dockerfile()
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        rest = rest.strip()
        match instruction.upper():
            case "FROM":
                parsed.base = rest
            case "WORKDIR":
                parsed.workdir = os.path.join(parsed.workdir, rest)
            case "COPY":
                *sources, destination = shlex.split(rest)
                parsed.copies.append((sources, os.path.join(parsed.workdir, destination)))
            case "RUN":
                parsed.runs.append((rest, parsed.workdir))
            case "ENV":
                for pair in shlex.split(rest):
                    name, _, value = pair.partition("=")
                    parsed.env[name] = value
            case "USER":
                parsed.user = rest
            case "HEALTHCHECK":
                parsed.healthcheck = json.loads(rest[rest.index("CMD") + 3 :])
            case "CMD":
                parsed.command = json.loads(rest)
    return parsed


def _ignored(relative: str, patterns: list[str]) -> bool:
    parts = Path(relative).parts
    return any(
        fnmatch.fnmatch(relative, pattern)
        or fnmatch.fnmatch(relative, pattern.removeprefix("**/"))
        or any(fnmatch.fnmatch(part, pattern.removeprefix("**/")) for part in parts)
        for pattern in patterns
    )


def _copy_context(dockerfile: Dockerfile, root: Path) -> None:
    """What each COPY puts in the image, under `root`, as the build context allows it."""
    patterns = [
        line.strip()
        for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for sources, destination in dockerfile.copies:
        target = root / destination.lstrip("/")
        for source in sources:
            origin = PROJECT_ROOT / source
            assert not _ignored(source, patterns), f"{source} is excluded by .dockerignore"
            if origin.is_dir():
                shutil.copytree(
                    origin,
                    target,
                    dirs_exist_ok=True,
                    ignore=lambda folder, names: [
                        name
                        for name in names
                        if _ignored(str((Path(folder) / name).relative_to(PROJECT_ROOT)), patterns)
                    ],
                )
            else:
                into = target / origin.name if destination.endswith("/") else target
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, into)


def test_the_dockerfile_describes_a_slim_non_root_image_without_make() -> None:
    dockerfile = parse_dockerfile(PROJECT_ROOT / "Dockerfile")
    assert re.fullmatch(r"python:3\.1[1-9]-slim", dockerfile.base)
    assert dockerfile.user not in ("root", "0")
    assert "/health/ready" in " ".join(dockerfile.healthcheck)
    commands = [run for run, _ in dockerfile.runs] + dockerfile.command
    assert not [command for command in commands if re.search(r"\bmake\b", command)]


def test_the_docker_entry_migrates_and_serves_from_a_fresh_venv(
    backend: str, tmp_path: Path
) -> None:
    if backend != "sqlite":
        pytest.skip("builds a venv of its own (about 25 s): once per run, in the SQLite pass")
    dockerfile = parse_dockerfile(PROJECT_ROOT / "Dockerfile")
    root = tmp_path / "image"
    _copy_context(dockerfile, root)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    path = f"{venv / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin"
    # Only a clean environment: nothing of this test run's settings leaks in.
    base_env = {"PATH": path, "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    build_env = base_env | {
        name: value for name, value in os.environ.items() if name.startswith("PIP_")
    }
    for command, workdir in dockerfile.runs:
        if not command.startswith("pip "):
            continue  # useradd and mkdir: what a container needs, not this process
        built = subprocess.run(
            command,
            shell=True,
            cwd=root / workdir.lstrip("/"),
            env=build_env | dockerfile.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (root / dockerfile.workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)
    port = free_port()
    run_env = base_env | dockerfile.env | {"HOST": "127.0.0.1", "PORT": str(port)}
    entry_command = [
        str(root / part.lstrip("/")) if part.startswith("/") else part
        for part in dockerfile.command
    ]
    log = tmp_path / "entry.log"
    with log.open("wb") as output:
        entry = subprocess.Popen(
            entry_command,
            cwd=root / dockerfile.workdir.lstrip("/"),
            env=run_env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client:
            deadline = time.monotonic() + READY_WITHIN_SECONDS
            while True:
                assert entry.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                try:
                    if client.get("/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            created = client.post("/api/alice/tasks", json={"title": "from the image"})
            assert created.status_code == 201, created.text
            assert client.get("/docs").status_code == 200  # the static assets were installed
        health = subprocess.run(
            dockerfile.healthcheck, env=run_env, capture_output=True, text=True, timeout=30
        )
        assert health.returncode == 0, health.stderr
        entry.send_signal(signal.SIGTERM)
        assert entry.wait(timeout=STOPPED_WITHIN_SECONDS) == 0, log.read_text()
    finally:
        if entry.poll() is None:
            os.killpg(entry.pid, signal.SIGKILL)
            entry.wait(timeout=10)
    # JSON logs, as the image's ENV asks, and the SQLite file in the working directory.
    first_log_line = next(line for line in log.read_text().splitlines() if line.startswith("{"))
    assert json.loads(first_log_line)["level"]
    assert (root / dockerfile.workdir.lstrip("/") / "todo.sqlite3").exists()


def _documented_settings() -> set[str]:
    """The names in the first column of the settings table."""
    first_cells = re.findall(r"^\| (`[A-Z_]+`[^|]*)\|", SETTINGS_DOC.read_text(), re.MULTILINE)
    return {name for cell in first_cells for name in re.findall(r"`([A-Z_]+)`", cell)}


def test_the_compose_file_wires_the_api_through_pgbouncer_to_postgres() -> None:
    compose: dict[str, Any] = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "pgbouncer", "api"}
    api = services["api"]
    assert api["build"] == "."
    environment: dict[str, str] = api["environment"]

    # Every variable is a setting the app reads and the docs describe, with a valid value.
    names = set(environment)
    assert names <= {name.upper() for name in Settings.model_fields}, names
    assert names <= _documented_settings(), names - _documented_settings()
    values: dict[str, Any] = {name.lower(): value for name, value in environment.items()}
    Settings(_env_file=None, **values)

    postgres_env = services["postgres"]["environment"]
    pgbouncer = configparser.ConfigParser()
    pgbouncer.read(PROJECT_ROOT / "deploy" / "pgbouncer" / "pgbouncer.ini")
    settings = pgbouncer["pgbouncer"]
    assert settings["pool_mode"] == "transaction"
    for mount in services["pgbouncer"]["volumes"]:
        assert (PROJECT_ROOT / mount.split(":")[0]).is_file(), mount

    pooled = urlsplit(environment["DATABASE_URL"])
    direct = urlsplit(environment["MIGRATION_DATABASE_URL"])
    assert (pooled.hostname, pooled.port) == ("pgbouncer", int(settings["listen_port"]))
    assert (direct.hostname, direct.port) == ("postgres", 5432)
    for url in (pooled, direct):
        assert (url.username, url.password) == (
            postgres_env["POSTGRES_USER"],
            postgres_env["POSTGRES_PASSWORD"],
        )
        assert url.path == f"/{postgres_env['POSTGRES_DB']}"
    route = dict(
        pair.split("=") for pair in pgbouncer["databases"][postgres_env["POSTGRES_DB"]].split()
    )
    assert (route["host"], route["port"]) == ("postgres", "5432")
    userlist = (PROJECT_ROOT / "deploy" / "pgbouncer" / "userlist.txt").read_text().split()
    assert userlist == [f'"{pooled.username}"', f'"{pooled.password}"']


def test_the_images_own_settings_are_documented() -> None:
    dockerfile = parse_dockerfile(PROJECT_ROOT / "Dockerfile")
    app_settings = {name for name in dockerfile.env if not name.startswith(("PYTHON", "PIP_"))}
    assert app_settings <= _documented_settings()
