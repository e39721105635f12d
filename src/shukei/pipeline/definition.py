"""Load and validate a pipeline folder (`pipeline.toml` + SQL). The format: docs/pipelines.md.

Everything the core knows about a pipeline comes from here: entities with typed columns, key and
version; how each entity's changes reach the fact's partitions (`via`); marts and their kind; views;
checks. Identifiers are validated once, here, so generated SQL can quote them safely.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from shukei.errors import ConfigError, UsageError
from shukei.sql import is_identifier

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "pipelines"
SCALAR_TYPES = ("text", "integer", "timestamp", "date", "email", "boolean", "json")
_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")
MACROS = ("@dates", "@months", "@keys")


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # text | integer | decimal(p,s) | timestamp | date | email | boolean
    required: bool = False
    lower: bool = False
    min: Decimal | None = None
    max: Decimal | None = None

    @property
    def decimal(self) -> tuple[int, int] | None:
        m = _DECIMAL.match(self.type)
        return (int(m.group(1)), int(m.group(2))) if m else None

    @property
    def is_text(self) -> bool:
        return self.type in ("text", "email")


@dataclass(frozen=True)
class Via:
    entity: str
    on: tuple[tuple[str, str], ...]  # (this entity's column, next entity's column)


@dataclass(frozen=True)
class Explode:
    """An entity derived in staging from a JSON array column of another entity's rows."""

    entity: str  # the parent entity
    column: str  # its JSON array column
    ordinal: str  # this entity's column numbering the elements, from 1
    where: str | None = None  # SQL filter on the parent rows
    inherit: tuple[str, ...] = ()  # parent columns copied (besides its key and partition)


@dataclass(frozen=True)
class GateCheck:
    name: str
    sql: str  # offending rows of @batch: SELECT _row_id FROM @batch WHERE ...
    description: str = ""


@dataclass(frozen=True)
class Gate:
    """Checks every incoming batch of `entity` must pass before anything reaches raw."""

    entity: str
    checks: tuple[GateCheck, ...]
    threshold: float | None = None  # None: the `gate_threshold` setting


@dataclass(frozen=True)
class Entity:
    name: str
    key: tuple[str, ...]
    version: str
    columns: tuple[Column, ...]
    via: tuple[Via, ...] = ()
    partition_column: str | None = None
    partition_from: str | None = None
    counted: str | None = None
    explode: Explode | None = None

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def content_columns(self) -> tuple[str, ...]:
        """Business columns whose change can change a mart: all but the version."""
        return tuple(c.name for c in self.columns if c.name != self.version)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


@dataclass(frozen=True)
class Mart:
    name: str
    sql: str
    grain: tuple[str, ...]
    totals: tuple[str, ...] = ()
    partition: str | None = None
    partition_grain: str = "date"  # date | month
    keyed_by: str | None = None
    keys_from: tuple[str, ...] = ()
    description: str = ""

    @property
    def kind(self) -> str:
        if self.keyed_by:
            return "keyed"
        return "month" if self.partition_grain == "month" else "date"


@dataclass(frozen=True)
class View:
    name: str
    sql: str


@dataclass(frozen=True)
class Check:
    name: str
    kind: str  # unique | not_null | accepted_values | non_negative | relationship | sql
    table: tuple[str, str]
    columns: tuple[str, ...] = ()
    values: tuple[str, ...] = ()
    to: tuple[str, str] | None = None
    to_columns: tuple[str, ...] = ()
    sql: str = ""
    blocking: bool = True
    description: str = ""


CHECK_KINDS = ("unique", "not_null", "accepted_values", "non_negative", "relationship", "sql")


@dataclass(frozen=True)
class Pipeline:
    name: str
    root: Path
    fact: str
    entities: dict[str, Entity]
    marts: tuple[Mart, ...]
    views: tuple[View, ...] = ()
    checks: tuple[Check, ...] = ()
    description: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    gate: Gate | None = None
    schema_file: Path | None = None
    fingerprint: str = ""  # of pipeline.toml and the SQL it names: a change re-stages and rebuilds

    @property
    def input_entities(self) -> list[str]:
        """Entities read from files (the others are derived in staging)."""
        return [n for n, e in self.entities.items() if e.explode is None]

    @property
    def fact_entity(self) -> Entity:
        return self.entities[self.fact]

    @property
    def partition_column(self) -> str:
        col = self.fact_entity.partition_column
        assert col is not None
        return col

    def mart(self, name: str) -> Mart:
        for m in self.marts:
            if m.name == name:
                return m
        raise UsageError(f"pipeline {self.name!r} has no mart {name!r}")


def builtin_names() -> list[str]:
    return sorted(p.parent.name for p in BUILTIN_DIR.glob("*/pipeline.toml"))


def find_pipeline(name_or_path: str, search: list[Path] | None = None) -> Path:
    """A pipeline folder: a path to one, a built-in name, or a name under `pipeline_paths`."""
    p = Path(name_or_path)
    if (p / "pipeline.toml").is_file():
        return p
    for base in [*(search or []), BUILTIN_DIR]:
        if (base / name_or_path / "pipeline.toml").is_file():
            return base / name_or_path
    known = builtin_names()
    hint = _did_you_mean(name_or_path, known)
    raise UsageError(
        f"unknown pipeline {name_or_path!r}{hint}; built in: {', '.join(known)}"
        " (or give the path of a folder holding pipeline.toml)"
    )


def _did_you_mean(word: str, choices: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load_pipeline(name_or_path: str, search: list[Path] | None = None) -> Pipeline:
    root = find_pipeline(name_or_path, search)
    toml_path = root / "pipeline.toml"
    try:
        raw = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{toml_path}: {exc}") from exc
    pipeline = _Loader(root, toml_path).pipeline(raw)
    import dataclasses
    import hashlib

    h = hashlib.sha256(toml_path.read_bytes())
    for text in (
        [m.sql for m in pipeline.marts]
        + [v.sql for v in pipeline.views]
        + ([c.sql for c in pipeline.gate.checks] if pipeline.gate else [])
    ):
        h.update(text.encode())
    return dataclasses.replace(pipeline, fingerprint=h.hexdigest()[:16])


class _Loader:
    def __init__(self, root: Path, path: Path) -> None:
        self.root = root
        self.path = path

    def fail(self, where: str, msg: str) -> ConfigError:
        return ConfigError(f"{self.path}: {where}: {msg}")

    def ident(self, where: str, value: Any) -> str:
        if not isinstance(value, str) or not is_identifier(value):
            raise self.fail(where, f"{value!r} is not a plain identifier (letters, digits, _)")
        return value

    def table(self, where: str, value: Any) -> tuple[str, str]:
        parts = str(value).split(".")
        if len(parts) != 2:
            raise self.fail(where, f"{value!r} must be schema.table")
        return self.ident(where, parts[0]), self.ident(where, parts[1])

    def sql_file(self, where: str, rel: Any) -> str:
        path = (self.root / str(rel)).resolve()
        if not path.is_file():
            raise self.fail(where, f"SQL file {rel!r} not found in {self.root}")
        text = path.read_text(encoding="utf-8")
        if re.search(r"\b(BEGIN|COMMIT|ROLLBACK)\b\s*;", text, re.IGNORECASE):
            raise self.fail(
                where, f"{rel}: SQL files hold no BEGIN/COMMIT; shukei owns transactions"
            )
        return text.strip().rstrip(";")

    def pipeline(self, raw: dict[str, Any]) -> Pipeline:
        name = self.ident("name", raw.get("name", self.root.name))
        entities = {n: self.entity(n, spec) for n, spec in (raw.get("entities") or {}).items()}
        if not entities:
            raise self.fail("entities", "a pipeline needs at least one entity")
        fact = str(raw.get("fact"))
        if fact not in entities:
            raise self.fail("fact", f"{fact!r} is not one of the entities {sorted(entities)}")
        if entities[fact].partition_column is None:
            raise self.fail(f"entities.{fact}", "the fact entity needs partition = {column, from}")
        for e in entities.values():
            for i, v in enumerate(e.via):
                if v.entity not in entities:
                    raise self.fail(f"entities.{e.name}.via[{i}]", f"unknown entity {v.entity!r}")
            if e.via and e.via[-1].entity != fact:
                raise self.fail(f"entities.{e.name}.via", f"must end at the fact {fact!r}")
        marts = tuple(self.mart(i, m) for i, m in enumerate(raw.get("marts") or []))
        if not marts:
            raise self.fail("marts", "a pipeline needs at least one mart")
        names = [m.name for m in marts]
        for m in marts:
            for src in m.keys_from:
                if src not in entities and src not in names:
                    raise self.fail(f"marts.{m.name}.keys_from", f"unknown entity or mart {src!r}")
        views = tuple(
            View(
                self.ident(f"views[{i}].name", v.get("name")),
                self.sql_file(f"views[{i}]", v.get("sql")),
            )
            for i, v in enumerate(raw.get("views") or [])
        )
        checks = tuple(self.check(i, c) for i, c in enumerate(raw.get("checks") or []))
        for e in entities.values():
            if e.explode and e.explode.entity not in entities:
                raise self.fail(
                    f"entities.{e.name}.explode", f"unknown entity {e.explode.entity!r}"
                )
        gate = self.gate(raw.get("gate"), entities)
        schema_file = None
        if raw.get("schema"):
            schema_file = (self.root / str(raw["schema"])).resolve()
            if not schema_file.is_file():
                raise self.fail("schema", f"file {raw['schema']!r} not found in {self.root}")
        return Pipeline(
            name=name,
            root=self.root,
            fact=fact,
            entities=entities,
            marts=marts,
            views=views,
            checks=checks,
            description=str(raw.get("description", "")),
            settings=dict(raw.get("settings") or {}),
            gate=gate,
            schema_file=schema_file,
        )

    def gate(self, spec: Any, entities: dict[str, Entity]) -> Gate | None:
        if not spec:
            return None
        entity = spec.get("entity")
        if entity not in entities:
            raise self.fail("gate.entity", f"{entity!r} is not one of the entities")
        checks = []
        for i, c in enumerate(spec.get("checks") or []):
            name = self.ident(f"gate.checks[{i}].name", c.get("name"))
            sql = str(c.get("sql", "")).strip().rstrip(";")
            if sql.endswith(".sql"):
                sql = self.sql_file(f"gate.checks.{name}", sql)
            if "@batch" not in sql:
                raise self.fail(f"gate.checks.{name}", "its SQL must read the batch (@batch)")
            checks.append(GateCheck(name, sql, str(c.get("description", ""))))
        if not checks:
            raise self.fail("gate", "a gate needs at least one check")
        threshold = spec.get("threshold")
        if threshold is not None and not 0 <= float(threshold) <= 1:
            raise self.fail("gate.threshold", "must be between 0 and 1")
        return Gate(entity, tuple(checks), None if threshold is None else float(threshold))

    def entity(self, name: str, spec: dict[str, Any]) -> Entity:
        where = f"entities.{name}"
        self.ident(where, name)
        cols = tuple(
            self.column(f"{where}.columns.{c}", c, s)
            for c, s in (spec.get("columns") or {}).items()
        )
        colnames = {c.name for c in cols}
        key = tuple(self.ident(f"{where}.key", k) for k in spec.get("key") or [])
        if not key:
            raise self.fail(where, "needs key = [column, ...]")
        explode = None
        if ex := spec.get("explode"):
            explode = Explode(
                self.ident(f"{where}.explode.entity", ex.get("entity")),
                self.ident(f"{where}.explode.column", ex.get("column")),
                self.ident(f"{where}.explode.ordinal", ex.get("ordinal")),
                ex.get("where"),
                tuple(self.ident(f"{where}.explode.inherit", c) for c in ex.get("inherit") or []),
            )
            spec = {**spec, "version": spec.get("version", explode.ordinal)}
        version = self.ident(f"{where}.version", spec.get("version"))
        for k in (*key, version):
            if k not in colnames:
                raise self.fail(where, f"column {k!r} is not declared in columns")
        via = tuple(
            Via(
                self.ident(f"{where}.via[{i}].entity", v.get("entity")),
                tuple(
                    (self.ident(where, a), self.ident(where, b))
                    for a, b in (v.get("on") or {}).items()
                ),
            )
            for i, v in enumerate(spec.get("via") or [])
        )
        part = spec.get("partition") or {}
        pcol = self.ident(f"{where}.partition.column", part["column"]) if part else None
        if pcol is not None:
            self.column_name(f"{where}.partition.column", pcol)  # stored in staging too
        pfrom = self.ident(f"{where}.partition.from", part.get("from")) if part else None
        if pfrom is not None and pfrom not in colnames:
            raise self.fail(f"{where}.partition.from", f"column {pfrom!r} is not declared")
        return Entity(name, key, version, cols, via, pcol, pfrom, spec.get("counted"), explode)

    def column_name(self, where: str, name: str) -> str:
        self.ident(where, name)
        # shukei's own columns beside the user's: lineage and working columns start with "_",
        # typed copies end in "__v"/"__t"/"__r", and DuckDB names each row's id `rowid`.
        if name.startswith("_") or "__" in name or name.lower() == "rowid":
            raise self.fail(
                where,
                f"{name!r}: a column name may not start with _, hold __ or be rowid "
                "(shukei's own columns use those names)",
            )
        return name

    def column(self, where: str, name: str, spec: Any) -> Column:
        self.column_name(where, name)
        if isinstance(spec, str):
            spec = {"type": spec}
        typ = str(spec.get("type", "text")).replace(" ", "")
        if typ not in SCALAR_TYPES and not _DECIMAL.match(typ):
            raise self.fail(
                where, f"unknown type {typ!r} (one of {', '.join(SCALAR_TYPES)}, decimal(p,s))"
            )

        def num(key: str) -> Decimal | None:
            if spec.get(key) is None:
                return None
            try:
                return Decimal(str(spec[key]))
            except InvalidOperation as exc:
                raise self.fail(where, f"{key} must be a number") from exc

        return Column(
            name,
            typ,
            bool(spec.get("required", False)),
            bool(spec.get("lower", False)),
            num("min"),
            num("max"),
        )

    def mart(self, i: int, spec: dict[str, Any]) -> Mart:
        name = self.ident(f"marts[{i}].name", spec.get("name"))
        where = f"marts.{name}"
        partition = spec.get("partition")
        keyed_by = spec.get("keyed_by")
        if (partition is None) == (keyed_by is None):
            raise self.fail(where, "set exactly one of partition = COLUMN or keyed_by = COLUMN")
        pgrain = spec.get("partition_grain", "date")
        if pgrain not in ("date", "month"):
            raise self.fail(where, "partition_grain is date or month")
        sql = self.sql_file(where, spec.get("sql"))
        needed = "@keys" if keyed_by else ("@months" if pgrain == "month" else "@dates")
        if needed not in sql:
            raise self.fail(
                where, f"its SQL must filter on {needed} (the partitions being rebuilt)"
            )
        return Mart(
            name=name,
            sql=sql,
            grain=tuple(self.ident(where, g) for g in spec.get("grain") or []),
            totals=tuple(self.ident(where, t) for t in spec.get("totals") or []),
            partition=self.ident(where, partition) if partition else None,
            partition_grain=pgrain,
            keyed_by=self.ident(where, keyed_by) if keyed_by else None,
            keys_from=tuple(self.ident(where, k) for k in spec.get("keys_from") or []),
            description=str(spec.get("description", "")),
        )

    def check(self, i: int, spec: dict[str, Any]) -> Check:
        name = self.ident(f"checks[{i}].name", spec.get("name"))
        where = f"checks.{name}"
        kind = spec.get("kind")
        if kind not in CHECK_KINDS:
            raise self.fail(where, f"kind must be one of {', '.join(CHECK_KINDS)}")
        to = spec.get("to")
        return Check(
            name=name,
            kind=kind,
            table=self.table(where, spec.get("table")),
            columns=tuple(self.ident(where, c) for c in spec.get("columns") or []),
            values=tuple(str(v) for v in spec.get("values") or []),
            to=self.table(where, to) if to else None,
            to_columns=tuple(self.ident(where, c) for c in spec.get("to_columns") or []),
            sql=str(spec.get("sql", "")).strip().rstrip(";"),
            blocking=bool(spec.get("blocking", True)),
            description=str(spec.get("description", "")),
        )
