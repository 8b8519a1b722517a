"""--dask: a real `dask scheduler` and real `dask worker` processes on 127.0.0.1, compared with one process."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from digitgenerator.cli import dataset_main

pytest.importorskip("distributed")
JOB = ["--length", "6", "8", "--seed", "9", "--no-progress"]
# digitgenerator-dataset in a process of its own, as a user runs it (without needing the package installed)
COMMAND = [sys.executable, "-c", "import sys; from digitgenerator.cli import dataset_main; sys.exit(dataset_main(sys.argv[1:]))"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def cluster(tmp_path):
    """A scheduler and two single-threaded workers without nannies (a killed worker stays dead)."""
    from distributed import Client

    address = f"tcp://127.0.0.1:{free_port()}"
    quiet = {"cwd": tmp_path, "env": os.environ.copy(), "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    dask = [sys.executable, "-m", "dask"]
    procs = [subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                               "--no-dashboard"], **quiet)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen([*dask, "worker", address, "--nthreads", "1", "--no-nanny", "--host", "127.0.0.1",
                                           "--no-dashboard", "--death-timeout", "60"], **quiet))
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield address, procs[1:]
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_two_real_workers_write_what_one_process_writes(cluster, tmp_path, capsys):
    address, _ = cluster
    for fmt in (["--format", "webdataset", "--shard-size", "40"], []):
        out = f"dask{len(fmt)}"
        assert dataset_main(["--count", "300", "--out", out, "--dask", address, *fmt, *JOB]) == 0, capsys.readouterr().err
        assert dataset_main(["--count", "300", "--out", f"one{len(fmt)}", *fmt, *JOB]) == 0
        assert files(tmp_path / out) == files(tmp_path / f"one{len(fmt)}")  # manifest included, byte for byte
        assert len(files(tmp_path / out)) in (1 + 8, 1 + 1 + 300)


def test_a_lost_worker_is_redone_elsewhere_and_a_rerun_skips_finished_shards(cluster, tmp_path):
    address, workers = cluster
    args = ["--count", "12000", "--format", "webdataset", "--shard-size", "250", *JOB]
    client = subprocess.Popen([*COMMAND, *args, "--out", "lost", "--dask", address],
                              env=os.environ.copy(), stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not list((tmp_path / "lost").glob("shard-*.tar")):
        time.sleep(0.01)
    workers[0].send_signal(signal.SIGKILL)  # mid-job: it was writing a shard of its own
    workers[0].wait()  # reaped, as its own parent would: a zombie still counts as running
    _, err = client.communicate(timeout=120)
    assert client.returncode == 0, err
    assert dataset_main([*args, "--out", "one"]) == 0
    assert files(tmp_path / "lost") == files(tmp_path / "one")  # no half shard, no temporary file
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "lost").iterdir()}
    assert dataset_main([*args, "--out", "lost", "--dask", address]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "lost").iterdir()} == before


def test_dask_local_matches_one_process(tmp_path):
    """As a user runs it: the command in a process of its own (not this one, which may hold TensorFlow's threads)."""
    args = ["--count", "200", "--format", "webdataset", "--shard-size", "30", *JOB]
    done = subprocess.run([*COMMAND, *args, "--out", "local", "--dask", "local", "--workers", "2"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert dataset_main([*args, "--out", "one"]) == 0
    assert files(tmp_path / "local") == files(tmp_path / "one")


@pytest.mark.parametrize("how, framework, started", [
    ("stdin", "", "fork"),  # `python -`: no main file for spawned workers to run; forked ones need none
    ("stdin", "torch", "fork"),  # still forked: a spawned worker could not start at all
    ("-c", "torch", "spawn"),  # PyTorch's threads are in this process: fork could deadlock, and spawn can start
    ("file", "torch", "fork"),  # a spawned worker would run the script again: without a __main__ guard, the job too
])
def test_dask_local_runs_from_a_script_or_an_interactive_session(tmp_path, how, framework, started):
    if framework:
        pytest.importorskip(framework)
    script = (f"import {framework or 'os'}\n"
              "from digitgenerator import cluster\n"
              "print('fork' if cluster.should_fork() else 'spawn')\n"
              "from digitgenerator.dataset import DatasetSpec, export\n"
              "spec = DatasetSpec(count=120, length=(6, 8), seed=9)\n"
              "export(spec, 'local', workers=2, progress=False, format='webdataset', shard_size=30, dask='local')\n"
              "export(spec, 'one', progress=False, format='webdataset', shard_size=30)\n")
    (tmp_path / "job.py").write_text(script)
    command, stdin = {"stdin": (["-"], script), "-c": (["-c", script], None), "file": (["job.py"], None)}[how]
    done = subprocess.run([sys.executable, "-W", "ignore", *command], input=stdin, text=True, cwd=tmp_path,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [started]
    assert files(tmp_path / "local") == files(tmp_path / "one") and len(files(tmp_path / "one")) == 1 + 4


def test_an_unreachable_scheduler_is_one_line(tmp_path, capsys):
    code = dataset_main(["--count", "10", "--out", "x", "--dask", f"tcp://127.0.0.1:{free_port()}", *JOB])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "cannot reach a Dask scheduler" in err[0]
