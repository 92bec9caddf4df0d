"""README's configuration table and Pulumi.yaml's `config:` block, generated from FIELDS.

    python -m canary.config_docs --readme        the table, on stdout
    python -m canary.config_docs --pulumi-yaml   the block, on stdout
    python -m canary.config_docs --write         both, written into README.md and Pulumi.yaml
    python -m canary.config_docs --check         exit status 1 when either differs

tests/unit/test_config_fields.py fails when the files differ from what FIELDS says.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .config_fields import FIELDS, Field, config_text

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PULUMI_YAML = ROOT / "Pulumi.yaml"
README_HEADING = "## Configuration (`canary:` namespace)"
REGENERATE = "python -m canary.config_docs --write"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _default(f: Field) -> str:
    if f.default_doc:
        return f.default_doc
    if f.required:
        return "— (required)"
    return "—" if f.default is None else f"`{config_text(f.default)}`"


def readme_table() -> str:
    rows = ["| key | default | notes |", "|---|---|---|"]
    for f in FIELDS:
        key = f"`{f.name}`" + (" (secret)" if f.secret in ("should", "must") else "")
        notes = f.doc + (f"; {f.more}" if f.more else "")
        rows.append(f"| {key} | {_cell(_default(f))} | {_cell(notes)} |")
    return "\n".join(rows) + "\n"


def pulumi_yaml_config() -> str:
    """The declared keys: those with a default, and the required ones (Pulumi asks for a
    declared key without a default). All strings, as the program reads them."""
    lines = ["config:"]
    for f in FIELDS:
        if f.default is None and not f.required:
            continue
        lines += [f"  {f.name}:", "    type: string"]
        if f.default is not None:
            lines.append(f"    default: {json.dumps(config_text(f.default))}")
        lines.append(f"    description: {json.dumps(f.doc, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"


def readme_with_table(readme: str) -> str:
    """README with its configuration table (the `|` lines after the heading) replaced."""
    lines = readme.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.rstrip("\n") == README_HEADING)
    first = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("|"))
    end = next((i for i in range(first, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "".join(lines[:first]) + readme_table() + "".join(lines[end:])


def pulumi_yaml_with_config(text: str) -> str:
    """Pulumi.yaml with its `config:` block (the last one, to the end) replaced."""
    head, sep, _ = text.partition("\nconfig:\n")
    if not sep:
        raise ValueError("Pulumi.yaml has no top-level `config:` block")
    return head + "\n" + pulumi_yaml_config()


def _outdated() -> list[Path]:
    readme, pulumi = README.read_text(), PULUMI_YAML.read_text()
    return [path for path, text, new in ((README, readme, readme_with_table(readme)),
                                         (PULUMI_YAML, pulumi, pulumi_yaml_with_config(pulumi)))
            if text != new]


def main(argv: list[str]) -> int:
    if argv == ["--readme"]:
        sys.stdout.write(readme_table())
    elif argv == ["--pulumi-yaml"]:
        sys.stdout.write(pulumi_yaml_config())
    elif argv == ["--write"]:
        README.write_text(readme_with_table(README.read_text()))
        PULUMI_YAML.write_text(pulumi_yaml_with_config(PULUMI_YAML.read_text()))
    elif argv == ["--check"]:
        outdated = _outdated()
        for path in outdated:
            print(f"{path.name} differs from canary/config_fields.py: run `{REGENERATE}`", file=sys.stderr)
        return 1 if outdated else 0
    else:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
