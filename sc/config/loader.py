"""Load and validate the site config, failing with file, line and key path.

    try:
        cfg = load_site_config("configs/site.yaml")
    except ConfigError as exc:
        print(exc)   # configs/site.yaml:42: gateways[0].devices[3].unit: ...

Relative paths in the config (password files, serial ports, the outbox) are
resolved against the config file's folder by :func:`resolve_path`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .schema import KeyPath, SiteConfig, _fmt

__all__ = ["ConfigError", "LoadedConfig", "load_site_config", "resolve_path"]


class ConfigError(Exception):
    """The config cannot be used. ``str()`` is one line per problem, ready to print."""

    def __init__(self, path: Path, problems: list[tuple[int | None, str]]) -> None:
        self.path = path
        self.problems = problems
        lines = [f"{path}:{line}: {msg}" if line else f"{path}: {msg}" for line, msg in problems]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class LoadedConfig:
    """The validated config and the folder its relative paths are relative to."""

    site: SiteConfig
    path: Path

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve(self, p: str | Path) -> Path:
        return resolve_path(self.base_dir, p)


def resolve_path(base: Path, p: str | Path) -> Path:
    q = Path(p).expanduser()
    return q if q.is_absolute() else (base / q)


class _NodeError(Exception):
    """A YAML node that cannot become plain data: the line and what is wrong."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def _to_python(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], active: frozenset[int] = frozenset()) -> Any:
    """Turn a composed YAML node into plain data, recording the line of every key path."""
    line = node.start_mark.line + 1
    lines[path] = line
    if id(node) in active:  # an alias that contains itself (&x [*x])
        raise _NodeError(line, f"{_fmt(path) or '(top level)'}: a YAML alias refers to itself")
    inner = active | {id(node)}
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise _NodeError(key_line, f"{_fmt(path) or '(top level)'}: a key must be a plain value")
            key = _scalar(key_node, path)
            child = (*path, key)
            if key in out:
                raise _NodeError(key_line, f"{_fmt(child)}: duplicate key {key!r}")
            lines[child] = key_line
            out[key] = _to_python(value_node, child, lines, inner)
            lines[child] = key_line
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(v, (*path, i), lines, inner) for i, v in enumerate(node.value)]
    return _scalar(node, path)


def _scalar(node: yaml.Node, path: KeyPath) -> Any:
    try:
        value = yaml.SafeLoader("").construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError) as exc:
        # e.g. `2020-02-30` (YAML reads it as a date) or `!!int abc`
        raw = getattr(node, "value", "")
        raise _NodeError(
            node.start_mark.line + 1,
            f"{_fmt(path) or '(top level)'}: cannot read {raw!r} ({node.tag}): quote it if it is text",
        ) from exc
    return value


def _line_for(path: KeyPath, lines: dict[KeyPath, int]) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())


def load_site_config(path: str | Path) -> LoadedConfig:
    """Read, parse and validate; raise :class:`ConfigError` naming every problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(p, [(None, f"cannot read the config file: {exc.strerror or exc}")]) from exc
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(p, [(line, "the config file is not UTF-8 text")]) from exc
    lines: dict[KeyPath, int] = {}
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            raise ConfigError(p, [(None, "the config file is empty")])
        data = _to_python(node, (), lines)
    except _NodeError as exc:
        raise ConfigError(p, [(exc.line, exc.message)]) from exc
    except RecursionError as exc:
        raise ConfigError(p, [(None, "the config nests too deeply (a YAML alias loop?)")]) from exc
    except yaml.MarkedYAMLError as exc:
        mark_line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError(p, [(mark_line, f"not valid YAML: {exc.problem}")]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(p, [(None, f"not valid YAML: {exc}")]) from exc
    if not isinstance(data, dict):
        raise ConfigError(p, [(1, "the top level must be a mapping (key: value)")])
    try:
        site = SiteConfig.model_validate(data)
    except ValidationError as exc:
        problems: list[tuple[int | None, str]] = []
        for err in exc.errors():
            loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and "[" in x and x.endswith("]")))
            where = _fmt(loc) or "(top level)"
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling; see configs/site.example.yaml)"
            elif err["type"] == "missing":
                msg = "required key is missing"
            problems.append((_line_for(loc, lines), f"{where}: {msg}"))
        raise ConfigError(p, problems) from exc
    ref = site.reference_errors()
    if ref:
        raise ConfigError(p, [(_line_for(path_, lines), f"{_fmt(path_)}: {msg}") for path_, msg in ref])
    tls = site.broker.tls
    if tls is not None:  # TLS files are read by the MQTT library: make them absolute now
        base = p.resolve().parent
        resolved = tls.model_copy(
            update={
                k: resolve_path(base, v)
                for k, v in (("ca_file", tls.ca_file), ("cert_file", tls.cert_file), ("key_file", tls.key_file))
                if v is not None
            }
        )
        missing = [str(f) for f in (resolved.ca_file, resolved.cert_file, resolved.key_file) if f and not f.exists()]
        if missing:
            raise ConfigError(
                p, [(_line_for(("broker", "tls"), lines), f"broker.tls: no such file {', '.join(missing)}")]
            )
        site = site.model_copy(update={"broker": site.broker.model_copy(update={"tls": resolved})})
    return LoadedConfig(site=site, path=p.resolve())
