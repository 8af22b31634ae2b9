"""`census-pipeline <step>`: a thin Typer layer over the step functions.

Each command parses options, calls one plain function and prints a short summary. Errors the user
can fix (`PipelineError`) become one clear line on stderr and exit status 1.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer

from census_pipeline.config import Params, load_params
from census_pipeline.errors import PipelineError

app = typer.Typer(
    help="Census Income pipeline: ingest, validate, clean, train, evaluate, audit, tradeoff, "
    "gate, card.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Markdown joins a docstring paragraph's wrapped lines instead of keeping each line break.
    rich_markup_mode="markdown",
)

ParamsOption = Annotated[
    Path | None,
    typer.Option(
        "--params", help="Path to params.yaml (default: $CENSUS_PIPELINE_PARAMS or the repo's)."
    ),
]


@app.callback()
def _main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also log progress detail (INFO).")
    ] = False,
) -> None:
    """Configure logging once, before any command runs."""
    # Warnings only by default, so a failing step's stderr is its one clear error line.
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


P = ParamSpec("P")
R = TypeVar("R")


def _clear_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a PipelineError into one line on stderr and exit 1, instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except PipelineError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None

    return wrapper


def _params(path: Path | None) -> Params:
    return load_params(path)


@app.command()
@_clear_errors
def ingest(
    params: ParamsOption = None,
    source_dir: Annotated[
        Path | None,
        typer.Option(
            "--source-dir",
            help="Folder holding the training file (census.csv, adult.data, or .gz) and "
            "adult.test; the only source used once named (default: $CENSUS_DATA_DIR, then "
            "data.source_dir in params.yaml, else the known releases).",
        ),
    ] = None,
    train_file: Annotated[
        Path | None,
        typer.Option("--train-file", help="A census-shaped training file, any accepted layout."),
    ] = None,
    test_file: Annotated[
        Path | None,
        typer.Option("--test-file", help="A census-shaped test file, any accepted layout."),
    ] = None,
    expect_sha256: Annotated[
        list[str] | None,
        typer.Option(
            "--expect-sha256",
            help="Pin a file's sha256 as SPLIT=HEX (a bare HEX pins train); repeatable. "
            "Overrides data.expect_sha256.",
        ),
    ] = None,
) -> None:
    """Bring in the raw census files: yours (checked, recorded as user-supplied) or a known release.

    A source you name (file, folder, $CENSUS_DATA_DIR or data.source_dir) is the only one used:
    if it is missing or fails a check, ingest exits 1 naming the file, line and field.
    """
    from census_pipeline.config import with_pins
    from census_pipeline.ingest import ingest as run_ingest

    resolved = with_pins(_params(params), expect_sha256 or [])
    files = {s: p for s, p in (("train", train_file), ("test", test_file)) if p is not None}
    result = run_ingest(resolved, source_dir=source_dir, files=files)
    for split, entry in result.entries.items():
        typer.echo(
            f"{split}: {entry.file} ({entry.layout}), {entry.rows} rows, {entry.release}, "
            f"from {entry.source} {entry.origin}"
        )
    typer.echo(f"manifest: {result.manifest_path}")


@app.command()
@_clear_errors
def validate(params: ParamsOption = None) -> None:
    """Check raw rows against the census schema; quarantine violations; write the data report."""
    from census_pipeline.validate import validate as run_validate

    report = run_validate(_params(params))
    for split, summary in report.splits.items():
        typer.echo(
            f"{split}: {summary['rows']} rows, {summary['quarantined_rows']} quarantined, "
            f"{summary['exact_duplicates']} exact duplicates"
        )
    shift = report.shift
    if shift.get("status") == "compared":
        typer.echo(
            f"shift vs baseline: largest PSI {shift['max_psi']:.4f} ({shift['max_psi_feature']}), "
            f"{shift['rows']['reference']} -> {shift['rows']['current']} rows"
        )
    else:
        typer.echo(f"shift vs baseline: {shift.get('status')}")
    typer.echo(f"report: {report.path}")


@app.command()
@_clear_errors
def clean(params: ParamsOption = None) -> None:
    """Write typed train/test Parquet tables from the validated rows (train loses duplicates)."""
    from census_pipeline.clean import clean as run_clean

    result = run_clean(_params(params))
    typer.echo(
        f"train: {result.train_rows} rows ({result.train_duplicates_removed} duplicates removed) "
        f"-> {result.train_path}"
    )
    typer.echo(f"test: {result.test_rows} rows -> {result.test_path}")


@app.command()
@_clear_errors
def tune(params: ParamsOption = None) -> None:
    """Search LightGBM's knobs by cross-validation on the training table (seeded Optuna study).

    Runs or extends the study up to `tune.n_trials`, shows progress on a terminal, and writes
    tuning/best.json (what train uses), trials.csv and importances.csv. Never reads the test set.
    """
    from census_pipeline.tune import tune as run_tune

    result = run_tune(_params(params))
    best, cv = result.best, result.best["cv"]
    typer.echo(
        f"search: {result.trials_total} trials ({result.trials_run} run now, "
        f"{result.seconds:.1f} s); "
        f"chosen trial {best['trial']} ({best['serving_profile']} profile): CV log loss "
        f"{cv['log_loss']:.5f}, CV ROC AUC {cv['roc_auc']:.4f}, {cv['trees']} trees, "
        f"excluded {best['exclude_features'] or 'nothing'}"
    )


@app.command()
@_clear_errors
def train(params: ParamsOption = None) -> None:
    """Train LightGBM on the clean training table; save model.txt and model.json (verified)."""
    from census_pipeline.train import train as run_train

    result = run_train(_params(params))
    meta = result.metadata
    val = meta.validation_metrics
    typer.echo(
        f"model {meta.model_version}: {meta.num_trees} trees, threshold {meta.threshold:.4f}, "
        f"validation ROC AUC {val['roc_auc']:.4f}, F1 {val['f1']:.4f} ({result.seconds:.1f} s)"
    )
    typer.echo(f"model: {result.model_file}")
    typer.echo(f"metadata: {result.metadata_file}")


@app.command()
@_clear_errors
def profile(params: ParamsOption = None) -> None:
    """Save the reference profile the monitor compares live requests with (validation split)."""
    from census_pipeline.profile import profile as run_profile

    result = run_profile(_params(params))
    typer.echo(f"reference profile of {result.rows} validation rows -> {result.path}")


@app.command()
@_clear_errors
def evaluate(params: ParamsOption = None) -> None:
    """Score the official test set: metrics, curves, test predictions, slices with intervals."""
    from census_pipeline.evaluate import evaluate as run_evaluate

    result = run_evaluate(_params(params))
    m = result.metrics
    typer.echo(
        f"test set (n={m['n']}): ROC AUC {m['roc_auc']:.4f}, accuracy {m['accuracy']:.4f} at "
        f"threshold {m['threshold']:.4f} ({m['accuracy_at_half']:.4f} at 0.5), F1 {m['f1']:.4f}, "
        f"precision {m['precision']:.4f}, recall {m['recall']:.4f}"
    )
    small = int(result.slices["small"].sum())
    typer.echo(f"slices: {len(result.slices)} ({small} small) -> {result.slices_path}")
    typer.echo(f"metrics: {result.metrics_path}")


@app.command()
@_clear_errors
def predict(
    source: Annotated[
        str,
        typer.Option(
            "--input",
            help="Census rows to score: a CSV (course or UCI layout, optionally .gz) or Parquet "
            "file, a folder of them or a glob; a local path or any fsspec URL (s3://...).",
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output",
            help="Folder to write (part files plus _summary.json), local or a URL; "
            "created only when the whole run succeeds.",
        ),
    ],
    output_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="parquet or csv (default: csv when --output ends in .csv, else parquet).",
        ),
    ] = None,
    quarantine: Annotated[
        str | None,
        typer.Option(
            "--quarantine",
            help="CSV listing invalid rows with file, row and reason "
            "(default: <output>.quarantine.csv).",
        ),
    ] = None,
    max_invalid_share: Annotated[
        float | None,
        typer.Option(
            "--max-invalid-share",
            min=0.0,
            max=1.0,
            help="Fail (exit 1) when more rows than this share are invalid "
            "(default: data.max_quarantine_share in params.yaml).",
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            envvar="DASK_SCHEDULER_ADDRESS",
            help="Address of an existing Dask scheduler (tcp://host:8786); "
            "without it a local cluster is started.",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Local cluster: worker processes (default: cores)."),
    ] = None,
    threads_per_worker: Annotated[
        int, typer.Option("--threads-per-worker", min=1, help="Local cluster: threads per worker.")
    ] = 1,
    blocksize: Annotated[
        str,
        typer.Option(
            "--blocksize", help="Bytes per task (bounds each worker's memory), e.g. 32MiB."
        ),
    ] = "32MiB",
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress", help="Progress bar (default: when stdout is a terminal)."
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing output folder.")
    ] = False,
    allow_unblessed: Annotated[
        bool,
        typer.Option(
            "--allow-unblessed", help="Score with a model the gate did not bless (development)."
        ),
    ] = False,
    params: ParamsOption = None,
    model_dir: Annotated[
        Path | None,
        typer.Option(
            "--model-dir", help="Folder with model.txt and model.json (default: paths.model_dir)."
        ),
    ] = None,
) -> None:
    """Batch-score census files on Dask with the blessed model (docs/batch.md).

    Adds `probability`, `label` and `model_version` to every valid row; invalid rows go to the
    quarantine with their reason and are not scored.
    """
    import sys

    from dask.utils import parse_bytes

    from census_pipeline.batch import Engine, score

    folder, share = _batch_defaults(params, model_dir, max_invalid_share)
    result = score(
        source,
        output,
        model_dir=folder,
        output_format=output_format or ("csv" if output.endswith(".csv") else "parquet"),
        quarantine=quarantine,
        engine=Engine(
            scheduler=scheduler,
            workers=workers,
            threads_per_worker=threads_per_worker,
            progress=sys.stdout.isatty() if progress is None else progress,
        ),
        blocksize=_bytes(blocksize, parse_bytes),
        max_invalid_share=share,
        allow_unblessed=allow_unblessed,
        overwrite=overwrite,
        announce=typer.echo,
    )
    typer.echo(
        f"scored {result.scored} rows, quarantined {result.quarantined}, "
        f"{result.rows_per_second:,.0f} rows/s, model {result.model_version} -> {result.output}"
    )
    typer.echo(f"quarantine: {result.quarantine}")
    if result.unknown_categories:
        typer.echo(f"unknown categories (scored as missing): {result.unknown_categories}", err=True)


def _batch_defaults(
    params: Path | None, model_dir: Path | None, share: float | None
) -> tuple[Path, float]:
    """The model folder and invalid share, from params.yaml only when not given."""
    if model_dir is not None and share is not None:
        return model_dir, share
    resolved = _params(params)
    return (
        model_dir if model_dir is not None else resolved.paths.model_dir,
        share if share is not None else resolved.data.max_quarantine_share,
    )


def _bytes(text: str, parse: Callable[[str], int]) -> int:
    try:
        value = parse(text)
    except ValueError:
        raise PipelineError(f"--blocksize {text!r}: expected a size such as 32MiB") from None
    if value < 1 << 16:
        raise PipelineError(f"--blocksize {text!r}: expected at least 64KiB")
    return value


@app.command()
@_clear_errors
def audit(params: ParamsOption = None) -> None:
    """Bias audit of the test predictions: group metrics, disparities, fairness, figures."""
    from census_pipeline.audit import audit as run_audit
    from census_pipeline.audit import console_lines

    resolved = _params(params)
    result = run_audit(resolved)
    for line in console_lines(result.summary, resolved.gate.fairness, _mitigated(resolved)):
        typer.echo(line)
    typer.echo(f"table: {result.table}")
    typer.echo(f"summary: {result.summary_path}")


def _mitigated(params: Params) -> bool:
    """Whether the current model carries a mitigation (it switches the parities enforced)."""
    from census_pipeline.artifact import ArtifactError, read_metadata

    try:
        return read_metadata(params.paths.model_metadata).mitigated
    except ArtifactError:
        return False


@app.command()
@_clear_errors
def tradeoff(params: ParamsOption = None) -> None:
    """Measure every fairness mitigation (validation, then test): accuracy, AUC, F1, parities.

    Builds each method at the model's hyperparameters whatever `fairness.mitigation` is, and
    writes reports/fairness/ (table, summary, disparity-vs-accuracy figure).
    """
    from census_pipeline.tradeoff import tradeoff as run_tradeoff

    result = run_tradeoff(_params(params))
    for method, splits in result.summary["methods"].items():
        test = splits["test"]
        fnr = {a: test["parities"][a]["fnr"]["disparity"] for a in ("sex", "race")}
        worst = ", ".join(f"{a} {v:.2f}" if v is not None else f"{a} n/a" for a, v in fnr.items())
        typer.echo(
            f"{method}: test accuracy {test['accuracy']:.4f}, ROC AUC {test['roc_auc']:.4f}, "
            f"F1 {test['f1']:.4f}; worst FNR disparity {worst}"
        )
    typer.echo(f"table: {result.table}")
    typer.echo(f"figure: {result.figure}")


@app.command()
@_clear_errors
def gate(
    params: ParamsOption = None,
    override: Annotated[
        str | None,
        typer.Option(
            "--override",
            help="Bless despite failing checks; the reason is recorded in the verdict and card.",
        ),
    ] = None,
) -> None:
    """Judge the model against the policy in params.yaml; exit 0 if blessed, 1 if not."""
    from census_pipeline.gate import gate as run_gate

    resolved = _params(params)
    verdict = run_gate(resolved, override=override)
    for check in verdict.failures:
        typer.echo(f"FAILED {check.name}: {check.reason}", err=True)
    outcome = "blessed" if verdict.blessed else "NOT blessed"
    if verdict.override is not None:
        outcome += f" by override ({verdict.override.reason})"
    typer.echo(f"model {verdict.model_version}: {outcome}; verdict: {resolved.paths.verdict}")
    if verdict.signature is not None:
        typer.echo(f"verdict signed by key {verdict.signature.key_id}")
    else:
        typer.echo("verdict NOT signed (no CENSUS_SIGNING_KEY or CENSUS_SIGNING_KEY_FILE)")
    if not verdict.blessed:
        raise typer.Exit(1)


@app.command()
@_clear_errors
def keygen(
    folder: Annotated[
        Path, typer.Argument(help="Where to write signing_key.pem (0600) and verify_key.pem.")
    ],
) -> None:
    """Write a new Ed25519 key pair for signing verdicts (docs/trust.md); never overwrites.

    Keep the private key out of the repository: give it to the gate through
    CENSUS_SIGNING_KEY_FILE (or the PEM text in CENSUS_SIGNING_KEY), and the public key to the
    service, batch scoring and CD through CENSUS_VERIFY_KEY_FILE (or CENSUS_VERIFY_KEY).
    """
    from census_pipeline.signing import keygen as run_keygen

    private, public = run_keygen(folder)
    typer.echo(f"private key (keep secret): {private}")
    typer.echo(f"public key: {public}")


@app.command()
@_clear_errors
def card(params: ParamsOption = None) -> None:
    """Write the model card (Markdown and one self-contained HTML page) from pipeline outputs."""
    from census_pipeline.card import card as run_card

    result = run_card(_params(params))
    typer.echo(f"card: {result.markdown}")
    typer.echo(f"card: {result.html}")


@app.command()
@_clear_errors
def monitor(
    params: ParamsOption = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="The prediction log (default: $CENSUS_API_DATABASE_URL, then monitor.database_url "
            "in params.yaml, then the service's SQLite file logs/predictions.sqlite).",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Window start: ISO 8601 time or 24h / 7d ago (default: monitor.window)."),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Window end: ISO 8601 time or a duration ago (default: now).")
    ] = None,
) -> None:
    """Drift and live-quality report of the prediction log; exit 1 when an alert fires.

    Compares the logged records of the window with the reference profile (`profile`), writes
    reports/monitoring/report.json and report.html (docs/monitoring.md).
    """
    from census_pipeline.monitor import monitor as run_monitor

    result = run_monitor(_params(params), database_url, since, until)
    report = result.report
    typer.echo(
        f"{report['log']['rows']} logged records, {report['quality']['feedback_rows']} with "
        f"feedback, {report['window']['since']} to {report['window']['until']}"
    )
    for warning in report["warnings"]:
        typer.echo(f"warning: {warning}", err=True)
    for alert in result.alerts:
        typer.echo(f"ALERT {alert}", err=True)
    typer.echo(f"report: {result.json_path}")
    typer.echo(f"report: {result.html_path}")
    if result.alerts:
        raise typer.Exit(1)


@app.command()
@_clear_errors
def promote(params: ParamsOption = None) -> None:
    """Copy the blessed model's metrics and verdict to the baseline folder for later gates."""
    from census_pipeline.gate import promote as run_promote

    folder = run_promote(_params(params))
    typer.echo(f"baseline: {folder}")


@contextlib.contextmanager
def _metrics_folder() -> Iterator[None]:
    """prometheus-client's multiprocess mode: every worker writes its metrics to files in one
    folder and /metrics adds them up (docs/monitoring.md). A folder the operator names is emptied
    first (values from a previous run would be added in); otherwise a fresh one is made, and
    removed when the server stops."""
    import os
    import shutil
    import signal
    import tempfile

    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        yield
        return
    made = tempfile.mkdtemp(prefix="census-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = made

    # uvicorn ends a graceful shutdown by re-raising the SIGTERM it caught with the handler it
    # found, which by default ends the process at once: this handler removes the folder first.
    def remove_then_stop(signum: int, frame: object) -> None:
        shutil.rmtree(made, ignore_errors=True)
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    previous = signal.signal(signal.SIGTERM, remove_then_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        shutil.rmtree(made, ignore_errors=True)


@app.command()
@_clear_errors
def publish(params: ParamsOption = None) -> None:
    """Copy the blessed model, its verdict and card to the folder the service serves.

    Only a model the service would accept is published (checked on the copies), and the
    published folder is replaced whole, so a failed experiment never leaves the service
    without a model to start with.
    """
    from census_pipeline.publish import publish as run_publish

    done = run_publish(_params(params))
    typer.echo(f"published model {done.model_version} -> {done.folder}")


@app.command()
@_clear_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 1,
    params: ParamsOption = None,
) -> None:
    """Serve the blessed model over HTTP (FastAPI); settings from CENSUS_API_* variables.

    Without CENSUS_API_MODEL_DIR the model and card come from this project's published folder
    (`paths.serving_dir`, written by `census-pipeline publish`; docs/api.md). The model is
    checked before the server starts, so a refusal exits 1 with its one-line reason whatever
    the worker count (uvicorn alone exits 3 with a traceback for one worker, 0 for several).
    """
    import os

    from pydantic import ValidationError

    from census_pipeline.api import logs, server
    from census_pipeline.api.loading import load_served_model
    from census_pipeline.api.settings import Settings

    # One layout for the pre-check's lines, the server's and every worker's.
    logs.use_service_format()

    if "CENSUS_API_MODEL_DIR" not in os.environ:
        paths = _params(params).paths
        # Through the environment, so every worker process sees the same folders.
        os.environ["CENSUS_API_MODEL_DIR"] = str(paths.serving_dir)
        os.environ.setdefault("CENSUS_API_MODEL_CARD_PATH", str(paths.published_card))
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        if not first["loc"]:  # a rule about the whole environment (an unknown variable)
            raise PipelineError(str(first["msg"]).removeprefix("Value error, ")) from None
        name = f"CENSUS_API_{first['loc'][0]}".upper()
        raise PipelineError(f"{name}: {first['msg']}") from None
    logs.configure(settings.log_level)
    with _metrics_folder():
        # Always, before uvicorn: its single worker would exit 3 with a traceback, several 0.
        load_served_model(settings).predictor.close()
        # With the header cap, connection limit and shutdown timeout of the settings (docs/api.md).
        server.run(settings, host=host, port=port, workers=workers)
