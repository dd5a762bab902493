"""Write docs/config.md, every method's config keys with their types and defaults, from the schemas themselves.

python scripts/config_reference.py            # rewrite docs/config.md
python scripts/config_reference.py --check    # exit 1 if docs/config.md is out of date (the test suite runs it)
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields, is_dataclass
from pathlib import Path

from semstyle.conf import SCHEMAS
from semstyle.conf.common import RunConfig
from semstyle.conf.feedforward import TRAIN_SCHEMAS

OUT = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def _type(field) -> str:
    return getattr(field.type, "__name__", None) or str(field.type).replace("typing.", "")


def _default(value) -> str:
    if isinstance(value, str) and "/semstyle/assets/" in value:
        return "`(bundled) " + value.split("/semstyle/assets/", 1)[1] + "`"
    if isinstance(value, list) and any(isinstance(v, str) and "/semstyle/assets/" in v for v in value):
        return ", ".join(_default(v) for v in value)  # no machine's install path in the generated docs
    return f"`{value!r}`" if value is not None else "`null`"


def _rows(node, prefix: str = "", skip=()) -> list[str]:
    """Table rows of a config node; ``skip`` maps keys to the value at which they are left out."""
    rows = []
    for f in fields(node):
        if f.name in skip and skip[f.name] == getattr(node, f.name):
            continue
        value = getattr(node, f.name)
        if is_dataclass(value):
            rows += _rows(value, f"{prefix}{f.name}.")
        else:
            rows.append(f"| `{prefix}{f.name}` | {_type(f)} | {_default(value)} |")
    return rows


def _apply(node, preset: dict):
    for key, value in preset.items():
        if isinstance(value, dict):
            _apply(getattr(node, key), value)
        else:
            setattr(node, key, value)
    return node


def renamed_keys() -> list[tuple[str, str, str]]:
    """``(method, old, new)`` for every renamed key; the method is left out where all methods share the rename."""
    seen: dict[tuple[str, str], list[str]] = {}
    for name, schema in SCHEMAS.items():
        for old, new in schema.renamed.items():
            seen.setdefault((old, new), []).append(name)
    return [(", ".join(names), old, new) for (old, new), names in seen.items()]


def render() -> str:
    base = RunConfig()
    common = {f.name: getattr(base, f.name) for f in fields(RunConfig)}  # shown per method only where it differs
    parts = [
        "# Config keys",
        "",
        "Generated from the schemas in `semstyle/conf/` by `python scripts/config_reference.py`: every key, its "
        "type and its default. The comments beside each default in `semstyle/conf/*.py` give its source. "
        "`null` keys of a config group (dst `base`, doodle `style_loss`) are filled from the group's table when "
        "a run starts, and `config.yaml` in the run folder shows the values that ran.",
        "",
        "Relative file paths are read from the current folder. `${asset:NAME}` is the file `NAME` bundled under "
        "`semstyle/assets/` (e.g. `style: ${asset:styles/starry_night.jpg}`; the defaults marked *(bundled)* "
        "below are such files): the bundled configs name their images this way, so they run from any folder.",
        "",
        "One vocabulary across methods: `content` and `style` are the images, `content_map` and `style_map` their "
        "region maps (the doodle's `content_map` is the doodle it paints), `resize_maps` lets a map of another size "
        "through, and `content_weight`, `style_weight`, `content_layers`, `style_layers`, `style_scale` mean the same "
        "in every method. `reconstruct` has `image`: the one picture whose `target` (content or style) it rebuilds. "
        "Old spellings still load, with a deprecation warning: "
        + ", ".join(f"`{old}` → `{new}`" + (f" ({name})" if name else "") for name, old, new in renamed_keys())
        + ".",
        "",
        "## Keys of every method",
        "",
        "| key | type | default |",
        "|---|---|---|",
        *_rows(base, skip={"method": base.method}),
        "",
    ]
    train = {f"train: {name}": schema for name, schema in TRAIN_SCHEMAS.items()}  # semstyle train CONFIG
    for name, schema in {**SCHEMAS, **train}.items():
        node = _apply(schema.config(), schema.preset)
        parts += [f"## `{name}`", "", schema.summary + ".", ""]
        if schema.groups:
            for key, table in schema.groups.items():
                parts.append(
                    f"Config group `{key}`: "
                    + "; ".join(
                        f"`{choice}` fills " + ", ".join(f"`{k}`={v!r}" for k, v in values.items())
                        for choice, values in table.items()
                    )
                    + "."
                )
            parts.append("")
        parts += ["| key | type | default |", "|---|---|---|", *_rows(node, skip={**common, "method": node.method}), ""]
    return "\n".join(parts)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true")
    args = p.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.is_file() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run python scripts/config_reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
