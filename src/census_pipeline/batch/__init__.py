"""Batch scoring on Dask: census files of any size, the same code on a laptop or a cluster.

`score` is the entry point (`census-pipeline predict` is a thin layer over it). The story in
reading order: `sources` (which files, cut into which pieces), `rows` (the census schema over a
pandas partition), `model` (the checked model, shipped to and loaded once per worker), `parts`
(one task: read, check, score, write), `run` (the cluster, the run, the atomic publish).
"""

from census_pipeline.batch.run import BatchResult, Engine, score

__all__ = ["BatchResult", "Engine", "score"]
