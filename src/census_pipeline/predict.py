"""The one way anything scores: evaluation, the audit, the service and batch files.

A `Predictor` wraps a verified model (see `artifact`) and encodes inputs with the vocabularies
stored beside it: a category's code is its position in the stored vocabulary, and a missing or
unknown category becomes NaN, which LightGBM treats as missing. Unknown categories are counted
per feature so the service can report them. Missing or mistyped fields raise `RecordError`.

The single-record path encodes straight into a numpy row and calls LightGBM's C "fast single
row" prediction, avoiding `Booster.predict`'s per-call Python overhead. This module must import
without pandas (the service install has none); the DataFrame method imports it lazily.
"""

from __future__ import annotations

import ctypes
import math
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
from numpy.typing import NDArray

from census_pipeline.artifact import GroupThresholds, ModelMetadata, load_model
from census_pipeline.errors import PipelineError
from census_pipeline.schema import CROSS, NEGATIVE_LABEL, POSITIVE_LABEL

if TYPE_CHECKING:
    import pandas as pd

_PREDICT_NORMAL = 0  # C_API_PREDICT_NORMAL: probabilities for a binary objective
_PREDICT_CONTRIB = 3  # C_API_PREDICT_CONTRIB: SHAP values, one per feature, then the baseline
# The LightGBM releases whose C API (the fast single-row calls, LGBM_BoosterCalcNumPredict) and
# private `_LIB` / `Booster._handle` this module was checked against; a test pins it, so an
# upgrade outside it fails until someone re-reads c_api.h and widens the range.
FAST_PATH_CHECKED_LIGHTGBM = ((4, 7), (4, 8))  # >= 4.7, < 4.8
_DTYPE_FLOAT64 = 1  # C_API_DTYPE_FLOAT64


class RecordError(PipelineError):
    """A record or table lacks a feature or carries a value of the wrong type."""


@dataclass(frozen=True)
class Prediction:
    probability: float
    label: str
    # The threshold this record was labelled at (its group's, under group thresholds).
    threshold: float


@dataclass(frozen=True)
class Predictions:
    probabilities: NDArray[np.float64]
    threshold: float
    # Per row, the threshold each was labelled at; None means `threshold` for every row.
    row_thresholds: NDArray[np.float64] | None = None

    @property
    def thresholds(self) -> NDArray[np.float64]:
        if self.row_thresholds is not None:
            return self.row_thresholds
        return np.full(self.probabilities.shape, self.threshold)

    @property
    def positive(self) -> NDArray[np.bool_]:
        limit = self.threshold if self.row_thresholds is None else self.row_thresholds
        return self.probabilities >= limit

    @property
    def labels(self) -> list[str]:
        return [POSITIVE_LABEL if p else NEGATIVE_LABEL for p in self.positive.tolist()]


class FeatureEncoder:
    """Turns records or tables into the float matrix the model was trained on.

    Training uses it too, so the codes the model learned and the codes it is served with come
    from one place.
    """

    def __init__(self, feature_names: Sequence[str], categories: Mapping[str, Sequence[str]]):
        self.feature_names = list(feature_names)
        self.categories = {name: list(vocab) for name, vocab in categories.items()}
        # None marks a numeric feature; a dict maps a category to its float code.
        self._plan: list[tuple[str, dict[str, float] | None]] = [
            (name, self._codes(name)) for name in self.feature_names
        ]
        self.unknown_counts: dict[str, int] = dict.fromkeys(self.categories, 0)
        self._count_lock = threading.Lock()

    def _codes(self, name: str) -> dict[str, float] | None:
        vocab = self.categories.get(name)
        return None if vocab is None else {value: float(i) for i, value in enumerate(vocab)}

    def _count_unknown(self, name: str, count: int) -> None:
        with self._count_lock:
            self.unknown_counts[name] += count

    def encode_record(self, record: Mapping[str, Any], out: NDArray[np.float64]) -> None:
        """Fill `out` (one row) from a record with the course's hyphenated keys."""
        for i, (name, codes) in enumerate(self._plan):
            try:
                value = record[name]
            except KeyError:
                raise RecordError(
                    f"record lacks the feature '{name}' (expected all of {self.feature_names})"
                ) from None
            if codes is None:
                out[i] = _number(name, value)
            elif value is None:
                out[i] = math.nan
            elif type(value) is str:
                code = codes.get(value)
                if code is None:
                    self._count_unknown(name, 1)
                    out[i] = math.nan
                else:
                    out[i] = code
            else:
                raise RecordError(
                    f"feature '{name}': expected a category string or null, "
                    f"got {type(value).__name__} {value!r}"
                )

    def encode_records(self, records: Sequence[Mapping[str, Any]]) -> NDArray[np.float64]:
        matrix = np.empty((len(records), len(self.feature_names)), dtype=np.float64)
        for row, record in enumerate(records):
            try:
                self.encode_record(record, matrix[row])
            except RecordError as exc:
                raise RecordError(f"record {row}: {exc}") from None
        return matrix

    def encode_frame(self, frame: pd.DataFrame) -> NDArray[np.float64]:
        """Vectorised encoding of a table: category, string or numeric columns."""
        missing = [name for name in self.feature_names if name not in frame.columns]
        if missing:
            raise RecordError(f"table lacks the feature columns {missing}")
        matrix = np.empty((len(frame), len(self.feature_names)), dtype=np.float64)
        for i, (name, codes) in enumerate(self._plan):
            column = frame[name]
            matrix[:, i] = (
                _numeric_column(name, column)
                if codes is None
                else self._category_column(name, column, codes)
            )
        return matrix

    def _category_column(
        self, name: str, column: pd.Series, codes: dict[str, float]
    ) -> NDArray[np.float64]:
        import pandas as pd

        if isinstance(column.dtype, pd.CategoricalDtype):
            values = column.cat.categories
            strange = [v for v in values if not isinstance(v, str)]
            lookup = np.array([codes.get(v, math.nan) for v in values], dtype=np.float64)
            raw = column.cat.codes.to_numpy()
            encoded = np.where(raw >= 0, lookup[np.maximum(raw, 0)], math.nan)
            present = raw >= 0
        else:
            present = column.notna().to_numpy()
            strange = [v for v in column[present].unique() if not isinstance(v, str)]
            encoded = column.map(codes).to_numpy(dtype=np.float64, na_value=math.nan)
        if strange:
            raise RecordError(
                f"column '{name}': expected category strings, got {type(strange[0]).__name__} "
                f"{strange[0]!r}"
            )
        unknown = int(np.count_nonzero(present & np.isnan(encoded)))
        if unknown:
            self._count_unknown(name, unknown)
        return encoded


def _number(name: str, value: Any) -> float:
    # bool is an int subclass, but True is not an age.
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise RecordError(
            f"feature '{name}': expected a number, got {type(value).__name__} {value!r}"
        )
    number = float(value)
    if not math.isfinite(number):
        raise RecordError(f"feature '{name}': expected a finite number, got {value!r}")
    return number


def _numeric_column(name: str, column: pd.Series) -> NDArray[np.float64]:
    import pandas as pd

    dtype = column.dtype
    if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        raise RecordError(f"column '{name}': expected numbers, got dtype {dtype}")
    values = column.to_numpy(dtype=np.float64, na_value=math.nan)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise RecordError(
            f"column '{name}': expected finite numbers, row {int(bad[0])} holds {values[bad[0]]}"
        )
    return values


class ThresholdRule:
    """The labelling rule's threshold for a record: the model's one, or its group's.

    Under the `group_thresholds` mitigation a record takes the threshold of the first grouping
    whose group (values joined by " x ") has one; a missing or unknown value falls through to
    the next grouping and finally to the model's single threshold. Records, lists and tables all
    go through `_lookup`, so single-row and batch answers cannot disagree.
    """

    def __init__(self, threshold: float, groups: GroupThresholds | None):
        self.threshold = threshold
        self._levels: list[tuple[list[str], dict[str, float]]] = []
        if groups is not None:
            self._levels = [
                (list(grouping), groups.thresholds.get(CROSS.join(grouping), {}))
                for grouping in groups.groupings
            ]

    @property
    def by_group(self) -> bool:
        return bool(self._levels)

    def _lookup(self, values: Mapping[str, Any]) -> float:
        for attributes, table in self._levels:
            parts = [values.get(a) for a in attributes]
            if all(type(p) is str for p in parts):
                found = table.get(CROSS.join(str(p) for p in parts))
                if found is not None:
                    return found
        return self.threshold

    def for_record(self, record: Mapping[str, Any]) -> float:
        return self._lookup(record) if self._levels else self.threshold

    def for_records(self, records: Sequence[Mapping[str, Any]]) -> NDArray[np.float64] | None:
        if not self._levels:
            return None
        return np.fromiter((self._lookup(r) for r in records), np.float64, len(records))

    def for_frame(self, frame: pd.DataFrame) -> NDArray[np.float64] | None:
        if not self._levels:
            return None
        attributes = sorted({a for grouping, _ in self._levels for a in grouping})
        missing = [a for a in attributes if a not in frame.columns]
        if missing:
            raise RecordError(f"table lacks the columns {missing} its group thresholds need")
        # One lookup per distinct combination, not per row; anything but a string is missing.
        columns = [
            [v if type(v) is str else None for v in frame[a].astype(object).tolist()]
            for a in attributes
        ]
        keys = list(zip(*columns, strict=True))
        table = {key: self._lookup(dict(zip(attributes, key, strict=True))) for key in set(keys)}
        return np.fromiter((table[key] for key in keys), np.float64, len(keys))


class _FastSingleRow:
    """LightGBM's C fast path for one row: a prepared config plus reusable buffers.

    `predict_type` is a normal prediction (one probability) or contributions (one SHAP value
    per feature plus the baseline). The output buffer is sized from LightGBM's own answer
    (`LGBM_BoosterCalcNumPredict` for one row), and anything but the size that type implies
    is refused: the C call writes as many numbers as the model produces, whatever the buffer
    holds. One lock guards the shared buffers and the call, so a threaded web server is safe;
    ctypes releases the GIL during the call, which is the whole of the work: nothing else in
    the process waits on it.
    """

    def __init__(
        self, booster: lgb.Booster, num_features: int, predict_type: int = _PREDICT_NORMAL
    ):
        lib = _lib()
        self._predict = lib.LGBM_BoosterPredictForMatSingleRowFast
        self._row = np.zeros(num_features, dtype=np.float64)
        self._out = np.zeros(_outputs_per_row(booster, predict_type), dtype=np.float64)
        expected = 1 if predict_type == _PREDICT_NORMAL else num_features + 1
        if self._out.size != expected:
            raise PipelineError(
                f"the model produces {self._out.size} numbers per row where a single-output "
                f"binary model produces {expected}; only such models can be served"
            )
        self._out_len = ctypes.c_int64(0)
        self._row_ptr = self._row.ctypes.data_as(ctypes.c_void_p)
        self._out_ptr = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._handle = ctypes.c_void_p()
        _check(
            lib.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(predict_type),
                ctypes.c_int(0),
                ctypes.c_int(-1),
                ctypes.c_int(_DTYPE_FLOAT64),
                ctypes.c_int32(num_features),
                b"num_threads=1",
                ctypes.byref(self._handle),
            )
        )
        self._lock = threading.Lock()
        # Free the C config before the booster it points into (the finaliser holds the booster).
        self._finalizer = weakref.finalize(self, _free_fast_config, self._handle, booster)

    def predict(self, encoder: FeatureEncoder, record: Mapping[str, Any]) -> float:
        with self._lock:
            return float(self._run(encoder, record)[0])

    def values(self, encoder: FeatureEncoder, record: Mapping[str, Any]) -> list[float]:
        with self._lock:
            values: list[float] = self._run(encoder, record).tolist()  # a copy, under the lock
            return values

    def _run(self, encoder: FeatureEncoder, record: Mapping[str, Any]) -> NDArray[np.float64]:
        if not self._handle.value:
            raise RuntimeError("this predictor was closed")
        encoder.encode_record(record, self._row)
        _check(
            self._predict(self._handle, self._row_ptr, ctypes.byref(self._out_len), self._out_ptr)
        )
        if self._out_len.value != self._out.size:  # never with a binary model; checked
            raise RuntimeError(
                f"LightGBM wrote {self._out_len.value} numbers for one row, not {self._out.size}"
            )
        return self._out

    def close(self) -> None:
        with self._lock:
            self._finalizer()


def _outputs_per_row(booster: lgb.Booster, predict_type: int = _PREDICT_NORMAL) -> int:
    """How many numbers LightGBM writes when it predicts one row (all trees)."""
    count = ctypes.c_int64(0)
    _check(
        _lib().LGBM_BoosterCalcNumPredict(
            booster._handle,
            ctypes.c_int(1),
            ctypes.c_int(predict_type),
            ctypes.c_int(0),
            ctypes.c_int(-1),
            ctypes.byref(count),
        )
    )
    return count.value


def _lib() -> Any:
    # LightGBM's loaded C library; its Python API does not wrap the fast single-row calls.
    return lgb.basic._LIB  # type: ignore[attr-defined]


def _check(status: int) -> None:
    if status != 0:
        message = _lib().LGBM_GetLastError().decode("utf-8", "replace")
        raise RuntimeError(f"LightGBM: {message}")


def _free_fast_config(handle: ctypes.c_void_p, booster: lgb.Booster) -> None:
    # `booster` is only here so the finaliser keeps it alive until the config is freed.
    if handle.value:
        _lib().LGBM_FastConfigFree(handle)
        handle.value = None


class Predictor:
    """A verified model plus its encoder and threshold; scores records, lists of them or tables."""

    def __init__(self, booster: lgb.Booster, metadata: ModelMetadata, num_threads: int = 1):
        self.metadata = metadata
        self.threshold = metadata.threshold
        mitigation = metadata.mitigation
        self.rule = ThresholdRule(
            metadata.threshold, mitigation.group_thresholds if mitigation is not None else None
        )
        self._booster = booster
        # Batch scoring threads; one by default so web workers and shared cores do not fight
        # over OpenMP threads that busy-wait.
        self.num_threads = num_threads
        self.encoder = FeatureEncoder(metadata.feature_names, metadata.categories)
        self._fast = _FastSingleRow(booster, len(metadata.feature_names))
        # One contributions config per thread that explains (the service's explain pool):
        # those threads then never wait on each other's TreeSHAP.
        self._explainer_of_thread = threading.local()
        self._explainers: list[_FastSingleRow] = []
        self._explainers_lock = threading.Lock()
        self._closed = False

    @classmethod
    def from_files(cls, model_file: Path, metadata_file: Path, num_threads: int = 1) -> Predictor:
        """Load through `artifact.load_model`, which verifies the digest and the agreement."""
        return cls(*load_model(model_file, metadata_file), num_threads=num_threads)

    @classmethod
    def load(cls, model_dir: Path, num_threads: int = 1) -> Predictor:
        from census_pipeline.config import PathsParams

        paths = PathsParams(model_dir=Path(model_dir))
        return cls.from_files(paths.model_file, paths.model_metadata, num_threads)

    @property
    def feature_names(self) -> list[str]:
        return self.encoder.feature_names

    @property
    def unknown_category_counts(self) -> dict[str, int]:
        """Per feature, how many values so far were not in the stored vocabulary."""
        return dict(self.encoder.unknown_counts)

    def threshold_for(self, record: Mapping[str, Any]) -> float:
        """The threshold `record` is labelled at: the model's, or its group's (`ThresholdRule`)."""
        return self.rule.for_record(record)

    def label(self, probability: float, record: Mapping[str, Any] | None = None) -> str:
        """The labelling rule. A model with group thresholds needs the record (its sex, race)."""
        if record is None and self.rule.by_group:
            raise ValueError("this model labels by group: pass the record to label()")
        threshold = self.threshold if record is None else self.threshold_for(record)
        return POSITIVE_LABEL if probability >= threshold else NEGATIVE_LABEL

    def probability_one(self, record: Mapping[str, Any]) -> float:
        """The fast path: no DataFrame, no `Booster.predict`."""
        return self._fast.predict(self.encoder, record)

    def predict_one(self, record: Mapping[str, Any]) -> Prediction:
        probability = self.probability_one(record)
        threshold = self.threshold_for(record)
        label = POSITIVE_LABEL if probability >= threshold else NEGATIVE_LABEL
        return Prediction(probability=probability, label=label, threshold=threshold)

    def predict_many(self, records: Sequence[Mapping[str, Any]]) -> Predictions:
        return self._scores(self.encoder.encode_records(records), self.rule.for_records(records))

    def predict_frame(self, frame: pd.DataFrame) -> Predictions:
        return self._scores(self.encoder.encode_frame(frame), self.rule.for_frame(frame))

    def _scores(
        self, matrix: NDArray[np.float64], row_thresholds: NDArray[np.float64] | None
    ) -> Predictions:
        if matrix.shape[0] == 0:
            return Predictions(np.empty(0, dtype=np.float64), self.threshold, row_thresholds)
        scores = self._booster.predict(matrix, num_threads=self.num_threads)
        probabilities = np.asarray(scores, dtype=np.float64)
        return Predictions(probabilities, self.threshold, row_thresholds)

    def contributions_one(self, record: Mapping[str, Any]) -> dict[str, float]:
        """Per-feature contributions (SHAP values, in log-odds) to one record's score.

        They add up, with `expected_log_odds`, to the record's log-odds.
        """
        values = self._explainer().values(self.encoder, record)
        return dict(zip(self.feature_names, values[:-1], strict=True))

    def _explainer(self) -> _FastSingleRow:
        """This thread's contributions config (LightGBM's C single-row call, one thread):
        the GIL is held for microseconds around milliseconds of TreeSHAP, so the event loop
        that hands explanations to a pool keeps answering while they run."""
        explainer: _FastSingleRow | None = getattr(self._explainer_of_thread, "fast", None)
        if explainer is None:
            with self._explainers_lock:
                if self._closed:
                    raise RuntimeError("this predictor was closed")
                explainer = _FastSingleRow(self._booster, len(self.feature_names), _PREDICT_CONTRIB)
                self._explainers.append(explainer)
            self._explainer_of_thread.fast = explainer
        return explainer

    def contributions_many(self, records: Sequence[Mapping[str, Any]]) -> NDArray[np.float64]:
        """`contributions_one` for a whole batch in one LightGBM call: one row per record, one
        column per feature (in `feature_names` order), without the baseline column."""
        matrix = self.encoder.encode_records(records)
        if matrix.shape[0] == 0:
            return np.empty((0, len(self.feature_names)), dtype=np.float64)
        values = self._booster.predict(matrix, pred_contrib=True, num_threads=self.num_threads)
        return np.asarray(values, dtype=np.float64)[:, :-1]

    def contributions_frame(
        self, frame: pd.DataFrame, num_threads: int | None = None
    ) -> NDArray[np.float64]:
        """`contributions_many` for a table (the evaluation's global feature importance).

        TreeSHAP costs ~0.5 ms a row on the searched model, so the offline evaluation asks for
        every core (`num_threads=0`); each row's values do not depend on the thread count."""
        matrix = self.encoder.encode_frame(frame)
        if matrix.shape[0] == 0:
            return np.empty((0, len(self.feature_names)), dtype=np.float64)
        threads = self.num_threads if num_threads is None else num_threads
        values = self._booster.predict(matrix, pred_contrib=True, num_threads=threads)
        return np.asarray(values, dtype=np.float64)[:, :-1]

    @property
    def expected_log_odds(self) -> float:
        """The contributions' baseline: the model's average log-odds over its training data."""
        row = np.full((1, len(self.feature_names)), math.nan)
        return float(np.asarray(self._booster.predict(row, pred_contrib=True))[0][-1])

    def close(self) -> None:
        """Free the C prediction config now rather than at garbage collection."""
        self._fast.close()
        with self._explainers_lock:
            self._closed = True
            for explainer in self._explainers:
                explainer.close()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
