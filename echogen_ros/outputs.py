"""Output directories written all at once: a hidden sibling is filled, marked as ours, then renamed into
place. A crash or a signal leaves the old state (and at most a hidden `.NAME.partial-PID` that no rerun
trips over and the next run removes); `overwrite` replaces only a directory this tool wrote."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MARKER = ".echogen-output"  # inside every directory written here: what wrote it


class OutputError(ValueError):
    """An output path that must not be written or replaced; the message says why and what to do."""


def check_target(out: Path, overwrite: bool) -> None:
    """Raise OutputError unless `out` is new, an empty directory, or (with `overwrite`) one of our outputs."""
    out = Path(out)
    if not out.exists() and not out.is_symlink():
        return
    if out.is_symlink() or not out.is_dir():
        raise OutputError(f"{out} exists and is not a directory; choose a new output path")
    if not any(out.iterdir()):
        return
    if not overwrite:
        raise OutputError(f"{out} exists and is not empty; choose a new path (or --overwrite one this tool wrote)")
    resolved = out.resolve()
    protected = {Path.home().resolve(), Path(resolved.anchor)}
    if resolved in protected or Path.cwd().resolve().is_relative_to(resolved):
        raise OutputError(f"refusing to replace {out}: it is the current directory, one above it, home or root")
    if not (out / MARKER).is_file():
        raise OutputError(f"refusing to replace {out}: echogen did not write it (no {MARKER} in it)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(out: Path) -> None:
    """Partial siblings of `out` left by runs that were killed (their process is gone)."""
    for stale in out.parent.glob(f".{out.name}.partial-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


@contextmanager
def staged(out: Path, overwrite: bool = False, kind: str = "output") -> Iterator[Path]:
    """Yield a path (not yet created) to write the whole output to; on success it becomes `out`, marked
    as `kind`; on any exception (Ctrl-C included) `out` is left as it was."""
    out = Path(out)
    check_target(out, overwrite)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(out)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror or exc}") from None
    partial = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        yield partial
        (partial / MARKER).write_text(f"{kind}\n", encoding="utf-8")
        _replace(partial, out)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _replace(partial: Path, out: Path) -> None:
    """Rename `partial` to `out`; an existing `out` (checked by check_target) is moved aside first."""
    if not out.exists():
        partial.rename(out)
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    shutil.rmtree(old, ignore_errors=True)
    out.rename(old)
    partial.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def write_file(path: Path, data: bytes) -> None:
    """Write `path` all at once (a hidden sibling, then an atomic rename): never a truncated file."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a directory; give a file name")
    partial = path.parent / f".{path.name}.partial-{os.getpid()}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(data)
        os.replace(partial, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):  # under a path that is not a folder there is nothing to remove
            partial.unlink(missing_ok=True)


@contextmanager
def swapped_in(target: Path) -> Iterator[Path]:
    """Yield a path (not yet created) to write the new `target` to; on success it takes `target`'s place (the
    old directory comes back if that rename fails); on any exception `target` is left as it was."""
    partial, old = (target.parent / f".{target.name}.{kind}-{os.getpid()}" for kind in ("partial", "old"))
    shutil.rmtree(partial, ignore_errors=True)
    try:
        yield partial
        target.rename(old)
        try:
            partial.rename(target)
        except OSError:
            old.rename(target)
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
