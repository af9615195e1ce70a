"""Every alert has a runbook with the four sections, every runbook an alert, every URL a file."""

from __future__ import annotations

import re

import yaml
from alerts_helpers import CRD_FILE, RULES_FILE, RUNBOOKS_DIR
from click.testing import CliRunner

from memorywatch.alerts import runbooks
from memorywatch.alerts.model import DEFAULT_RUNBOOK_BASE_URL
from memorywatch.cli import main


def rule_alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_every_alert_has_a_runbook_with_all_sections_in_order() -> None:
    for name in {str(rule["alert"]) for rule in rule_alerts()}:
        path = RUNBOOKS_DIR / f"{name}.md"
        assert path.is_file(), f"alert {name} has no runbook {path}"
        text = path.read_text()
        assert text.startswith(f"# {name}\n"), f"{path} must start with '# {name}'"
        assert runbooks.missing_sections(text) == [], path
        positions = [text.index(f"\n{s}\n") for s in runbooks.SECTIONS]
        assert positions == sorted(positions), f"{path}: sections out of order"
        for section, body in zip(runbooks.SECTIONS, _bodies(text), strict=True):
            assert len(body.split()) >= 15, f"{path}: {section} is nearly empty"
        assert text.count(runbooks.BEGIN) == 1 and text.count(runbooks.END) == 1, path


def _bodies(text: str) -> list[str]:
    parts = re.split(r"^## ", text, flags=re.MULTILINE)
    by_title = {p.split("\n", 1)[0]: p.split("\n", 1)[1] for p in parts[1:]}
    return [by_title[s.removeprefix("## ")] for s in runbooks.SECTIONS]


def test_diagnosis_sections_give_commands() -> None:
    for name in runbooks.list_alerts(RUNBOOKS_DIR):
        diagnosis = _bodies((RUNBOOKS_DIR / f"{name}.md").read_text())[2]
        assert "redis-cli" in diagnosis or "curl" in diagnosis, f"{name}: no command"
        assert re.search(r"`[a-z_:]+(\{|\[|`| )", diagnosis), f"{name}: no PromQL"


def test_every_runbook_has_an_alert() -> None:
    alerts = {str(rule["alert"]) for rule in rule_alerts()}
    assert set(runbooks.list_alerts(RUNBOOKS_DIR)) == alerts


def test_every_runbook_url_resolves_to_a_runbook_file() -> None:
    crd_groups = yaml.safe_load(CRD_FILE.read_text())["spec"]["groups"]
    crd_rules = [r for g in crd_groups for r in g["rules"] if "alert" in r]
    for rule in rule_alerts() + crd_rules:
        url = rule["annotations"]["runbook_url"]  # type: ignore[index]
        assert url.startswith(DEFAULT_RUNBOOK_BASE_URL), url
        relative = url.removeprefix(DEFAULT_RUNBOOK_BASE_URL)
        assert relative == f"{rule['alert']}.md"
        assert (RUNBOOKS_DIR / relative).is_file(), url


def test_runbook_command_prints_the_page() -> None:
    result = CliRunner().invoke(
        main, ["runbook", "agentlocklost", "--runbooks-dir", str(RUNBOOKS_DIR)]
    )
    assert result.exit_code == 0, result.output
    assert result.output == (RUNBOOKS_DIR / "AgentLockLost.md").read_text()


def test_runbook_command_finds_the_checkout_without_flags() -> None:
    result = CliRunner().invoke(main, ["runbook", "RedisDown"])
    assert result.exit_code == 0 and result.output.startswith("# RedisDown\n")


def test_unknown_runbook_is_one_line_with_close_matches() -> None:
    result = CliRunner().invoke(main, ["runbook", "LockLost", "--runbooks-dir", str(RUNBOOKS_DIR)])
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "AgentLockLost" in lines[0], result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
