"""Settings: flag > environment > .env > default, `config`, workspaces, and `db-test`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import FIXTURES, patronload
from tests.servers import free_port

ORACLE = {
    "DATA_WAREHOUSE_USER": "libloader",
    "DATA_WAREHOUSE_PASSWORD": "Tiger-Secret-91",
    "DATA_WAREHOUSE_HOST": "127.0.0.1",
    "DATA_WAREHOUSE_SID": "DWPROD",
}


def config_lines(out: str) -> dict[str, str]:
    """NAME -> the rest of its line, from `patronload config`."""
    return {
        line.split()[0]: line.split(None, 1)[1] for line in out.splitlines()[1:] if line.strip()
    }


def test_config_says_where_each_value_came_from_and_masks_secrets(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "S3_BUCKET_NAME=from-dotenv-bucket\n"
        "S3_PREFIX=alma/from-dotenv\n"
        "DATA_WAREHOUSE_PASSWORD=Tiger-Secret-91\n"
        "SES_RECIPIENT_EMAIL=a@example.edu\n"
    )
    env = {"S3_PREFIX": "alma/from-env", "WORKSPACE": "stage"}
    result = patronload("--workspace", "prod", "config", cwd=tmp_path, env=env)
    assert result.code == 0, result.err
    assert result.out.splitlines()[0] == "settings file: .env"
    lines = config_lines(result.out)
    assert lines["WORKSPACE"] == "prod  (flag)"  # flag beats the environment
    assert lines["S3_PREFIX"] == "alma/from-env  (environment)"  # environment beats .env
    assert lines["S3_BUCKET_NAME"] == "from-dotenv-bucket  (.env)"
    assert lines["SES_RECIPIENT_EMAIL"] == "a@example.edu  (.env)"
    assert lines["DATA_WAREHOUSE_PASSWORD"] == "****  (.env)"
    assert lines["PATRONLOAD_MAX_DROP"] == "0.10  (default)"
    assert lines["SMTP_HOST"] == "(unset)"
    assert "Tiger-Secret-91" not in result.out + result.err


def test_env_file_option_and_a_missing_one(tmp_path: Path) -> None:
    (tmp_path / "prod.env").write_text("WORKSPACE=prod\n")
    assert config_lines(patronload("--env-file", "prod.env", "config", cwd=tmp_path).out)[
        "WORKSPACE"
    ] == ("prod  (prod.env)")
    missing = patronload("--env-file", "nope.env", "config", cwd=tmp_path)
    assert (missing.code, missing.err) == (2, "Error: nope.env: the settings file does not exist\n")


def test_stage_lists_every_missing_setting_at_once_and_writes_nothing(tmp_path: Path) -> None:
    result = patronload("run", cwd=tmp_path, env={"WORKSPACE": "stage"})
    assert result.code == 2
    assert result.err.splitlines()[-1] == (
        "Error: WORKSPACE=stage needs these settings, not set in the environment: "
        "DATA_WAREHOUSE_USER, DATA_WAREHOUSE_PASSWORD, DATA_WAREHOUSE_HOST, "
        "DATA_WAREHOUSE_PORT, DATA_WAREHOUSE_SID, S3_BUCKET_NAME, S3_PREFIX, "
        "SES_SEND_FROM_EMAIL, SES_RECIPIENT_EMAIL"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no demo warehouse, no snapshot


def test_prod_never_falls_back_to_the_demo_warehouse(tmp_path: Path) -> None:
    env = {"WORKSPACE": "prod", "SES_SEND_FROM_EMAIL": "a@x.edu", "SES_RECIPIENT_EMAIL": "b@x.edu"}
    result = patronload("run", "--dry-run", cwd=tmp_path, env=env)
    assert result.code == 2
    assert result.err.splitlines()[-1] == (
        "Error: WORKSPACE=prod needs these settings, not set in the environment: "
        "DATA_WAREHOUSE_USER, DATA_WAREHOUSE_PASSWORD, DATA_WAREHOUSE_HOST, "
        "DATA_WAREHOUSE_PORT, DATA_WAREHOUSE_SID"
    )
    assert not (tmp_path / "warehouse").exists()


def test_an_explicit_warehouse_is_honoured_in_prod(tmp_path: Path) -> None:
    """A replay of a test feed in prod: --warehouse and --dry-run need no server at all."""
    result = patronload(
        "run", "--warehouse", FIXTURES / "rules", "--dry-run", "--json",
        cwd=tmp_path, env={"WORKSPACE": "prod"},
    )  # fmt: skip
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["exported"] == {"staff": 7, "student": 6}
    assert sorted(p.suffix for p in (tmp_path / "outbox").iterdir()) == [".zip", ".zip"]
    (run,) = [
        json.loads(line) for line in (tmp_path / "history/runs.jsonl").read_text().splitlines()
    ]
    assert (run["delivered"], run["workspace"]) == (False, "prod")


def test_a_group_of_settings_set_in_part_is_an_error_in_every_workspace(tmp_path: Path) -> None:
    result = patronload("run", cwd=tmp_path, env={"S3_BUCKET_NAME": "alma-bucket"})
    assert result.code == 2
    assert result.err.splitlines()[-1] == (
        "Error: the S3 delivery is configured in part; missing: S3_PREFIX"
    )


def test_bad_values_name_their_setting(tmp_path: Path) -> None:
    cases = {
        "WORKSPACE": (
            "production",
            "Error: WORKSPACE: 'production' is not one of dev, stage, prod",
        ),
        "PATRONLOAD_MAX_DROP": ("lots", "Error: PATRONLOAD_MAX_DROP: 'lots' is not a share like"),
        "LOG_LEVEL": ("LOUD", "Error: LOG_LEVEL: 'LOUD' is not DEBUG, INFO, WARNING or ERROR"),
        "PATRONLOAD_MEMORY_LIMIT": (
            "lots",
            "Error: PATRONLOAD_MEMORY_LIMIT: 'lots' is not a memory size like 300MB or 2GB",
        ),
    }
    for name, (value, message) in cases.items():
        result = patronload(
            "run", "--warehouse", FIXTURES / "rules", cwd=tmp_path, env={name: value}
        )
        assert result.code == 2, name
        assert result.err.splitlines()[-1].startswith(message), result.err
    assert not (tmp_path / "snapshots").exists()


def test_db_test_unreachable_names_host_and_port_without_the_password(tmp_path: Path) -> None:
    port = free_port()
    env = {**ORACLE, "DATA_WAREHOUSE_PORT": str(port)}
    for args in (["db-test"], ["-t"], ["--database-connection-test"]):
        result = patronload(*args, cwd=tmp_path, env=env)
        assert result.code == 1, args
        (line,) = result.err.splitlines()
        assert line.startswith(
            f"Error: cannot connect to Oracle at 127.0.0.1:{port} (SID DWPROD): "
        )
        assert "DPY-" in line
        assert "Tiger-Secret-91" not in result.out + result.err


def test_db_test_without_settings_names_them(tmp_path: Path) -> None:
    result = patronload("db-test", cwd=tmp_path, env={"DATA_WAREHOUSE_HOST": "db.example.edu"})
    assert (result.code, result.err) == (
        2,
        "Error: the Oracle warehouse needs these settings: DATA_WAREHOUSE_USER, "
        "DATA_WAREHOUSE_PASSWORD, DATA_WAREHOUSE_PORT, DATA_WAREHOUSE_SID\n",
    )


def test_run_reads_oracle_when_configured_and_fails_cleanly_when_it_is_down(
    tmp_path: Path,
) -> None:
    """All five DATA_WAREHOUSE_* set: the run extracts from Oracle, never the demo."""
    port = free_port()
    result = patronload("run", cwd=tmp_path, env={**ORACLE, "DATA_WAREHOUSE_PORT": str(port)})
    assert result.code == 1
    assert result.err.splitlines()[-1].startswith(
        f"Error: cannot connect to Oracle at 127.0.0.1:{port} (SID DWPROD): DPY-"
    )
    assert not (tmp_path / "warehouse").exists()
    assert not list((tmp_path / "snapshots").glob("*"))
    (report,) = (tmp_path / "outbox").glob("report-*.eml")
    assert "FAILED at extract" in report.read_text()
    assert "Tiger-Secret-91" not in result.err + report.read_text()
