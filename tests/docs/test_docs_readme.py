"""The README is a guide: short, set-up commands first, and every page it and docs/ point at is
there. Reference and measurements live in docs/*.md; these tests keep them reachable."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
README_LIMIT_BYTES = 15 * 1024
SETUP_COMMANDS = ("bash scripts/run-exporter", "bash scripts/test")


FENCED = re.compile(r"^```.*?^```$", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")


def _prose(text: str) -> str:
    return FENCED.sub("", text)


def _slugs(text: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown page (duplicates get -1, -2, ...)."""
    seen: dict[str, int] = {}
    for line in _prose(text).splitlines():
        match = re.match(r"#{1,6} (.+)", line)
        if not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        if count:
            seen[f"{slug}-{count}"] = 1
    return set(seen)


def test_the_readme_is_short() -> None:
    size = len(README.read_bytes())
    assert size <= README_LIMIT_BYTES, (
        f"README.md is {size} bytes, over {README_LIMIT_BYTES}: move reference to docs/"
    )


def test_the_readme_opens_with_the_two_set_up_commands() -> None:
    lines = README.read_text().splitlines()
    assert lines[0].startswith("# ")
    opening = next(i for i, line in enumerate(lines) if line.startswith("```"))
    assert opening <= 10, "the set-up commands must come right after the title"
    assert all(not line.startswith("## ") or "Set up" in line for line in lines[1:opening])
    closing = lines.index("```", opening + 1)
    commands = [line.split("#")[0].strip() for line in lines[opening + 1 : closing]]
    assert tuple(commands) == SETUP_COMMANDS
    for command in commands:
        assert (ROOT / command.split()[1]).is_file(), command


def test_ci_runs_the_readmes_test_command() -> None:
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert SETUP_COMMANDS[1] in ci


def test_every_docs_page_is_linked_from_the_readme() -> None:
    readme = README.read_text()
    unlinked = [p.name for p in DOCS if f"(docs/{p.name})" not in readme]
    assert not unlinked, f"add a line to the README's More list for {unlinked}"


def test_every_relative_link_resolves_to_a_file_and_heading() -> None:
    broken = []
    for page in [README, *DOCS]:
        for target in LINK.findall(_prose(page.read_text())):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(ROOT)} -> {target}"
            if not file.exists():
                broken.append(where)
                continue
            if anchor and file.suffix == ".md" and anchor not in _slugs(file.read_text()):
                broken.append(where + " (no such heading)")
    assert not broken, "\n".join(broken)


def test_every_bench_script_has_its_results_documented() -> None:
    documented = "\n".join(p.read_text() for p in DOCS)
    missing = [
        s.name for s in sorted((ROOT / "bench").glob("bench_*.py")) if s.name not in documented
    ]
    assert not missing, f"record the results of {missing} in docs/benchmarks.md"
