"""Writing a benchmark's results: results.json (everything), table.md (for people),
the pool file that was run, and two plots (accuracy per system, routing confusion)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return "—"
    return f"{value / reference:.3f}"


def table(report: dict[str, Any]) -> str:
    """One row per system: held-in and held-out means, as ratios to oracle and multitask,
    and what the routing did."""
    systems: dict[str, dict[str, Any]] = report["systems"]
    oracle = systems.get("oracle", {}).get("heldin_mean")
    multitask = systems.get("multitask", {})
    with_multitask = bool(multitask)
    columns = ["system", "held-in", "x oracle"]
    columns += ["x multitask"] if with_multitask else []
    columns += ["held-out"]
    columns += ["x multitask (held-out)"] if with_multitask else []
    columns += ["routing accuracy", "routing entropy", "experts per input", "ms / 1000 inputs"]
    lines = [
        f"# moerge bench: pool `{report['pool']}` on {report['base_model']['name']}",
        "",
        "`<method>` routes with the text and the task's candidate labels, `<method>:text` with "
        "the text alone (`+<combination>`: how the chosen experts combine; otherwise "
        f"`{report['combinations'][0]}`). Routing entropy is in nats; time is the whole answer.",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for name, s in systems.items():
        cells = [name, _fmt(s["heldin_mean"]), _ratio(s["heldin_mean"], oracle)]
        if with_multitask:
            cells.append(_ratio(s["heldin_mean"], multitask.get("heldin_mean")))
        cells.append(_fmt(s["heldout_mean"]))
        if with_multitask:
            cells.append(_ratio(s["heldout_mean"], multitask.get("heldout_mean")))
        cells += [
            _fmt(s["routing_accuracy"]),
            _fmt(s.get("routing_entropy"), 2),
            _fmt(s.get("experts_active"), 1),
            _fmt(s.get("ms_per_1000"), 0),
        ]
        lines.append("| " + " | ".join(cells) + " |")
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


def best_router(report: dict[str, Any]) -> str | None:
    """The routed system (text only, or per token) with the best held-in mean."""
    candidates = {
        name: s["heldin_mean"]
        for name, s in report["systems"].items()
        if s.get("kind") in {"router", "token"}
        and s.get("assignments")
        and s.get("heldin_mean") is not None
        and (":text" in name or s.get("kind") == "token")
    }
    return max(candidates, key=lambda n: candidates[n]) if candidates else None


def plot_accuracy(report: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    systems = report["systems"]
    names = list(systems)
    heldin = [systems[n]["heldin_mean"] or 0.0 for n in names]
    heldout = [systems[n]["heldout_mean"] or 0.0 for n in names]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(8, 0.45 * len(names) + 2), 4.8))
    ax.bar(x - 0.2, heldin, 0.4, label="held-in mean")
    ax.bar(x + 0.2, heldout, 0.4, label="held-out mean")
    for ref, style in (("base", ":"), ("multitask", "--")):
        value = systems.get(ref, {}).get("heldout_mean")
        if value is not None:
            ax.axhline(value, color="gray", linestyle=style, linewidth=1, label=f"{ref} held-out")
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(f"moerge bench: pool {report['pool']}")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_confusion(report: dict[str, Any], system: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    assignments: dict[str, list[float]] = report["systems"][system]["assignments"]
    tasks = list(assignments)
    experts = [*report.get("experts_order", []), "base (abstained)"]
    matrix = np.array([assignments[t] for t in tasks])
    if matrix.shape[1] != len(experts):
        experts = [f"expert {i}" for i in range(matrix.shape[1])]
    fig, ax = plt.subplots(
        figsize=(max(7.0, 3.5 + 0.55 * len(experts)), max(4.0, 2.5 + 0.4 * len(tasks)))
    )
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(tasks)):
        for j in range(len(experts)):
            if matrix[i, j] >= 0.005:
                color = "white" if matrix[i, j] > 0.6 else "black"
                ax.text(
                    j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=6, color=color
                )
    ax.set_xticks(range(len(experts)), experts, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(tasks)), tasks, fontsize=7)
    ax.set_xlabel("expert chosen (share of the task's inputs)")
    ax.set_title(f"routing of {system}: task -> expert", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.03)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(
    out_dir: Path, report: dict[str, Any], *, pool_file: Path | None = None
) -> dict[str, Path]:
    """Write every output file; returns them by role."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"results": out_dir / "results.json", "table": out_dir / "table.md"}
    if pool_file is not None:
        files["pool"] = out_dir / "pool.toml"
        shutil.copyfile(pool_file, files["pool"])
    files["accuracy_plot"] = plot_accuracy(report, out_dir / "accuracy.png")
    best = best_router(report)
    if best is not None:
        report["best_router"] = best
        files["confusion_plot"] = plot_confusion(report, best, out_dir / "routing_confusion.png")
    report["files"] = {role: path.name for role, path in files.items()}
    files["results"].write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    files["table"].write_text(table(report))
    return files
