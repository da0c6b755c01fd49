#!/usr/bin/env python3
"""Writes the values table of helm/cwmp-stream/README.md from values.yaml (each key's
comment, helm-docs style: the comment block right above a key describes it) and
values.schema.json (types). `--check` fails when the README is out of date; the chart
tests run it so."""

import json
import re
import sys
from pathlib import Path

CHART = Path(__file__).resolve().parent.parent / "helm" / "cwmp-stream"
START, END = "<!-- values:start -->", "<!-- values:end -->"


def schema_type(schema, path):
    node = schema
    for part in path:
        node = node.get("properties", {}).get(part)
        if node is None:
            return ""
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    t = node.get("type", "")
    return "/".join(t) if isinstance(t, list) else t


def rows():
    """(key, type, default, description) for every leaf of values.yaml, and for every
    key whose value is a list written below it."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    stack, comment, entries = [], [], []
    list_parent = None
    for line in (CHART / "values.yaml").read_text().splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if not stripped:
            comment = []
            continue
        if stripped.startswith("#"):
            text = stripped.lstrip("#")
            # "#  key: value" and "#  - item" lines are commented-out examples, not prose.
            if not re.match(r"^\s{2,}\S", text) and not re.match(r"^\s*-\s", text):
                comment.append(text.strip())
            continue
        if list_parent is not None and indent > list_parent:
            continue
        list_parent = None
        if stripped.startswith("- "):
            list_parent = stack[-1][0] if stack else -1
            continue
        m = re.match(r"^(\s*)([A-Za-z0-9_.-]+):(?:\s+(.*))?$", line)
        if not m:
            comment = []
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key, value = m.group(2), (m.group(3) or "").split(" #")[0].strip()
        path = [s[1] for s in stack] + [key]
        entries.append((path, value or None, " ".join(comment)))
        if not value:
            stack.append((indent, key))
        comment = []
    paths = [tuple(p) for p, _, _ in entries]
    table = []
    for path, value, desc in entries:
        if value is None:
            parent = any(len(q) > len(path) and q[: len(path)] == tuple(path) for q in paths)
            if parent and not desc:
                continue
            # A table's comment says what its keys are for; a list written below its key.
            value = "(table)" if parent else "(list)"
        table.append((".".join(path), schema_type(schema, path), value, desc))
    return table


def render():
    lines = ["| Key | Type | Default | Description |", "|-----|------|---------|-------------|"]
    for key, typ, default, desc in rows():
        default, desc = default.replace("|", "\\|"), desc.replace("|", "\\|")
        lines.append(f"| `{key}` | {typ} | `{default}` | {desc} |")
    return "\n".join(lines)


def main():
    readme = CHART / "README.md"
    text = readme.read_text()
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    new = f"{before}{START}\n{render()}\n{END}{after}"
    if "--check" in sys.argv:
        if new != text:
            print("helm/cwmp-stream/README.md: the values table is out of date: run scripts/chart-readme.py",
                  file=sys.stderr)
            sys.exit(1)
        return
    readme.write_text(new)


if __name__ == "__main__":
    main()
