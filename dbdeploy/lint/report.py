"""``dbdeploy lint`` output: readable text, or JSON for tools."""

from __future__ import annotations

import json

from dbdeploy.lint.model import Finding, LintReport


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def summary(report: LintReport) -> str:
    parts = [_plural(len(report.errors), "error"), _plural(len(report.warnings), "warning")]
    if report.allowed:
        parts.append(f"{len(report.allowed)} allowed by the specs")
    return f"{', '.join(parts)} in {_plural(report.migrations, 'migration')}"


def _block(finding: Finding) -> list[str]:
    if finding.allowed is not None:
        return [f"{finding.file}: {finding.location}: allowed {finding.severity} [{finding.rule}]",
                f"  {finding.subject}",
                f"  reason: {finding.allowed.strip()}"]
    return [f"{finding.file}: {finding.location}: {finding.severity} [{finding.rule}]",
            f"  {finding.subject}",
            f"  problem: {finding.problem}",
            f"  fix: {finding.fix}"]


def render_text(report: LintReport) -> str:
    lines: list[str] = []
    ordered = report.errors + report.warnings + report.allowed
    for finding in ordered:
        lines += _block(finding)
        lines.append("")
    lines.append(f"lint: {summary(report)}")
    if report.errors:
        lines.append('error findings stop `dbdeploy generate`; make the change the safe way, or allow it on its '
                     'operation with the reason: allow={"rule-id": "why it is safe here"}')
    return "\n".join(lines)


def render_json(report: LintReport) -> str:
    return json.dumps({
        "findings": [f.as_dict() for f in report.findings],
        "summary": {"errors": len(report.errors), "warnings": len(report.warnings),
                    "allowed": len(report.allowed), "migrations": report.migrations},
        "exit_code": report.exit_code,
    }, indent=2, ensure_ascii=False)
