"""Execute the analysis notebooks headless, several kernels at a time, with progress.

    python -m quicreality.analysis notebooks [RUN_DIR] [--jobs N] [--only NAME ...] [--output DIR]

Every notebook of ``notebooks/`` that reads a run (:data:`RUN_NOTEBOOKS`) is executed in a
fresh Jupyter kernel (nbclient) with ``QR_RUN_DIR`` set to the run (default: ``$QR_RUN_DIR``,
else the newest run in ``results/runs/``, else the committed sample in ``captures/``) and the
inline matplotlib backend a Jupyter user has. ``--jobs`` kernels run at once (default: the
number of cores), so one notebook's kernel start and imports overlap another's work. A kernel
is killed as soon as its last cell has run (``shutdown_kernel="immediate"``: the outputs are
already collected, a graceful shutdown only waits). ``--output DIR`` writes the executed
notebooks there (never into ``notebooks/``: outputs are not committed). The CI test, ``bench
analysis`` and this command all execute notebooks through :func:`run_notebooks`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .results import REPO_ROOT, default_run

__all__ = ["INLINE_BACKEND", "NB_DIR", "RUN_NOTEBOOKS", "NotebookResult", "main",
           "run_notebooks"]

#: The notebooks that read the run named by ``QR_RUN_DIR``, in execution order (camouflage and
#: censorship read their own committed data and are committed executed).
RUN_NOTEBOOKS = ("overview", "throughput", "rtt", "retransmits", "regression", "reality",
                 "captures", "sweeps")
#: Where the notebooks are (the kernels' working directory).
NB_DIR = REPO_ROOT / "notebooks"
#: matplotlib backend of the kernels: the one Jupyter uses (figures become PNG outputs).
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


@dataclass
class NotebookResult:
    """One executed notebook."""

    name: str
    seconds: float  #: kernel start to kernel killed
    error: str = ""  #: the failing cell's error (last lines), "" if every cell ran
    images: int = 0  #: PNG outputs (plots)
    notebook: Any = field(default=None, repr=False)  #: the executed ``NotebookNode``

    @property
    def ok(self) -> bool:
        """True if every cell ran without an error."""
        return not self.error


def _count_images(nb: Any) -> int:
    return sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
               if "image/png" in o.get("data", {}))


def _error_outputs(nb: Any) -> list[str]:
    return [f"{o.get('ename')}: {o.get('evalue')}" for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if o.get("output_type") == "error"]


async def _execute(name: str, env: dict[str, str], timeout: float,
                   sem: asyncio.Semaphore) -> NotebookResult:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    async with sem:
        nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                shutdown_kernel="immediate",
                                resources={"metadata": {"path": str(NB_DIR)}})
        t0 = time.perf_counter()
        error = ""
        try:
            await client.async_execute(env=env)
        except CellExecutionError as exc:
            error = "\n".join(str(exc).strip().splitlines()[-3:])
        except (CellTimeoutError, DeadKernelError, RuntimeError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - t0
        if not error and (errs := _error_outputs(nb)):
            error = "; ".join(errs)
        return NotebookResult(name, seconds, error, _count_images(nb), nb)


def run_notebooks(names: Sequence[str] = RUN_NOTEBOOKS, run_dir: str | Path | None = None, *,
                  jobs: int | None = None, timeout: float = 600.0,
                  progress: Callable[[int, int, NotebookResult], None] | None = None,
                  ) -> list[NotebookResult]:
    """Execute ``names`` against ``run_dir``, ``jobs`` kernels at a time; results in order.

    Args:
        names: notebook names (``notebooks/<name>.ipynb``).
        run_dir: the run (``QR_RUN_DIR`` of the kernels); default :func:`.results.default_run`.
        jobs: kernels at once (default: the number of cores).
        timeout: seconds per cell.
        progress: called as ``progress(done, total, result)`` when a notebook finishes.
    """
    run = Path(run_dir) if run_dir is not None else default_run()
    env = dict(os.environ, QR_RUN_DIR=str(Path(run).absolute()), MPLBACKEND=INLINE_BACKEND)
    # the kernels import this tree's quicreality, as the caller does
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    n_jobs = max(1, jobs if jobs is not None else (os.cpu_count() or 1))

    async def _all() -> list[NotebookResult]:
        sem = asyncio.Semaphore(n_jobs)
        tasks = [asyncio.ensure_future(_execute(n, env, timeout, sem)) for n in names]
        for done, fut in enumerate(asyncio.as_completed(tasks), 1):
            res = await fut
            if progress is not None:
                progress(done, len(names), res)
        return [t.result() for t in tasks]

    return asyncio.run(_all())


def main(argv: Sequence[str] | None = None) -> int:
    """``notebooks [RUN_DIR] [--jobs N] [--only NAME] [--output DIR]``; exit 1 if one failed."""
    ap = argparse.ArgumentParser(
        prog="python -m quicreality.analysis notebooks",
        description="Execute the analysis notebooks headless against a run, several kernels "
                    "at a time, printing each one's time and the total.")
    ap.add_argument("run_dir", type=Path, nargs="?", default=None,
                    help="the run (default: $QR_RUN_DIR, else the newest results/runs/*, else "
                         "the committed sample in captures/)")
    ap.add_argument("--jobs", type=int, default=None,
                    help="kernels at once (default: the number of cores)")
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help=f"only this notebook (repeatable; of: {', '.join(RUN_NOTEBOOKS)})")
    ap.add_argument("--output", type=Path, default=None, metavar="DIR",
                    help="write the executed notebooks (with outputs) into DIR")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per cell (600)")
    args = ap.parse_args(argv)
    names = args.only or list(RUN_NOTEBOOKS)
    unknown = [n for n in names if not (NB_DIR / f"{n}.ipynb").is_file()]
    if unknown:
        print(f"notebooks: no such notebook: {', '.join(unknown)}", file=sys.stderr)
        return 2
    if args.run_dir is not None and not args.run_dir.is_dir():
        print(f"notebooks: {args.run_dir} is not a directory", file=sys.stderr)
        return 2
    if args.output is not None and args.output.resolve() == NB_DIR.resolve():
        print("notebooks: --output must not be notebooks/ (outputs are not committed)",
              file=sys.stderr)
        return 2
    run = args.run_dir if args.run_dir is not None else default_run()
    jobs = max(1, args.jobs if args.jobs is not None else (os.cpu_count() or 1))
    print(f"executing {len(names)} notebooks against {run}, {jobs} kernels at a time; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)

    def _progress(done: int, total: int, r: NotebookResult) -> None:
        state = "ok" if r.ok else f"ERROR {r.error.splitlines()[-1][:200]}"
        print(f"[{done}/{total}] {r.name:12s} {r.seconds:6.1f} s  {r.images} plots  {state}",
              flush=True)

    t0 = time.perf_counter()
    results = run_notebooks(names, run, jobs=jobs, timeout=args.timeout, progress=_progress)
    wall = time.perf_counter() - t0
    if args.output is not None:
        import nbformat

        args.output.mkdir(parents=True, exist_ok=True)
        for r in results:
            nbformat.write(r.notebook, args.output / f"{r.name}.ipynb")
        print(f"wrote {len(results)} executed notebooks to {args.output}")
    failed = [r.name for r in results if not r.ok]
    print(f"all {len(results)} notebooks: {wall:.1f} s wall ({sum(r.seconds for r in results):.1f}"
          f" s summed over notebooks); load average {os.getloadavg()[0]:.1f}"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0
