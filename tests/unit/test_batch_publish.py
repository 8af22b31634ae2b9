"""Publishing a batch run's folder: what a worker killed mid-write left is not published."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from census_pipeline.batch.parts import _write
from census_pipeline.batch.run import BatchResult, _publish


def _result(output: Path) -> BatchResult:
    return BatchResult(
        output=str(output), quarantine=f"{output}.quarantine.csv", rows=2, scored=2,
        quarantined=0, seconds=1.0, model_version="v1", blessed=True,
    )  # fmt: skip


def test_a_part_left_half_written_by_a_killed_worker_is_not_published(tmp_path: Path) -> None:
    folder = tmp_path / ".scored.tmp-1"
    part = pd.DataFrame({"age": [39, 50], "probability": [0.1, 0.9]})
    _write(str(folder / "part-00000.parquet"), part, "parquet")
    # A worker SIGKILLed while writing part 1: its temporary file, empty; the rerun wrote it.
    (folder / ".part-00001.parquet.0123abcd.tmp").write_bytes(b"")
    _write(str(folder / "part-00001.parquet"), part, "parquet")
    output = tmp_path / "scored"
    _publish(str(folder), str(output), _result(output))
    names = sorted(p.name for p in output.iterdir())
    assert names == ["_summary.json", "part-00000.parquet", "part-00001.parquet"]
    assert len(pd.read_parquet(output)) == 4
    assert not folder.exists()


def test_a_part_whose_writer_dies_is_hidden_from_parquet_readers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even before publishing, a half-written part is a dot file, which dataset readers skip."""
    folder = tmp_path / "parts"
    _write(str(folder / "part-00000.parquet"), pd.DataFrame({"age": [39]}), "parquet")

    def dies_mid_write(self: pd.DataFrame, handle: Any, **options: Any) -> None:
        handle.write(b"PAR1 half a file")
        raise MemoryError("killed")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", dies_mid_write)
    with pytest.raises(MemoryError):
        _write(str(folder / "part-00001.parquet"), pd.DataFrame({"age": [50]}), "parquet")
    monkeypatch.undo()
    leftovers = [p.name for p in folder.iterdir() if p.name != "part-00000.parquet"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".part-00001.parquet.")
    assert pd.read_parquet(folder)["age"].tolist() == [39]
