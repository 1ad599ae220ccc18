"""Where a project's SQL, seeds and schemas live, and its export settings."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from exporter.errors import UsageError

#: The project shipped with this repository: the predecessor's rules.
DEFAULT_PROJECT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Project:
    """A folder holding `queries/`, `schemas/` and `patronload.toml`."""

    root: Path

    @property
    def extract_dir(self) -> Path:
        return self.root / "queries" / "extract"

    @property
    def models_dir(self) -> Path:
        return self.root / "queries" / "models"

    @property
    def seeds_dir(self) -> Path:
        return self.root / "queries" / "seeds"

    @property
    def macros_file(self) -> Path:
        return self.root / "queries" / "macros.sql"

    @property
    def sources_file(self) -> Path:
        return self.root / "schemas" / "sources.sql"

    @property
    def xsd_file(self) -> Path:
        return self.root / "schemas" / "user.xsd"

    def settings(self) -> ExportSettings:
        """Read the `[export]` table of `patronload.toml`."""
        path = self.root / "patronload.toml"
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"project settings not found ({path})") from None
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"{path}: {exc}") from None
        export = data.get("export", {})
        try:
            return ExportSettings(
                final_model=str(export["final_model"]),
                rejections_model=str(export["rejections_model"]),
                accounting_model=str(export["accounting_model"]),
                root_element=str(export["root_element"]),
                max_value_length=int(export["max_value_length"]),
                lookup_model=str(export["lookup_model"]),
                reasons_seed=str(export["reasons_seed"]),
            )
        except KeyError as exc:
            raise UsageError(f"{path}: [export] lacks the setting {exc.args[0]}") from None


@dataclass(frozen=True)
class ExportSettings:
    """Names the exporter needs from a project; none of them is built into Python."""

    final_model: str
    rejections_model: str
    accounting_model: str
    root_element: str
    max_value_length: int
    lookup_model: str
    reasons_seed: str


def load_project(root: Path | None = None) -> Project:
    """Return the project at `root`, or the repository's default project."""
    project = Project((root or DEFAULT_PROJECT).resolve())
    if not (project.root / "queries").is_dir():
        raise UsageError(f"not a patronload project: no queries/ folder in {project.root}")
    return project
