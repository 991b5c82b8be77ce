"""app.errors: one tree, drawn in its docstring, of every exception class of app/, jobs/ and parsers/."""

import ast
import builtins
from pathlib import Path

import app.errors

ROOT = Path(__file__).resolve().parents[2]
BUILTIN = {n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException)}
GONE = {"app/inbound/webhook_auth.py"}  # on its way out: its checks move to parsers/providers


def exception_classes() -> list[tuple[str, str]]:
    """(class name, module) of every class deriving, through ours, from a built-in exception."""
    classes: list[tuple[str, list[str], str]] = []
    for folder in ("app", "jobs", "parsers"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in GONE:
                continue
            module = rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef):
                    bases = [
                        b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "") for b in node.bases
                    ]
                    classes.append((node.name, bases, module))
    found: list[tuple[str, str]] = []
    names: set[str] = set()
    grew = True
    while grew:
        grew = False
        for name, bases, module in classes:
            if (name, module) not in found and any(b in BUILTIN or b in names for b in bases):
                found.append((name, module))
                names.add(name)
                grew = True
    return found


def drawn(name: str) -> str:
    """The docstring's line that draws ``name``, or ''."""
    return next((line for line in app.errors.__doc__.splitlines() if f"+-- {name} " in f"{line} "), "")


def test_the_errors_docstring_draws_every_exception_class_with_its_module():
    missing = [
        f"{name} ({module})"
        for name, module in exception_classes()
        if not drawn(name) or (module != "app.errors" and module not in drawn(name))
    ]
    assert missing == [], "draw these in app/errors.py's docstring, with their module"


def test_no_two_exception_classes_share_a_name():
    names = [name for name, _ in exception_classes()]
    assert sorted({n for n in names if names.count(n) > 1}) == []
