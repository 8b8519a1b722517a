"""Write files so that a reader never sees half of one: temporary file, then rename."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

TMP_SUFFIX = ".tmp"


def temp_name(path: str | os.PathLike) -> str:
    """A hidden sibling of `path`, unique to this process and thread."""
    folder, name = os.path.split(os.fspath(path))
    return os.path.join(folder, f".{name}.{os.getpid()}-{threading.get_ident()}{TMP_SUFFIX}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path (a plain string) beside `path`; rename it onto `path` if the block succeeds.

    os.replace is atomic on POSIX and Windows when both names are on one file
    system, which a sibling temporary file guarantees; the name is unique per
    process and thread, so concurrent writers never share one.
    """
    tmp = temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes to `path` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def remove_stale_temporaries(folder: Path) -> int:
    """Delete temporary files left in `folder` by processes that no longer run; return how many."""
    removed = 0
    for tmp in folder.glob(f".*{TMP_SUFFIX}"):
        try:
            pid = int(tmp.name.rsplit(".", 2)[-2].split("-")[0])
            os.kill(pid, 0)
        except (ValueError, IndexError):
            continue  # not one of ours
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
            removed += 1
        except PermissionError:
            pass  # alive, someone else's
    return removed
