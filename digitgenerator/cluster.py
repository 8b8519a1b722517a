"""Running a dataset job on a Dask distributed cluster (`--dask ADDRESS`; needs the `dask` extra).

One Dask task per unit (a tar shard, or CHUNK PNGs), submitted a window at a
time so that a job of a billion images never lists its work whole. Every
worker makes exactly the images a single process would (image i is a pure
function of the seed and i), writes them into the job folder, which all
workers must see (a shared file system when they run on several machines),
and checks first that its MNIST files or model are the job's. The client
appends PNG manifest rows in unit order, so the folder is byte for byte what
a single-process run writes. When a worker dies, the scheduler runs its
tasks again elsewhere; a half-written shard is only a temporary file, never
a shard. Dask moves tasks between its processes with pickle: connect only to
a cluster you run.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import sys
import uuid

CONNECT_TIMEOUT = 10  # seconds to reach a scheduler before giving up with one line
RETRIES = 2  # a task that raises is tried this many more times; a lost worker's tasks are rerun by the scheduler
TASKS_PER_THREAD = 4  # tasks in flight per worker thread: enough to keep every worker busy, not the whole job


def _client(stack: contextlib.ExitStack, address: str, workers: int):
    try:
        from dask.distributed import Client, LocalCluster
    except ModuleNotFoundError:
        raise ModuleNotFoundError("--dask needs Dask: pip install 'digitgenerator[dask]'") from None
    if address == "local":
        import dask

        # Workers forked from this process start in 0.1 s with the package already imported,
        # where spawned ones take 0.6 s to start and 0.15 s to stop: an eighth of a 100,000-image
        # job on two cores (bench/speed.py --only webdataset). Where fork is not the platform's
        # way (macOS, Windows) Dask's own default stays.
        fork = {"distributed.worker.multiprocessing-method": "fork"} if sys.platform.startswith("linux") else {}
        with dask.config.set(fork):
            cluster = stack.enter_context(LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR,
            ))
        return stack.enter_context(Client(cluster))
    try:
        return stack.enter_context(Client(address, timeout=CONNECT_TIMEOUT))
    except (OSError, TimeoutError) as exc:
        raise OSError(f"cannot reach a Dask scheduler at {address} ({exc}); start one with `dask scheduler`, "
                      "or use --dask local") from None


def run_on_dask(address: str, workers: int, task, plan, bar) -> None:
    """Run `plan`'s units of `task` on the cluster at `address`, recording results in order."""
    from dask.distributed import as_completed

    from .export import run_unit

    with contextlib.ExitStack() as stack:
        client = _client(stack, address, workers)
        units, numbers = iter(plan.units), itertools.count()
        prefix = f"digitgenerator-{uuid.uuid4().hex[:12]}"
        position: dict[str, int] = {}
        running = as_completed()

        def top_up() -> None:
            """Keep TASKS_PER_THREAD tasks per worker thread in flight (workers may join or leave meanwhile)."""
            wanted = TASKS_PER_THREAD * max(1, sum(client.nthreads().values()))
            while running.count() < wanted:
                unit = next(units, None)
                if unit is None:
                    return
                n = next(numbers)
                future = client.submit(run_unit, task, unit, key=f"{prefix}-{n}", pure=False, retries=RETRIES)
                position[future.key] = n
                running.add(future)

        top_up()
        finished, recorded = {}, 0
        try:
            for future in running:
                finished[position.pop(future.key)] = future.result()  # a task's error is raised here
                future.release()
                while recorded in finished:  # in unit order: the manifest matches a single-process run
                    bar.advance(plan.record(finished.pop(recorded)))
                    recorded += 1
                top_up()
        finally:
            plan.close()
