"""Run Python as the serve-only install would: `python slim_python.py -c CODE | -m MODULE ...`.

Every importable top-level module that belongs only to distributions outside the dependency
closure of `census-pipeline[serve]` (pandas, scikit-learn, DVC, pyarrow, the test tools, ...) is
blocked, so code that needs them fails here exactly as it would in the slim container. Used by
the slim-install test and by the service benchmark (for an honest RSS).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import re
import runpy
import sys
from collections.abc import Sequence
from importlib import metadata

from packaging.requirements import Requirement

ROOT_DISTRIBUTION = "census-pipeline"
ROOT_EXTRAS = ("serve",)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def serve_closure() -> set[str]:
    """Canonical names of the distributions `pip install census-pipeline[serve]` brings in."""
    pending: list[tuple[str, tuple[str, ...]]] = [(ROOT_DISTRIBUTION, ROOT_EXTRAS)]
    seen: set[tuple[str, tuple[str, ...]]] = set()
    names: set[str] = set()
    while pending:
        name, extras = pending.pop()
        if (key := (_canonical(name), extras)) in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional dependency for another platform
        names.add(key[0])
        for text in dist.requires or []:
            requirement = Requirement(text)
            environments = [{"extra": extra} for extra in extras] or [{"extra": ""}]
            marker = requirement.marker
            if marker is None or any(marker.evaluate(env) for env in environments):
                pending.append((requirement.name, tuple(sorted(requirement.extras))))
    return names


def blocked_modules() -> set[str]:
    """Top-level modules installed here that no distribution of the serve closure provides."""
    closure = serve_closure()
    return {
        module
        for module, dists in metadata.packages_distributions().items()
        if not any(_canonical(d) in closure for d in dists)
    }


class SlimFinder(importlib.abc.MetaPathFinder):
    def __init__(self, blocked: set[str]) -> None:
        self.blocked = blocked

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] in self.blocked:
            raise ModuleNotFoundError(f"No module named {fullname!r} (not in the serve install)")
        return None


def install() -> set[str]:
    blocked = blocked_modules()
    sys.meta_path.insert(0, SlimFinder(blocked))
    return blocked


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[0] not in ("-c", "-m"):
        raise SystemExit("usage: slim_python.py -c CODE [ARGS] | -m MODULE [ARGS]")
    install()
    mode, target, *rest = argv
    if mode == "-c":
        sys.argv = ["-c", *rest]
        exec(compile(target, "<slim -c>", "exec"), {"__name__": "__main__"})
    else:
        sys.argv = [target, *rest]
        runpy.run_module(target, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
