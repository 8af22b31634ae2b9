"""The model card, generated only from the pipeline's own outputs.

Every number on the card is read from an artifact (metrics, curves, slices, audit, data report,
model metadata, params, verdict) at build time, so the card cannot disagree with the model it
describes. The prose lives in Jinja2 templates rendered with `StrictUndefined`: a field the
artifacts lack is an error, never a blank. The Markdown is the source; the HTML page is the same
Markdown rendered with its figures embedded as data URIs and its style inline, so it is one
self-contained file the service can hand out.
"""

from __future__ import annotations

import base64
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from census_pipeline.artifact import read_metadata
from census_pipeline.audit import new_figure, png_bytes
from census_pipeline.config import FAIRNESS_PARITIES, CardParams, Params, PathsParams
from census_pipeline.errors import PipelineError
from census_pipeline.files import (
    all_or_nothing,
    json_bytes,
    read_json,
    remove_all,
    replace_all,
    sha256_file,
)
from census_pipeline.gate import read_slices
from census_pipeline.schema import CROSS
from census_pipeline.signing import card_seal, card_seal_path, signing_key_from_env

log = logging.getLogger(__name__)

SLICE_METRICS: Final = ("precision", "recall", "f1", "fpr", "fnr")
# Text that must never reach a published card: template syntax, to-do markers, and the spelling
# of a missing value where a number belongs.
PLACEHOLDER: Final = re.compile(
    r"\{\{|\}\}|\{%|%\}|\bTODO\b|\bTBD\b|\bNone\b|\bnull\b|(?i:\bnan\b|\binf\b)"
)


@dataclass(frozen=True)
class CardResult:
    markdown: Path
    html: Path
    figures: tuple[Path, ...]


@dataclass(frozen=True)
class CardInputs:
    """Everything the card may say, as read from the artifacts."""

    metrics: dict[str, Any]
    identity: dict[str, Any]
    metadata: dict[str, Any]
    data_report: dict[str, Any]
    audit: dict[str, Any]
    verdict: dict[str, Any]
    slices: pd.DataFrame
    curves: dict[str, pd.DataFrame]
    audit_figures: dict[str, bytes]
    importance: pd.DataFrame
    tradeoff: dict[str, Any]
    tradeoff_figure: bytes
    about: CardParams


def card(params: Params) -> CardResult:
    """Read the artifacts, draw the figures, render both pages, check them, then write them.

    Nothing is written until both pages passed the placeholder check; after any failure neither
    page nor any figure of the card is left, so the service cannot serve a half-updated card.
    """
    paths = params.paths
    stale = sorted(paths.card_figures_dir.glob("*.png"))
    seal_path = card_seal_path(paths.model_card_html)
    with all_or_nothing([paths.model_card_md, paths.model_card_html, seal_path, *stale]):
        key = signing_key_from_env()
        inputs = read_inputs(params)
        figures = draw_figures(inputs) | inputs.audit_figures
        figures["tradeoff"] = inputs.tradeoff_figure
        context = card_context(inputs)
        folder = paths.card_figures_dir.relative_to(paths.card_dir).as_posix()
        markdown = render_markdown(context, {n: f"{folder}/{n}.png" for n in figures})
        embedded = render_markdown(context, {n: _data_uri(data) for n, data in figures.items()})
        html = render_html(embedded, title=f"Model card: {inputs.metadata['model_version']}")
        for text, path in ((markdown, paths.model_card_md), (html, paths.model_card_html)):
            refuse_placeholders(text, path.name)
        files = {paths.card_figures_dir / f"{name}.png": data for name, data in figures.items()}
        remove_all(p for p in stale if p not in files)
        pages = {
            paths.model_card_md: markdown.encode("utf-8"),
            paths.model_card_html: html.encode(),
        }
        # The gate signed the verdict before this card existed; the seal covers the card itself
        # and names the verdict it shows (docs/trust.md).
        seal = card_seal(
            pages[paths.model_card_html], pages[paths.model_card_md], inputs.verdict, key
        )
        replace_all({**files, **pages, seal_path: json_bytes(seal)})
    log.info("card: %d figures, %d characters of HTML", len(figures), len(html))
    return CardResult(paths.model_card_md, paths.model_card_html, tuple(files))


# --- reading --------------------------------------------------------------------------------

# The verdict's `inputs` entries for the files the card reads too: the card must describe
# exactly what the gate judged.
JUDGED: Final = ("model_metadata", "metrics", "evaluation_identity", "slices", "audit_summary")


def read_inputs(params: Params) -> CardInputs:
    paths = params.paths
    metadata = read_metadata(paths.model_metadata).model_dump(mode="json")
    verdict = _object(paths.verdict)
    if verdict.get("model_sha256") != metadata["model_sha256"]:
        raise PipelineError(
            f"{paths.verdict}: judges another model than {paths.model_metadata.name}; "
            "run `census-pipeline gate` before the card"
        )
    audit = _object(paths.audit_summary)
    inputs = CardInputs(
        metrics=_object(paths.metrics),
        identity=_object(paths.evaluation_identity),
        metadata=metadata,
        data_report=_object(paths.data_report),
        audit=audit,
        verdict=verdict,
        slices=read_slices(paths.slices),
        curves={name: _csv(paths.curve(name)) for name in ("roc", "pr", "calibration")},
        audit_figures=_audit_figures(audit, paths),
        importance=_csv(paths.importance),
        tradeoff=_object(paths.tradeoff_summary),
        tradeoff_figure=_bytes(paths.tradeoff_figure, "census-pipeline tradeoff"),
        about=params.card,
    )
    check_judged_inputs(verdict, paths)
    return inputs


def judged_files(paths: PathsParams) -> dict[str, Path]:
    files = {
        "model_metadata": paths.model_metadata,
        "metrics": paths.metrics,
        "evaluation_identity": paths.evaluation_identity,
        "slices": paths.slices,
        "audit_summary": paths.audit_summary,
    }
    return {key: files[key] for key in JUDGED}


def check_judged_inputs(verdict: dict[str, Any], paths: PathsParams) -> None:
    """Refuse files that differ from the ones the verdict judged (its recorded sha256s)."""
    recorded = verdict.get("inputs")
    if not isinstance(recorded, dict):
        raise PipelineError(
            f"{paths.verdict}: records no input digests; run `census-pipeline gate` before the card"
        )
    for key, path in judged_files(paths).items():
        actual = sha256_file(path)
        if recorded.get(key) != actual:
            raise PipelineError(
                f"{path}: sha256 {actual[:12]} is not the {key} the verdict judged "
                f"({str(recorded.get(key))[:12]}); run `census-pipeline gate` before the card"
            )


def _object(path: Path) -> dict[str, Any]:
    value = read_json(path)
    if not isinstance(value, dict):
        raise PipelineError(f"{path}: expected a JSON object")
    return value


def _bytes(path: Path, producer: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise PipelineError(f"{path}: not found (run `{producer}`)") from exc


def _csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except FileNotFoundError as exc:
        raise PipelineError(f"{path}: not found (run `census-pipeline evaluate` first)") from exc


def _audit_figures(audit: dict[str, Any], paths: PathsParams) -> dict[str, bytes]:
    """The disparity figures the audit summary lists (never leftovers of an earlier audit)."""
    listed = audit.get("figures")
    if not isinstance(listed, list) or not listed:
        raise PipelineError(
            f"{paths.audit_summary}: lists no disparity figures (run `census-pipeline audit`)"
        )
    figures = {}
    for name in listed:
        path = paths.audit_dir / str(name)
        try:
            figures[path.stem] = path.read_bytes()
        except FileNotFoundError as exc:
            raise PipelineError(f"{path}: not found (run `census-pipeline audit`)") from exc
    return figures


# --- figures --------------------------------------------------------------------------------


def _metric(metrics: dict[str, Any], key: str) -> Any:
    if key not in metrics:
        raise PipelineError(f"metrics.json: {key!r} missing (run `census-pipeline evaluate`)")
    return metrics[key]


def slice_settings(identity: dict[str, Any]) -> dict[str, Any]:
    """The bootstrap's confidence and resamples, as the evaluation recorded them."""
    settings = identity.get("slice_settings")
    if not isinstance(settings, dict):
        settings = {}
    for key in ("confidence", "bootstrap_resamples"):
        if key not in settings:
            raise PipelineError(
                f"identity.json: slice_settings.{key} missing (run `census-pipeline evaluate`)"
            )
    return dict(settings)


def draw_figures(inputs: CardInputs) -> dict[str, bytes]:
    metrics = inputs.metrics
    point = (_metric(metrics, "fpr"), _metric(metrics, "recall"))
    confidence = slice_settings(inputs.identity)["confidence"]
    return {
        "roc": _roc_png(inputs.curves["roc"], metrics["roc_auc"], point),
        "pr": _pr_png(inputs.curves["pr"], metrics, _metric(metrics, "prevalence")),
        "calibration": _calibration_png(inputs.curves["calibration"], metrics["brier"]),
        "slices": _slices_png(
            inputs.slices, tuple(inputs.audit["attributes"]), metrics, confidence
        ),
        "importance": _importance_png(inputs.importance),
    }


def _axes(title: str, xlabel: str, ylabel: str) -> tuple[Any, Any]:
    fig = new_figure(4.6, 4.0)
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.15, right=0.96, top=0.9, bottom=0.13)
    return fig, ax


def _roc_png(curve: pd.DataFrame, auc: float, point: tuple[float, float]) -> bytes:
    fig, ax = _axes(f"ROC curve (AUC {auc:.4f})", "false positive rate", "true positive rate")
    ax.plot(curve["fpr"], curve["tpr"], color="#1c7ed6", lw=1.5)
    ax.plot([0, 1], [0, 1], color="#adb5bd", lw=0.8, ls="--")
    ax.scatter([point[0]], [point[1]], color="#c92a2a", zorder=3, label="chosen threshold")
    ax.legend(fontsize=8, loc="lower right")
    return png_bytes(fig)


def _pr_png(curve: pd.DataFrame, metrics: dict[str, Any], prevalence: float) -> bytes:
    title = f"Precision-recall curve (PR AUC {metrics['pr_auc']:.4f})"
    fig, ax = _axes(title, "recall", "precision")
    ax.plot(curve["recall"], curve["precision"], color="#1c7ed6", lw=1.5)
    ax.axhline(prevalence, color="#adb5bd", lw=0.8, ls="--", label="prevalence")
    ax.scatter([metrics["recall"]], [metrics["precision"]], color="#c92a2a", zorder=3)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, loc="lower left")
    return png_bytes(fig)


def _calibration_png(table: pd.DataFrame, brier: float) -> bytes:
    fig, ax = _axes(f"Calibration (Brier {brier:.4f})", "mean predicted probability", "share >50K")
    ax.plot([0, 1], [0, 1], color="#adb5bd", lw=0.8, ls="--")
    sizes = 20 + 180 * table["count"] / max(float(table["count"].max()), 1.0)
    ax.plot(table["mean_predicted"], table["fraction_positive"], color="#1c7ed6", lw=1)
    ax.scatter(table["mean_predicted"], table["fraction_positive"], s=sizes, color="#1c7ed6")
    return png_bytes(fig)


def _slices_png(
    slices: pd.DataFrame, features: tuple[str, ...], metrics: dict[str, Any], confidence: float
) -> bytes:
    """Recall and F1 with their bootstrap intervals for the audited attributes' slices."""
    rows = slices[slices["feature"].isin(features)].iloc[::-1]
    labels = [f"{r.feature}={r.value} (n={r.n})" for r in rows.itertuples()]
    ys = np.arange(len(rows))
    fig = new_figure(9, 1.2 + 0.3 * len(rows))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, metric in zip(axes, ("recall", "f1"), strict=True):
        centre = rows[metric].to_numpy(dtype=float)
        low = centre - rows[f"{metric}_ci_low"].to_numpy(dtype=float)
        high = rows[f"{metric}_ci_high"].to_numpy(dtype=float) - centre
        ax.errorbar(centre, ys, xerr=[low, high], fmt="o", color="#1c7ed6", ms=4, capsize=2)
        ax.axvline(metrics[metric], color="#c92a2a", lw=0.8, ls="--", label="overall")
        ax.set_xlim(-0.02, 1.02)
        ax.set_title(f"{metric} with {confidence:.0%} bootstrap CI", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(ys, labels)
    axes[1].legend(fontsize=8, loc="upper left")
    longest = max((len(label) for label in labels), default=1)
    fig.subplots_adjust(left=min(0.5, 0.02 + 0.0075 * longest), right=0.98, top=0.95, bottom=0.05)
    return png_bytes(fig)


def _importance_png(table: pd.DataFrame) -> bytes:
    """Mean |SHAP value| per feature on the test set, largest on top."""
    rows = table.sort_values("mean_abs_shap")
    fig = new_figure(6.4, 1.0 + 0.3 * len(rows))
    ax = fig.add_subplot()
    ax.barh(rows["feature"], rows["mean_abs_shap"], color="#1c7ed6")
    ax.set_title("Global feature importance: mean |SHAP value| on the test set", fontsize=10)
    ax.set_xlabel("mean |contribution| to the log-odds of >50K", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(axis="x", alpha=0.3)
    longest = max((len(str(f)) for f in rows["feature"]), default=1)
    fig.subplots_adjust(left=min(0.4, 0.03 + 0.013 * longest), right=0.97, top=0.9, bottom=0.12)
    return png_bytes(fig)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# --- the story the templates tell ------------------------------------------------------------


def card_context(inputs: CardInputs) -> dict[str, Any]:
    """Plain dicts and lists for the templates; no number is computed here that is not read."""
    meta = inputs.metadata
    # The policy the verdict applied, not whatever params.yaml says now.
    policy = inputs.verdict["policy"]["fairness"]
    return {
        "model": meta,
        "tuning": _tuning(meta.get("tuning", {})),
        "metrics": inputs.metrics,
        "validation": meta["validation_metrics"],
        "data": {split: _split(inputs.data_report, split) for split in ("train", "test")},
        "shift": _shift(inputs.data_report),
        "audit": inputs.audit,
        "parities": [
            {
                "key": parity,
                **inputs.audit["parities"][parity],
                "enforced": policy[parity]["enforced"],
                "reason": policy[parity]["reason"],
            }
            for parity in FAIRNESS_PARITIES
        ],
        "comparisons": _comparisons(inputs.audit),
        "slices": _slice_groups(inputs.slices),
        "slice_settings": slice_settings(inputs.identity),
        "small_slices": int(inputs.slices["small"].astype(str).str.lower().eq("true").sum()),
        "verdict": inputs.verdict,
        "checks": inputs.verdict["checks"],
        "about": inputs.about.model_dump(),
        "importance": inputs.importance.to_dict("records"),
        "mitigation": meta.get("mitigation") or {"method": "none"},
        "tradeoff": _tradeoff(inputs.tradeoff),
        "history": _history(meta, inputs.metrics, inputs.verdict),
    }


def _tradeoff(summary: dict[str, Any]) -> dict[str, Any]:
    """Rows for the trade-off table, and the configured method's cost against `none`."""
    methods = summary["methods"]
    # The JSON's keys are sorted; the table reads best from no mitigation to the reference.
    order = sorted(methods, key=lambda m: (m not in summary["servable"], m != "none", m))
    rows = [
        {"method": method, "split": split, "servable": method in summary["servable"], **result}
        for method in order
        for split in ("validation", "test")
        for result in [methods[method][split]]
    ]
    chosen, plain = methods[summary["configured"]]["test"], methods["none"]["test"]
    cost = {k: chosen[k] - plain[k] for k in ("accuracy", "roc_auc", "f1")}
    return {
        **summary,
        "rows": rows,
        "cost": cost,
        "test": {m: s["test"] for m, s in methods.items()},
    }


def _history(
    meta: dict[str, Any], metrics: dict[str, Any], verdict: dict[str, Any]
) -> list[dict[str, Any]]:
    """This model, then the promoted baseline it was compared with (if any). No dates: the card
    is a pipeline output hashed in dvc.lock, so it must not change with the time it is built."""
    mitigation = (meta.get("mitigation") or {}).get("method", "none")
    rows = [
        {
            "version": meta["model_version"],
            "what": f"this model (mitigation: {mitigation}; "
            + ("blessed" if verdict["blessed"] else "not blessed")
            + ")",
            "roc_auc": metrics["roc_auc"],
            "f1": metrics["f1"],
        }
    ]
    baseline = verdict.get("baseline")
    if baseline:
        previous = {
            c["name"].split(":", 1)[1]: c["detail"].get("baseline")
            for c in verdict["checks"]
            if c["kind"] == "change"
        }
        rows.append(
            {
                "version": baseline["model_version"],
                "what": "the promoted baseline (baseline/) this model's change checks compare with",
                "roc_auc": previous.get("roc_auc"),
                "f1": previous.get("f1"),
            }
        )
    return rows


def _tuning(tuning: dict[str, Any]) -> dict[str, Any]:
    rows = tuning.get("rows", {})
    return {
        "candidates": len(tuning.get("candidates", [])),
        "selection": tuning.get("selection", ""),
        "fit_rows": rows.get("fit"),
        "validation_rows": rows.get("validation"),
        "exclusion_reason": tuning.get("exclusion_reason", ""),
        "search": _search(tuning.get("search")),
    }


def _search(search: dict[str, Any] | None) -> dict[str, Any] | None:
    """The tune step's record, as the card shows it (None when the model was not searched)."""
    if not search:
        return None
    caps = search.get("caps") or {}
    return {
        "n_trials": search.get("n_trials"),
        "folds": search.get("cv", {}).get("folds"),
        "trial": search.get("trial"),
        "cv_log_loss": search.get("cv", {}).get("log_loss"),
        "cv_roc_auc": search.get("cv", {}).get("roc_auc"),
        "profile": search.get("serving_profile"),
        "max_trees": caps.get("max_trees"),
        "max_leaves": caps.get("max_leaves"),
    }


def _split(report: dict[str, Any], split: str) -> dict[str, Any]:
    try:
        entry = dict(report["splits"][split])
    except KeyError as exc:
        raise PipelineError(f"data report: split {split!r} missing") from exc
    entry["missing_columns"] = {k: v for k, v in entry["missing"].items() if v}
    # Reports from before provenance was recorded lack these; the card then says less.
    for key in ("release", "source", "origin", "separator"):
        entry.setdefault(key, None)
    entry["format_text"] = _format_text(entry)
    return entry


def _format_text(entry: dict[str, Any]) -> str:
    """The detected file format in words, from the manifest fields the data report carries."""
    parts = [
        "a space after each comma"
        if entry.get("separator") == "comma-space"
        else "no space after commas",
        f"{entry.get('line_ending', 'LF')} line ends",
    ]
    if entry.get("label_suffix"):
        parts.append(f"labels ending in '{entry['label_suffix']}'")
    if entry.get("bom"):
        parts.append("a UTF-8 byte order mark")
    if entry.get("compression", "none") != "none":
        parts.append(f"{entry['compression']}-compressed")
    return ", ".join(parts)


def _shift(report: dict[str, Any]) -> dict[str, Any]:
    """The data report's comparison with the baseline's training data, largest PSI first."""
    shift = report.get("shift")
    if not isinstance(shift, dict):
        return {"status": "not recorded in the data report (run `census-pipeline validate`)"}
    if shift.get("status") != "compared":
        return {"status": shift.get("status", "not compared")}
    features = [{"name": name, **entry} for name, entry in shift["features"].items()]
    features.sort(key=lambda f: -float(f["psi"]))
    return {**shift, "features": features}


def _comparisons(audit: dict[str, Any]) -> list[dict[str, Any]]:
    """Per single audited attribute, each group's record on every parity, for the prose."""
    out = []
    for attribute in (a for a in audit["attributes"] if CROSS not in a):
        groups: dict[str, dict[str, Any]] = {}
        for parity in FAIRNESS_PARITIES:
            for record in audit["parities"][parity]["groups"]:
                if record["attribute"] == attribute:
                    groups.setdefault(record["group"], {})[parity] = record
        reference = audit["reference_groups"][attribute]
        out.append({"attribute": attribute, "reference": reference, "groups": groups})
    return out


def _slice_groups(slices: pd.DataFrame) -> list[dict[str, Any]]:
    groups = []
    for feature, rows in slices.groupby("feature", sort=False):
        records = rows.to_dict("records")
        for record in records:
            record["small"] = str(record["small"]).lower() == "true"
        groups.append({"feature": feature, "rows": records, "crossed": CROSS in str(feature)})
    return groups


# --- rendering --------------------------------------------------------------------------------


def _environment(autoescape: bool) -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("census_pipeline", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        {
            "num": format_number,
            "ci": format_ci,
            "count": format_count,
            "pval": format_p,
            "pct": format_percent,
        }
    )
    return env


def render_markdown(context: dict[str, Any], figures: dict[str, str]) -> str:
    import jinja2

    try:
        template = _environment(autoescape=False).get_template("model_card.md.j2")
        return insert_toc(str(template.render(**context, figures=figures)))
    except jinja2.UndefinedError as exc:
        raise PipelineError(f"model card: {exc.message} (an input artifact lacks it)") from exc


TOC_MARKER: Final = "[[table of contents]]"


def anchor(title: str) -> str:
    """A heading's anchor as GitHub makes it (and as `render_html` sets it), so the table of
    contents works both in the Markdown on a code host and in the HTML page."""
    text = re.sub(r"[^\w\- ]", "", title.strip().lower())
    return text.replace(" ", "-")


def insert_toc(markdown: str) -> str:
    """Replace the marker with links to every second-level section, whoever added it."""
    titles = re.findall(r"^## (.+)$", markdown, flags=re.MULTILINE)
    toc = "\n".join(f"- [{title}](#{anchor(title)})" for title in titles)
    return markdown.replace(TOC_MARKER, toc)


def render_html(markdown: str, title: str) -> str:
    from markdown_it import MarkdownIt

    body = _heading_ids(MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown))
    template = _environment(autoescape=True).get_template("model_card.html.j2")
    return str(template.render(title=title, body=_markup(body)))


def _heading_ids(html: str) -> str:
    """Give h2/h3 the ids the table of contents links to (markdown-it adds none)."""
    import html as html_lib

    def with_id(match: re.Match[str]) -> str:
        level, inner = match.group(1), match.group(2)
        text = html_lib.unescape(re.sub(r"<[^>]+>", "", inner))
        return f'<h{level} id="{anchor(text)}">{inner}</h{level}>'

    return re.sub(r"<h([23])>(.*?)</h\1>", with_id, html)


def _markup(html: str) -> Any:
    from markupsafe import Markup

    return Markup(html)  # markdown-it escaped every artifact string already (html disabled)


def refuse_placeholders(text: str, name: str) -> None:
    """A card with a template leftover or a missing number is not written at all."""
    if match := PLACEHOLDER.search(text):
        line = text.count("\n", 0, match.start()) + 1
        raise PipelineError(f"{name}: line {line}: placeholder text {match.group(0)!r} left over")


# --- number formats: one place, so tests can compare the card with the artifacts -------------


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def format_number(value: Any, digits: int = 3) -> str:
    number = _finite(value)
    return "n/a" if number is None else f"{number:.{digits}f}"


def format_ci(row: dict[str, Any], metric: str) -> str:
    centre = format_number(row[metric])
    if centre == "n/a":
        return centre
    low, high = format_number(row[f"{metric}_ci_low"]), format_number(row[f"{metric}_ci_high"])
    return f"{centre} [{low}, {high}]"


def format_count(value: Any) -> str:
    number = _finite(value)
    return "n/a" if number is None else f"{int(number):,}"


def format_percent(value: Any, digits: int = 1) -> str:
    number = _finite(value)
    return "n/a" if number is None else f"{100 * number:.{digits}f}%"


def format_p(value: Any) -> str:
    number = _finite(value)
    if number is None:
        return "n/a"
    return "p < 0.001" if number < 0.001 else f"p = {number:.3f}"
