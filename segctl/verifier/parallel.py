"""Partitioned proofs on a local process pool or on a Dask distributed cluster.

A proof splits into parts of whole tenants (:func:`~segctl.verifier.verify.partitions`);
each part is proven by :func:`~segctl.verifier.verify.prove_part` with a fresh engine built
where it runs, and the parent merges the parts (:func:`~segctl.verifier.report.merge_parts`)
into the report a single-process :func:`~segctl.verifier.verify.verify` gives, byte for
byte minus timings and the engine section.

What crosses processes is plain data: the resolved :class:`~segctl.topology.network.Network`
and the parsed tables go out (once per worker), and each part comes back as a
:class:`~segctl.verifier.report.Part` without its ``results`` (those hold BDDs, which live
in one process's BDD manager and do not pickle).

:func:`verify_local` runs the parts on ``jobs`` processes of this machine (``forkserver``
start: the workers are forked from a clean single-threaded server, never from a parent
that runs threads); :func:`verify_cluster` runs them on the workers of a Dask scheduler,
after checking that every worker runs the same verifier code (:func:`code_fingerprint`).

>>> report = verify_local(network, tables, jobs=2)  # doctest: +SKIP
>>> report = verify_cluster(network, tables, "tcp://127.0.0.1:8786")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import multiprocessing
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

from segctl.errors import SegctlError
from segctl.openflow.ofctl import Flow
from segctl.topology.analysis import EndpointKey
from segctl.topology.network import Network
from segctl.verifier.report import Part, VerificationReport, merge_parts
from segctl.verifier.verify import ENGINES, make_engine, partitions, prove_part, verify

__all__ = [
    "CLUSTER_TIMEOUT_S",
    "PARTS_PER_WORKER",
    "ClusterError",
    "ParallelError",
    "code_fingerprint",
    "loopback_cluster",
    "prove_one",
    "verify_cluster",
    "verify_local",
]

Progress = Callable[[str], None]
Tables = Mapping[str, Sequence[Flow]]
Sources = frozenset[EndpointKey]

#: Seconds to wait for a cluster's scheduler to answer (and for a first worker to join).
CLUSTER_TIMEOUT_S = 10.0
#: Parts per cluster worker: a little more than one, so that a fast worker takes over the
#: work of a slow one; each part costs a fresh engine (indexing every table), so not many.
PARTS_PER_WORKER = 2
#: The packages whose code decides a part's result (see :func:`code_fingerprint`).
_PROOF_CODE = ("__init__.py", "errors.py", "topology", "openflow", "verifier")


class ParallelError(SegctlError):
    """A partitioned proof could not run (a worker process died)."""


class ClusterError(ParallelError):
    """The cluster cannot run the proof: unreachable, no worker, or workers with other code."""


def prove_one(network: Network, tables: Tables, engine: str, sources: Sources) -> Part:
    """The part of ``sources`` with a fresh ``engine``, as plain data (no BDDs)."""
    part = prove_part(network, tables, make_engine(engine, network, tables), sources)
    return replace(part, results=())


def _check_engine(name: str) -> None:
    """An unknown engine name fails here, not in every worker."""
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r} (one of {', '.join(ENGINES)})")


@cache
def code_fingerprint() -> str:
    """A digest of the source of the packages a part runs (topology, openflow, verifier):
    two processes with the same fingerprint prove a part the same way."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for name in _PROOF_CODE:
        top = root / name
        for path in sorted(top.rglob("*.py")) if top.is_dir() else [top]:
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


# ---------------------------------------------------------------------------- local pool

#: A pool worker's inputs, set once per process by :func:`_load`.
_LOADED: tuple[Network, Tables, str] | None = None


def _load(network: Network, tables: Tables, engine: str) -> None:
    global _LOADED
    _LOADED = (network, tables, engine)


def _prove_loaded(sources: Sources) -> Part:
    if _LOADED is None:  # pragma: no cover - the pool's initializer always runs first
        raise RuntimeError("pool worker started without its inputs")
    return prove_one(*_LOADED, sources)


def verify_local(
    network: Network,
    tables: Tables,
    *,
    jobs: int = 1,
    engine: str = ENGINES[0],
    progress: Progress | None = None,
) -> VerificationReport:
    """The proof on ``jobs`` local processes, one part each; ``jobs=1`` (or a network of
    one tenant) is :func:`~segctl.verifier.verify.verify` in this process."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    _check_engine(engine)
    parts = partitions(network, jobs)
    if jobs == 1 or len(parts) < 2:
        return verify(network, tables, progress=progress, engine=engine)
    started = time.monotonic()
    say = progress or (lambda _msg: None)
    say(f"proving {len(parts)} parts on {len(parts)} processes")
    pool = ProcessPoolExecutor(
        max_workers=len(parts),
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=_load,
        initargs=(network, tables, engine),
    )
    try:
        futures = [pool.submit(_prove_loaded, sources) for sources in parts]
        _report_progress(futures, parts, say)
        proven = [f.result() for f in futures]
    except BrokenProcessPool as exc:
        raise ParallelError(f"a worker process ended abruptly ({exc}); try fewer jobs") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return merge_parts(network, tables, proven, started)


def _report_progress(futures: Sequence[Future[Part]], parts: Sequence[Sources], say: Progress) -> None:
    """Wait for every future, saying which part finished as each does (a failed part raises)."""
    index = {f: i for i, f in enumerate(futures)}
    for done, fut in enumerate(as_completed(futures), start=1):
        fut.result()
        say(_part_done(done, len(parts), parts[index[fut]]))


def _part_done(done: int, total: int, sources: Sources) -> str:
    tenants = len({tenant for tenant, _ in sources})
    return f"part {done}/{total} proven ({_count(len(sources), 'endpoint')} of {_count(tenants, 'tenant')})"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


# ---------------------------------------------------------------------------- Dask cluster


def verify_cluster(
    network: Network,
    tables: Tables,
    address: str,
    *,
    engine: str = ENGINES[0],
    progress: Progress | None = None,
    timeout: float = CLUSTER_TIMEOUT_S,
    parts_per_worker: int = PARTS_PER_WORKER,
) -> VerificationReport:
    """The proof on the workers of the Dask scheduler at ``address`` (``tcp://HOST:PORT``):
    ``parts_per_worker`` parts of whole tenants per worker. Raises :class:`ClusterError`
    when the scheduler does not answer within ``timeout`` seconds, has no worker, or a
    worker runs other verifier code."""
    import distributed

    dask: Any = distributed  # untyped: its calls are checked by the tests, not mypy
    _check_engine(engine)
    started = time.monotonic()
    say = progress or (lambda _msg: None)
    say(f"connecting to {address}")
    try:
        client: Any = dask.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the scheduler within {timeout:g} s ({exc})") from None
    try:
        workers = _check_workers(client, timeout)
        parts = partitions(network, workers * parts_per_worker)
        say(f"proving {len(parts)} parts on {workers} cluster workers")
        network_f, tables_f = client.scatter([network, tables], broadcast=True, hash=False)
        futures = [client.submit(prove_one, network_f, tables_f, engine, s, pure=False) for s in parts]
        _report_cluster_progress(client, futures, parts, say)
        proven: list[Part] = client.gather(futures)
    finally:
        client.close()
    return merge_parts(network, tables, proven, started)


def loopback_cluster(workers: int) -> Any:
    """A Dask ``LocalCluster`` of ``workers`` single-threaded worker processes with every
    socket on 127.0.0.1: no dashboard, and the scheduler's small HTTP server (health) on a
    free port rather than 8787 (``--no-dashboard`` alone listens on every interface). For
    tests and benchmarks; close it (``with`` or ``.close()``) when done."""
    import logging

    import distributed

    dask: Any = distributed  # untyped
    return dask.LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
        silence_logs=logging.ERROR,
    )


def _check_workers(client: Any, timeout: float) -> int:
    """The number of workers, once there is one, each running this process's proof code."""
    if not client.nthreads():
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            raise ClusterError(f"no worker joined the scheduler within {timeout:g} s") from None
    try:
        prints: dict[str, str] = client.run(code_fingerprint)
    except ImportError as exc:
        raise ClusterError(
            f"a worker cannot import segctl's verifier ({exc}): install segctl on every worker"
        ) from None
    mine = code_fingerprint()
    other = sorted(w for w, fp in prints.items() if fp != mine)
    if other:
        raise ClusterError(
            f"worker {other[0]} runs other segctl verifier code than this one"
            f"{f' (and {len(other) - 1} more)' if len(other) > 1 else ''}: "
            "install the same segctl version on every worker"
        )
    return len(prints)


def _report_cluster_progress(
    client: Any, futures: Sequence[Any], parts: Sequence[Sources], say: Progress
) -> None:
    import distributed

    dask: Any = distributed
    finished = dask.as_completed(futures, loop=client.loop)
    index = {f.key: i for i, f in enumerate(futures)}
    for done, fut in enumerate(finished, start=1):
        say(_part_done(done, len(parts), parts[index[fut.key]]))
