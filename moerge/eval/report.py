"""Writing a benchmark's results: results.json (everything) and table.md (for people)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return "—"
    return f"{value / reference:.3f}"


def table(report: dict[str, Any]) -> str:
    """One row per system: held-in mean (and as a ratio to oracle), held-out mean, routing."""
    systems: dict[str, dict[str, Any]] = report["systems"]
    oracle = systems.get("oracle", {}).get("heldin_mean")
    lines = [
        f"# moerge bench: pool `{report['pool']}` on {report['base_model']['name']}",
        "",
        f"Combination `{report['combination']}`; `<method>` routes with the text and the task's "
        "candidate labels, `<method>:text` with the text alone.",
        "",
        "| system | held-in mean | x oracle | held-out mean | routing accuracy | abstained | "
        "routing ms / 1000 inputs |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in systems.items():
        per_input = s.get("routing_ms_per_1000")
        lines.append(
            f"| {name} | {_fmt(s['heldin_mean'])} | {_ratio(s['heldin_mean'], oracle)} | "
            f"{_fmt(s['heldout_mean'])} | {_fmt(s['routing_accuracy'])} | "
            f"{_fmt(s['abstain_rate'])} | {_fmt(per_input, 1) if per_input else '—'} |"
        )
    tasks: dict[str, dict[str, Any]] = report["tasks"]
    names = list(tasks)
    lines += [
        "",
        "## Accuracy per task",
        "",
        "| system | "
        + " | ".join(f"{n}{'' if tasks[n]['heldin'] else ' (held out)'}" for n in names)
        + " |",
        "|---|" + "---|" * len(names),
    ]
    for name, s in systems.items():
        cells = [_fmt(s["per_task"].get(n)) for n in names]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Test examples per task: " + ", ".join(f"{n} {tasks[n]['test_size']}" for n in names) + ".",
        "",
    ]
    return "\n".join(lines)


def write_report(out_dir: Path, report: dict[str, Any]) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / "results.json"
    results.write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    markdown = out_dir / "table.md"
    markdown.write_text(table(report))
    return results, markdown
