"""The monitoring report as one self-contained HTML page, in the model card's style.

Markdown first (tables, lists), rendered with the card's own HTML template, figures embedded as
PNG data URIs so the page travels as one file (and /monitoring serves it as is). Only what
`monitor` computed is shown; nothing here calculates a statistic.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

STATUS_MARK = {"alert": "ALERT", "warn": "warn", "ok": "ok", "too_few_rows": "too few rows",
               "not_logged": "not logged", "no_feedback": "no feedback"}  # fmt: skip


def render_html(report: Mapping[str, Any]) -> str:
    import jinja2
    from markdown_it import MarkdownIt
    from markupsafe import Markup

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown(report))
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("census_pipeline", "templates"), autoescape=True
    )
    template = environment.get_template("model_card.html.j2")
    # markdown-it escaped every string already (raw HTML disabled).
    return str(template.render(title="Monitoring report", body=Markup(body)))


def markdown(report: Mapping[str, Any]) -> str:
    lines = _summary(report)
    lines += _features(report)
    lines += _prediction(report)
    lines += _quality(report)
    lines += ["## Thresholds", "", "```", *_thresholds(report["thresholds"]), "```", ""]
    return "\n".join(lines)


def _summary(report: Mapping[str, Any]) -> list[str]:
    alerts, warnings = report["alerts"], report["warnings"]
    verdict = f"**{len(alerts)} alert(s)**" if alerts else "**No alert**"
    log, ref = report["log"], report["reference"]
    lines = [
        "# Monitoring report",
        "",
        f"> {verdict}, {len(warnings)} warning(s). Window {report['window']['since']} to "
        f"{report['window']['until']} (UTC), generated {report['generated_at']}.",
        "",
        f"- Prediction log: `{report['database']}`, {log['rows']} records "
        f"({_versions(log['model_versions'])}).",
        f"- Reference: the validation split ({ref['rows']} rows) of model "
        f"`{ref['model_version']}`.",
    ]
    if log["not_logged"]:
        lines.append(f"- Not logged (personal-data setting): {', '.join(log['not_logged'])}.")
    for title, items in (("Alerts", alerts), ("Warnings", warnings)):
        if items:
            lines += ["", f"## {title}", "", *(f"- {item}" for item in items)]
    return [*lines, ""]


def _versions(versions: Mapping[str, int]) -> str:
    if not versions:
        return "none"
    return ", ".join(f"model {v}: {n}" for v, n in sorted(versions.items()))


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and 0 < abs(value) < 10 ** (-digits):
        return f"{value:.1e}"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _features(report: Mapping[str, Any]) -> list[str]:
    features = report["features"]
    lines = [
        "## Input drift",
        "",
        "| feature | kind | PSI | level | test | statistic | p-value | missing (ref, now) | "
        "status |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, e in features.items():
        if e["status"] == "not_logged":
            lines.append(f"| {name} | {e['kind']} | | | | | | | not logged |")
            continue
        missing = e["missing_share"]
        lines.append(
            f"| {name} | {e['kind']} | {_number(e['psi'])} | {e['level']} | {e['test']} | "
            f"{_number(e['statistic'])} | {_number(e['p_value'])} | "
            f"{_number(missing['reference'])}, {_number(missing['current'])} | "
            f"{STATUS_MARK[e['status']]} |"
        )
    compared = {n: e for n, e in features.items() if "psi" in e}
    if compared:
        lines += ["", f"![PSI per feature]({_uri(_psi_png(compared, report['thresholds']))})"]
    moved = [n for n, e in compared.items() if e["status"] in ("alert", "warn")]
    for name in moved:
        bins = compared[name]["bins"]
        png = _shares_png(name, bins["labels"], bins["reference"], bins["current"])
        lines += ["", f"![{name}: reference and live shares]({_uri(png)})"]
    return [*lines, ""]


def _prediction(report: Mapping[str, Any]) -> list[str]:
    p = report["prediction"]
    if p is None:
        return ["## Prediction drift", "", "No logged record in the window.", ""]
    rate = p["positive_rate"]
    lines = [
        "## Prediction drift",
        "",
        f"Scores: PSI {_number(p['psi'])} ({p['level']}), KS {_number(p['statistic'])} "
        f"(p {_number(p['p_value'])}): {STATUS_MARK[p['status']]}. Share predicted >50K: "
        f"{_number(rate['current'])} live, {_number(rate['reference'])} on validation.",
    ]
    edges = p["bins"]["edges"]
    labels = [f"<= {edges[0]:.2f}"] + [f"<= {e:.2f}" for e in edges[1:]] + ["higher", "missing"]
    png = _shares_png("score", labels, p["bins"]["reference"], p["bins"]["current"])
    return [*lines, "", f"![score distribution]({_uri(png)})", ""]


def _quality(report: Mapping[str, Any]) -> list[str]:
    q = report["quality"]
    lines = ["## Live quality (records with feedback)", ""]
    if q["status"] == "no_feedback":
        return [*lines, "No feedback in the window.", ""]
    lines.append(
        f"{q['feedback_rows']} records with a true label ({STATUS_MARK[q['status']]}; judged "
        f"from {q['min_feedback']}). Intervals: bootstrap of the confusion counts; ROC AUC: "
        "Hanley and McNeil's standard error."
    )
    lines += ["", "| metric | live | interval | validation |", "|---|---|---|---|"]
    for metric, e in q["overall"].items():
        lines.append(
            f"| {metric} | {_number(e['value'])} | [{_number(e['ci_low'])}, "
            f"{_number(e['ci_high'])}] | {_number(e['reference'])} |"
        )
    lines += ["", "| slice | n | positives | accuracy | precision | recall | F1 | ROC AUC |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in q["slices"]:
        m = row["metrics"]
        cells = " | ".join(
            f"{_number(m[k]['value'])} [{_number(m[k]['ci_low'])}, {_number(m[k]['ci_high'])}]"
            for k in ("accuracy", "precision", "recall", "f1", "roc_auc")
        )
        lines.append(f"| {row['feature']} = {row['value']} | {row['n']} | {row['positives']} | "
                     f"{cells} |")  # fmt: skip
    return [*lines, ""]


def _thresholds(settings: Mapping[str, Any], prefix: str = "") -> list[str]:
    lines = []
    for key, value in settings.items():
        if isinstance(value, Mapping):
            lines += _thresholds(value, f"{prefix}{key}.")
        else:
            lines.append(f"{prefix}{key}: {value}")
    return lines


# --- figures ------------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=72)
    FigureCanvasAgg(figure)
    return figure


def _uri(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _psi_png(features: Mapping[str, Mapping[str, Any]], thresholds: Mapping[str, Any]) -> Any:
    names = list(features)[::-1]
    values = [features[n]["psi"] for n in names]
    colours = {"alert": "#e03131", "warn": "#f08c00"}
    fig = _figure(6.5, 0.6 + 0.28 * len(names))
    ax = fig.add_subplot()
    ax.barh(names, values, color=[colours.get(features[n]["status"], "#1c7ed6") for n in names])
    for bound, style in ((thresholds["psi_warn"], ":"), (thresholds["psi_alert"], "--")):
        ax.axvline(bound, color="#495057", linestyle=style, linewidth=1)
    ax.set_xlabel("PSI against the reference (dotted: warn, dashed: alert)", fontsize=9)
    ax.tick_params(labelsize=8)
    fig.subplots_adjust(left=0.25, right=0.97, bottom=0.6 / (0.6 + 0.28 * len(names)) + 0.05)
    return fig


def _shares_png(
    name: str, labels: Sequence[str], reference: Sequence[float], current: Sequence[float]
) -> Any:
    import numpy as np

    positions = np.arange(len(labels))
    fig = _figure(6.5, 0.8 + 0.22 * len(labels))
    ax = fig.add_subplot()
    ax.barh(positions + 0.2, reference, height=0.4, color="#adb5bd", label="reference")
    ax.barh(positions - 0.2, current, height=0.4, color="#1c7ed6", label="live")
    ax.set_yticks(positions, [str(label) for label in labels])
    ax.invert_yaxis()
    ax.set_title(f"{name}: share per bin", fontsize=10)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=8)
    fig.subplots_adjust(left=0.3, right=0.97)
    return fig
