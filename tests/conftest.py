"""Shared fixtures: the real CLI in a subprocess, and runs on the fixture warehouses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import xmltodict

from tests.faultproxy import fault_proxy  # noqa: F401  (fixture)
from tests.servers import moto, moto_server, smtp_server  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CLI = str(Path(sys.executable).parent / "patronload")
#: Settings the CLI reads; the developer's own values never leak into a test run.
OWN_SETTINGS = (
    "PATRONLOAD_",
    "DATA_WAREHOUSE_",
    "S3_",
    "SES_",
    "SMTP_",
    "STARTTLS",
    "WORKSPACE",
    "LOG_LEVEL",
    "ORACLE_LIB_DIR",
    "SENTRY_DSN",
    "AWS_",
)


@dataclass
class Result:
    """What a CLI call did."""

    code: int
    out: str
    err: str


def patronload(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> Result:
    """Run the installed `patronload` command, as a user would."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_SETTINGS)}
    full_env.update(env or {})
    proc = subprocess.run(
        [CLI, *map(str, args)], cwd=cwd, capture_output=True, text=True, env=full_env, timeout=600
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def edit(path: Path, old: str, new: str) -> None:
    """Replace `old` (which must be there) with `new` in a file of a project copy."""
    text = path.read_text()
    assert old in text, f"{path} no longer contains {old!r}"
    path.write_text(text.replace(old, new, 1))


def read_users(zip_path: Path) -> dict[str, Any]:
    """Every user record in a zip, parsed, by primary id."""
    users: dict[str, Any] = {}
    with zipfile.ZipFile(zip_path) as zf:
        for name in zf.namelist():
            doc = xmltodict.parse(zf.read(name), force_list=("user",))
            root = next(iter(doc.values())) or {}
            for user in root.get("user", []):
                users[user["primary_id"]] = user
    return users


@dataclass
class Run:
    """A finished run of the CLI on a fixture warehouse."""

    workdir: Path
    result: Result
    zips: dict[str, Path]
    users: dict[str, Any]


def run_fixture(workdir: Path, warehouse: Path, *extra: str) -> Run:
    result = patronload(
        "run", "--warehouse", warehouse, "--as-of", "2023-03-01", *extra, cwd=workdir
    )
    assert result.code == 0, result.err
    zips = {p.name.split("_")[0]: p for p in sorted((workdir / "outbox").glob("*.zip"))}
    users: dict[str, Any] = {}
    for path in zips.values():
        users.update(read_users(path))
    return Run(workdir, result, zips, users)


@pytest.fixture(scope="session")
def rules_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The rules fixture warehouse, run once through the real CLI."""
    return run_fixture(tmp_path_factory.mktemp("rules"), FIXTURES / "rules")


@pytest.fixture
def project_copy(tmp_path: Path) -> Iterator[Path]:
    """A copy of the default project that a test may edit."""
    dest = tmp_path / "project"
    for part in ("queries", "schemas"):
        shutil.copytree(ROOT / part, dest / part)
    shutil.copy(ROOT / "patronload.toml", dest / "patronload.toml")
    yield dest
