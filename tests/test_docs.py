"""The documentation's examples still work as far as they can without their inputs: the Python examples' imports,
the names the docs cite, and the command lines of their shell blocks. Nothing imports or runs the docs, so a rename
inside semstyle would otherwise leave them wrong unnoticed (three were, until these tests)."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import shlex
from pathlib import Path

from semstyle.cli import build_parser, parse
from semstyle.errors import SemstyleError

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
DOTTED_NAME = re.compile(r"`(semstyle(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def fenced_blocks(text: str, languages: tuple[str, ...]) -> list[str]:
    """The contents of the fenced code blocks whose info string is one of ``languages``."""
    blocks, language, lines = [], None, []
    for line in text.splitlines():
        if line.startswith("```"):
            if language is None:
                language, lines = line[3:].strip() or "none", []
            else:
                if language in languages:
                    blocks.append("\n".join(lines))
                language = None
        elif language is not None:
            lines.append(line)
    return blocks


def resolve(dotted: str):
    """The object a dotted name names: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[i:]:
            obj = getattr(obj, attribute)
        return obj
    raise ModuleNotFoundError(dotted)


def test_the_python_examples_imports_and_calls_fit():
    """Each Python example's semstyle imports run, and its calls of what they import bind to the signatures
    (argument values are not checked: the examples' files do not exist)."""
    failed = []
    for doc in DOCS:
        for block in fenced_blocks(doc.read_text(), ("python",)):
            tree, names = ast.parse(block), {}
            for node in tree.body:
                if isinstance(node, (ast.Import, ast.ImportFrom)) and "semstyle" in ast.unparse(node):
                    try:
                        exec(compile(ast.Module([node], []), str(doc), "exec"), names)
                    except ImportError as error:
                        failed.append(f"{doc.relative_to(ROOT)}: {ast.unparse(node)}: {error}")
            for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
                target = _imported(call.func, names)
                if target is None or any(isinstance(a, ast.Starred) for a in call.args):
                    continue
                keywords = {}
                for k in call.keywords:
                    if k.arg is not None:
                        keywords[k.arg] = None
                    elif isinstance(k.value, ast.Dict):  # **{"semantic.auto_maps": 4}
                        keywords.update((ast.literal_eval(key), None) for key in k.value.keys)
                try:
                    inspect.signature(target).bind(*call.args, **keywords)
                except TypeError as error:
                    failed.append(f"{doc.relative_to(ROOT)}: {ast.unparse(call)}: {error}")
    assert not failed, "\n".join(failed)


def _imported(func: ast.expr, names: dict):
    """The object an example calls, when it is a name (or an attribute of a name) its semstyle imports bound."""
    if isinstance(func, ast.Name):
        return names.get(func.id)
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in names:
        return getattr(names[func.value.id], func.attr, None)
    return None


def test_the_names_the_docs_cite_exist():
    failed = []
    for doc in DOCS:
        for name in sorted(set(DOTTED_NAME.findall(doc.read_text()))):
            try:
                resolve(name)
            except (ImportError, AttributeError) as error:
                failed.append(f"{doc.relative_to(ROOT)}: {name}: {error}")
    assert not failed, "\n".join(failed)


def test_the_shell_examples_command_lines_parse():
    """Every ``semstyle ...`` line of a shell block names a command and options that exist (usage lines with
    ``[--option]`` brackets and templates with ``<placeholders>`` are left out)."""
    failed, checked = [], 0
    for doc in DOCS:
        for block in fenced_blocks(doc.read_text(), ("bash", "sh", "console", "none")):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.strip().removeprefix("$ ").split(" #")[0]
                for command in re.split(r"\s*(?:&&|\|\||;|\|)\s*", line):
                    if not command.startswith("semstyle ") or "[-" in command or "<" in command:
                        continue
                    checked += 1
                    try:
                        parse(build_parser(), shlex.split(command)[1:])
                    except (SemstyleError, SystemExit) as error:
                        failed.append(f"{doc.relative_to(ROOT)}: {command}: {error}")
    assert checked > 20
    assert not failed, "\n".join(failed)


def test_every_bundled_image_has_its_source_and_licence_in_the_assets_readme():
    # semstyle/assets/README.md is where a bundled picture's source and licence are recorded, one table row each
    # (its first cell names the files); a picture added without its row would ship with neither
    assets = ROOT / "semstyle" / "assets"
    first_cells = [
        line.split("|")[1]
        for line in (assets / "README.md").read_text(encoding="utf-8").splitlines()
        if line.startswith("|")
    ]
    named = {Path(name).name for cell in first_cells for name in re.findall(r"`([^`]+)`", cell)}
    images = sorted(assets.glob("*/*.jpg"))  # what setup.cfg packages: assets/*/*.jpg
    assert len(images) >= 30
    missing = [p.relative_to(assets).as_posix() for p in images if p.name not in named]
    assert not missing, f"no row in semstyle/assets/README.md: {missing}"
