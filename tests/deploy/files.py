"""Readers of what deploy/ ships: systemd units, the EnvironmentFile example, the settings' names."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("donebox*.*"))
SERVICES = [u for u in UNITS if u.suffix == ".service"]
ENV_EXAMPLE = DEPLOY / "donebox.env.example"


def read_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A unit file as {section: [(key, value), ...]}: systemd's rules, keys may repeat, # and ; comment."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None and key.strip(), f"{path.name}:{n}: not key=value: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def values(path: Path, section: str, key: str) -> list[str]:
    """Every value ``key`` has in ``section`` of the unit at ``path``."""
    return [v for k, v in read_unit(path).get(section, []) if k == key]


def exec_start(path: Path) -> list[str]:
    """The unit's one ExecStart command line, split as systemd splits it."""
    (line,) = values(path, "Service", "ExecStart")
    return shlex.split(line.lstrip("-@:+!"))


def env_file(path: Path = ENV_EXAMPLE) -> tuple[dict[str, str], set[str]]:
    """(the KEY=value lines in force, the names only mentioned in ``# KEY=value`` comments)."""
    live, commented = {}, set()
    for line in path.read_text().splitlines():
        if m := re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line):
            live[m[1]] = m[2]
        elif m := re.fullmatch(r"#\s*([A-Z][A-Z0-9_]*)=.*", line):
            commented.add(m[1])
    return live, commented


def setting_names() -> set[str]:
    """The environment variables app/settings.py reads (``e("NAME"...)`` in ``load``)."""
    source = (ROOT / "app" / "settings.py").read_text()
    return set(re.findall(r'\be\("([A-Z][A-Z0-9_]*)"', source))


def readme_production_names() -> set[str]:
    """The settings the README's "Running in production" block exports: the ones production needs."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Running in production", 1)[1]
    export = section[section.index("    export ") :].split("\n    donebox ", 1)[0]
    return set(re.findall(r"\b([A-Z][A-Z0-9_]*)=", export))


def fill(path: Path = ENV_EXAMPLE, **values: str) -> dict[str, str]:
    """The env file at ``path`` as an operator fills it in: its lines with ``values`` put in, and
    commented settings uncommented with theirs; a name the file does not mention is an error."""
    live, commented = env_file(path)
    unknown = set(values) - set(live) - commented
    assert not unknown, f"not in {path.name}: {unknown}"
    return live | values
