"""Where a project's SQL, seeds and schemas live, and its export settings."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

    def _toml(self) -> dict[str, Any]:
        path = self.root / "patronload.toml"
        try:
            return tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"project settings not found ({path})") from None
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"{path}: {exc}") from None

    def file_sources(self) -> dict[str, FileSource]:
        """The `[sources.<TABLE>]` tables: sources read from a delimited text file."""
        path = self.root / "patronload.toml"
        found: dict[str, FileSource] = {}
        if not path.is_file():  # extract needs no settings file; export does
            return found
        settable = set(FileSource.__dataclass_fields__) - {"name"}  # the name is the table's
        for table, options in self._toml().get("sources", {}).items():
            where = f"{path}: [sources.{table}]"
            unknown = sorted(set(options) - settable)
            if unknown:
                raise UsageError(f"{where} has no setting {unknown[0]}")
            if "file" not in options:
                raise UsageError(f"{where} lacks the setting file")
            for key, value in options.items():
                kind = bool if key == "header" else str
                if not isinstance(value, kind):
                    raise UsageError(
                        f"{where} {key} must be a {'boolean' if kind is bool else 'string'}"
                    )
            fmt = FileSource(name=table.upper(), **options)
            if len(fmt.delimiter) != 1 or len(fmt.quote) > 1 or fmt.quote == fmt.delimiter:
                raise UsageError(
                    f"{where} delimiter must be one character, and quote one other or none"
                )
            if (fmt.line_column or fmt.raw_column) and not fmt.error_column:
                raise UsageError(f"{where} line_column and raw_column need an error_column")
            found[table.upper()] = fmt
        return found

    def demo_generator(self) -> Path | None:
        """The project's demo-data script (`[demo] generator`), run by dev without a warehouse."""
        if not (self.root / "patronload.toml").is_file():
            return None
        name = self._toml().get("demo", {}).get("generator")
        return self.root / str(name) if name else None

    def settings(self) -> ExportSettings:
        """Read the `[export]` table of `patronload.toml`."""
        path = self.root / "patronload.toml"
        export = self._toml().get("export", {})
        try:
            return ExportSettings(
                final_model=str(export["final_model"]),
                rejections_model=str(export["rejections_model"]),
                accounting_model=str(export["accounting_model"]),
                root_element=str(export["root_element"]),
                max_value_length=int(export["max_value_length"]),
                lookup_model=str(export["lookup_model"]),
                reasons_seed=str(export["reasons_seed"]),
                counted_only=tuple(str(t) for t in export.get("counted_only", [])),
            )
        except KeyError as exc:
            raise UsageError(f"{path}: [export] lacks the setting {exc.args[0]}") from None


@dataclass(frozen=True)
class FileSource:
    """How to read one source table from a delimited text file in the warehouse folder.

    Column names and types come from schemas/sources.sql, never from the file. With
    `error_column` set, the file is read one line per record (a quoted value cannot
    span lines, so a stray quote spoils one line, not the rest of the file), and a
    line that cannot be read, or holds a value not of its declared type, becomes a
    row with that column saying why instead of stopping the extract; `line_column`
    holds every row's line number, `raw_column` the text of a line that could not
    be split. The project's SQL then rejects such rows with a reason. `quote = ""`
    reads quotes as ordinary characters.
    """

    name: str
    file: str
    delimiter: str = ","
    quote: str = '"'
    header: bool = True
    encoding: str = "utf-8"
    line_column: str | None = None
    error_column: str | None = None
    raw_column: str | None = None

    @property
    def pseudo_columns(self) -> list[str]:
        """Columns the extract fills itself rather than reading them from the file."""
        return [c.upper() for c in (self.line_column, self.error_column, self.raw_column) if c]


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
    #: Patron types the accounting counts but that are never a file (nobody is exported
    #: as one, e.g. the lines that could not be read): no zip, no feed guard.
    counted_only: tuple[str, ...] = ()


def load_project(root: Path | None = None) -> Project:
    """Return the project at `root`, or the repository's default project."""
    project = Project((root or DEFAULT_PROJECT).resolve())
    if not (project.root / "queries").is_dir():
        raise UsageError(f"not a patronload project: no queries/ folder in {project.root}")
    return project
