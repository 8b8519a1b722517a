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


THREADED_FRAMEWORKS = ("tensorflow", "torch", "jax")  # start thread pools of their own once imported


def should_fork() -> bool:
    """Whether `--dask local` should fork its workers from this process rather than spawn them.

    Workers forked from this process start in 0.1 s with the package already imported,
    where spawned ones take 0.6 s to start and 0.15 s to stop: an eighth of a 100,000-image
    job on two cores (bench/speed.py --only webdataset). But a fork copies only the thread
    that calls it: a lock held at that moment by another thread stays held in the child
    forever (POSIX fork(2)). numpy's idle thread pool survives that; the pools of TensorFlow,
    PyTorch and JAX may not (a forked worker was once seen to wait forever in a process that
    had run TensorFlow). A spawned worker, though, first runs the main module again: a script
    or `python -m` module without an `if __name__ == "__main__":` guard would start the job
    again inside each worker, and a script read from stdin cannot be run at all. So fork
    where it is the platform's way (Linux; macOS and Windows keep Dask's default, spawn),
    except where one of those frameworks is imported and there is no main module to run
    again (a notebook, `python -c`), the usual place to mix them with a dataset job.
    """
    if not sys.platform.startswith("linux"):
        return False
    if not any(name in sys.modules for name in THREADED_FRAMEWORKS):
        return True
    main = sys.modules.get("__main__")
    runs_again = getattr(getattr(main, "__spec__", None), "name", None) is not None or getattr(main, "__file__", None) is not None
    return runs_again  # a spawned worker would run it again (or cannot, from stdin): fork after all


def _client(stack: contextlib.ExitStack, address: str, workers: int):
    try:
        from dask.distributed import Client, LocalCluster
    except ModuleNotFoundError:
        raise ModuleNotFoundError("--dask needs Dask: pip install 'digitgenerator[dask]'") from None
    if address == "local":
        import dask

        method = {"distributed.worker.multiprocessing-method": "fork"} if should_fork() else {}
        with dask.config.set(method):
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
