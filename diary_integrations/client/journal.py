"""The local journal: writes a tracking server could not take, kept on disk until it can.

One append-only JSON-lines file per run, `<spool>/<server>/iteration-<id>.jsonl`, where the spool is
`$DIARY_SPOOL_DIR` or `diary-integrations/journal` under the user's cache directory. A line is one write
exactly as it was sent (method, path, query, JSON body, idempotency key) with the server's URL (without
any user:password part); a request's headers, and so a token, are never written. Lines are appended
under an exclusive file lock and fsync'd per batch.

Replaying sends the lines in file order with their first keys, so each write is applied at most once
however often it is sent. A replayer claims a file by renaming it (two replayers never send one file);
what the server refuses for good goes to `iteration-<id>.jsonl.rejected` with the reason, and what it
could not be reached for is put back in front of anything appended meanwhile. `diary sync` replays every
journal; a RemoteTracker replays its server's journals in the background when it first connects.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from ..tracker.errors import AuthError, DiaryError, TransportError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: claims by rename still keep replayers apart
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("diary_integrations")

ENV_SPOOL_DIR = "DIARY_SPOOL_DIR"
ENV_FLUSH_TIMEOUT = "DIARY_FLUSH_TIMEOUT"
DEFAULT_FLUSH_TIMEOUT = 10.0
SUFFIX = ".jsonl"
REJECTED = ".rejected"
_CLAIM = ".replaying-"
# Room kept free in each server's journal directory for the ends of runs (and reopens): on a full disk
# the end of a run that succeeded must still be kept, or the run would read RUNNING and later be reaped
# KILLED. Released to write an end that finds the disk full, made again once there is room.
RESERVE = ".room-for-ends"
RESERVE_BYTES = 32 * 1024
_MUST_KEEP = frozenset({"end", "reopen"})
_FILE = re.compile(r"^iteration-(\d+)\.jsonl$")
_CLAIMED = re.compile(r"^iteration-(\d+)\.jsonl\.replaying-(\d+)-[0-9a-f]+$")
# Writes that carry secrets in their body (logins, users' passwords) are never journaled.
_SECRET_PATHS = ("/auth", "/user")
SYNC_COMMAND = "diary sync"


def flush_timeout() -> float:
    """How long the end of a run waits for a server before journaling the rest ($DIARY_FLUSH_TIMEOUT, 10 s)."""
    text = os.environ.get(ENV_FLUSH_TIMEOUT, "").strip()
    if not text:
        return DEFAULT_FLUSH_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        log.warning("diary: %s=%r is not a number of seconds; using %g", ENV_FLUSH_TIMEOUT, text,
                    DEFAULT_FLUSH_TIMEOUT)
        return DEFAULT_FLUSH_TIMEOUT
    return value


def spool_dir() -> Path:
    """Where journals live: $DIARY_SPOOL_DIR, else the user's cache directory."""
    explicit = os.environ.get(ENV_SPOOL_DIR)
    if explicit:
        return Path(explicit).expanduser()
    if sys.platform == "win32":  # pragma: no cover
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":  # pragma: no cover
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "diary-integrations" / "journal"


def public_url(url: str) -> str:
    """The server URL as a journal stores it: no user:password, query or fragment, no trailing slash."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def server_slug(url: str) -> str:
    """The directory name of a server's journals: `http_127.0.0.1_9000`."""
    parts = urlsplit(public_url(url))
    text = "_".join(p for p in (parts.scheme, parts.hostname or "", str(parts.port or ""), parts.path) if p)
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_")


def server_dir(url: str, root: Path | None = None) -> Path:
    return (root or spool_dir()) / server_slug(url)


def journal_path(url: str, iteration_id: int, root: Path | None = None) -> Path:
    """The journal of one run (iteration) on one server."""
    return server_dir(url, root) / f"iteration-{int(iteration_id)}{SUFFIX}"


@dataclasses.dataclass(frozen=True)
class Entry:
    """What to journal: a write as sent (a `client.PendingWrite`), what it is (`points`, `parameters`,
    `end`) and how many points or parameters it carries."""

    write: Any
    kind: str
    count: int = 1


def _record(url: str, iteration_id: int, entry: Entry) -> bytes:
    write = entry.write
    if str(write.path).startswith(_SECRET_PATHS):
        raise ValueError(f"refusing to journal {write.method} {write.path}: its body may hold a secret")
    return orjson.dumps({
        "url": public_url(url), "iteration_id": int(iteration_id), "kind": entry.kind, "count": entry.count,
        "method": write.method, "path": write.path, "params": write.params, "body": write.body,
        "key": write.idempotency_key, "journaled_at": time.time(),
    }) + b"\n"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _lock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class JournalFull(OSError):
    """The journal's disk is full (or the file size limit reached): the write was not kept, and nothing
    torn was left behind. The message names the directory."""


def _is_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def append(url: str, iteration_id: int, entries: Sequence[Entry], root: Path | None = None) -> Path:
    """Append writes to a run's journal (one fsync for all of them); the journal's path. A record is never
    torn: a write the disk cannot take is undone whole and raises JournalFull. A run's end (or reopen) is
    kept even then, in the room reserved for ends, else in place of the run's journaled points."""
    path = journal_path(url, iteration_id, root)
    data = b"".join(_record(url, iteration_id, e) for e in entries)
    if not data:
        return path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        new = _append_whole(path, data)
    except OSError as exc:
        if not _is_full(exc):
            raise
        if not any(e.kind in _MUST_KEEP for e in entries):
            raise JournalFull(exc.errno, f"the local journal's disk is full ({path.parent}): {exc.strerror}") from exc
        new = _append_end_to_a_full_disk(path, data, exc)
    if new:
        _fsync_dir(path.parent)
    _keep_room_for_ends(path.parent)
    return path


def _append_whole(path: Path, data: bytes) -> bool:
    """Append `data` under the file's lock; True if the file was new. On an error the file is cut back
    to its size before, so a reader never meets half a record."""
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            _lock(fd)
            # A replayer may have claimed (renamed) the file between our open and our lock: then these
            # lines belong in a new file under the name, not in the claimed one it has already read.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                size = os.fstat(fd).st_size
                try:
                    _write_all(fd, data)
                    os.fsync(fd)
                except OSError:
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, size)
                    if size == 0:
                        with contextlib.suppress(OSError):
                            os.unlink(path)
                    raise
                return size == 0
        finally:
            os.close(fd)  # releases the lock


def _append_end_to_a_full_disk(path: Path, data: bytes, first: OSError) -> bool:
    """Keep a run's end on a full disk: first in the room reserved for ends, then in place of this run's
    own journaled metric points (said in a warning). Raises JournalFull when even that is not enough."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path.parent / RESERVE)
    try:
        return _append_whole(path, data)
    except OSError as exc:
        if not _is_full(exc):
            raise
    dropped = _drop_points(path)
    if dropped:
        log.warning("diary: the local journal's disk is full (%s): %d journaled metric points of %s were "
                    "dropped to keep the run's end", path.parent, dropped, path.name)
    try:
        return _append_whole(path, data)
    except OSError as exc:
        if not _is_full(exc):
            raise
        raise JournalFull(first.errno, f"the local journal's disk is full ({path.parent}): even a run's end "
                                       f"could not be kept ({exc.strerror})") from exc


def _drop_points(path: Path) -> int:
    """Rewrite a journal in place without its metric points (the rest is smaller, so it fits where the
    whole was); how many points were dropped."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return 0
    try:
        _lock(fd)
        with os.fdopen(os.dup(fd), "rb") as f:
            lines = f.read().splitlines(keepends=True)
        kept, dropped = [], 0
        for line in lines:
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                kept.append(line)
                continue
            if record.get("kind") == "points":
                dropped += int(record.get("count", 0))
            else:
                kept.append(line)
        if dropped:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            _write_all(fd, b"".join(kept))
            os.fsync(fd)
        return dropped
    finally:
        os.close(fd)


def _keep_room_for_ends(directory: Path) -> None:
    """Make the room reserved for ends when it is missing (a new directory, or released for an end) and
    the disk has it; nothing when it has not."""
    reserve = directory / RESERVE
    if reserve.exists():
        return
    tmp = directory / f"{RESERVE}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.posix_fallocate(fd, 0, RESERVE_BYTES)
        finally:
            os.close(fd)
        os.replace(tmp, reserve)
    except (OSError, AttributeError):  # no room yet (or no fallocate here): try again at the next append
        with contextlib.suppress(OSError):
            os.unlink(tmp)


_outages: dict[str, float] = {}


def mark_outage(url: str, down: bool) -> None:
    """Record that a writer found this server unreachable (or reachable again): while it is down, writes
    of a run with journaled data are tried once, without back-off, before they are journaled."""
    if down:
        _outages.setdefault(public_url(url), time.monotonic())
    else:
        _outages.pop(public_url(url), None)


def in_outage(url: str) -> bool:
    return public_url(url) in _outages


def iteration_of(path: Path) -> int | None:
    """The iteration a journal file (`iteration-<id>.jsonl`) belongs to, or None for another name."""
    match = _FILE.match(Path(path).name)
    return int(match.group(1)) if match else None


def has_pending(url: str, iteration_id: int, root: Path | None = None) -> bool:
    """True while writes of this run wait in its journal (or are being replayed from it)."""
    path = journal_path(url, iteration_id, root)
    if path.exists():
        return True
    try:
        return any(_CLAIMED.match(p.name) for p in path.parent.glob(f"{path.name}{_CLAIM}*"))
    except OSError:
        return False


# -- replay ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class ReplayReport:
    """What a replay did: records delivered, refused for good (kept aside), and left for later."""

    sent: int = 0
    points_sent: int = 0
    rejected: int = 0
    left: int = 0
    files: list[Path] = dataclasses.field(default_factory=list)
    delivered_keys: list[str] = dataclasses.field(default_factory=list)
    rejected_keys: list[str] = dataclasses.field(default_factory=list)
    answers: dict[str, Any] = dataclasses.field(default_factory=dict)
    errors: list[str] = dataclasses.field(default_factory=list)

    def add(self, other: ReplayReport) -> None:
        self.sent += other.sent
        self.points_sent += other.points_sent
        self.rejected += other.rejected
        self.left += other.left
        self.files += other.files
        self.delivered_keys += other.delivered_keys
        self.rejected_keys += other.rejected_keys
        self.answers.update(other.answers)
        self.errors += other.errors


def _claim(path: Path) -> Path | None:
    """Take a journal file for this replayer (rename), once any append in flight has finished; None if
    another replayer took it first or it is gone."""
    claimed = path.with_name(f"{path.name}{_CLAIM}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, claimed)
    except FileNotFoundError:
        return None
    fd = os.open(claimed, os.O_RDONLY)
    try:
        _lock(fd)  # an appender that opened the old name finishes first; later ones see the name gone
    finally:
        os.close(fd)
    return claimed


def _original(claimed: Path) -> Path:
    return claimed.with_name(claimed.name.split(_CLAIM, 1)[0])


def _put_back(claimed: Path, lines: list[bytes] | None) -> None:
    """Return unsent lines (None: the whole claimed file, unchanged) to the journal's name, in front of
    anything appended there since the claim."""
    path = _original(claimed)
    if lines is not None:
        try:
            _rewrite(claimed, lines)
        except OSError:
            pass  # a full disk: the whole claimed file goes back, its delivered lines are sent again once
    while True:
        try:
            os.link(claimed, path)
        except FileExistsError:
            newer = _claim(path)
            if newer is not None:
                _rewrite(claimed, claimed.read_bytes().splitlines(keepends=True) + newer.read_bytes().splitlines(
                    keepends=True))
                os.unlink(newer)
            continue
        except OSError:  # no hard links here: a rename is good enough when nothing was appended
            if path.exists():
                time.sleep(0.01)
                continue
            os.rename(claimed, path)
            return
        os.unlink(claimed)
        return


def _rewrite(path: Path, lines: Iterable[bytes]) -> None:
    """Replace a file's lines (write, fsync, rename: never half a file); private like the journal itself,
    and no temporary file left behind when the disk cannot take it."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            for line in lines:
                f.write(line if line.endswith(b"\n") else line + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _reject(claimed: Path, line: bytes, reason: str) -> None:
    """Keep a record the server refused for good beside the journal, with the reason."""
    target = _original(claimed).with_name(_original(claimed).name + REJECTED)
    try:
        record = orjson.loads(line)
        record["rejected"] = reason
        data = orjson.dumps(record) + b"\n"
    except orjson.JSONDecodeError:
        data = orjson.dumps({"unreadable": line.decode("utf-8", "replace"), "rejected": reason}) + b"\n"
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        _lock(fd)
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _pending_write(record: dict[str, Any]) -> Any:
    from .idempotency import PendingWrite

    return PendingWrite(record["method"], record["path"], record.get("params"), record.get("body"), record["key"])


def replay_file(tracker: Any, path: Path, *, retries: int | None = None, timeout: float | None = None,
                quiet: bool = False) -> ReplayReport:
    """Send one journal's records in order through `tracker.replay`; remove what was delivered, keep
    aside what was refused for good, and put back the rest when the server cannot be reached."""
    report = ReplayReport()
    claimed = _claim(path)
    if claimed is None:
        return report
    _recover_stale_claims(path.parent, keep=claimed)
    others = _other_claims(path, claimed)
    if others:
        # Older writes of this run are being sent by another replayer: these (appended after its claim,
        # e.g. the run's end) must wait for them, so they go back unsent.
        report.left += sum(1 for line in claimed.read_bytes().splitlines() if line.strip())
        report.errors.append(f"{path}: older writes of this run are being replayed by {_claimant(others[0])}; "
                             "these wait behind them in the journal")
        _put_back(claimed, None)
        return report
    report.files.append(path)
    try:
        return _replay_claimed(tracker, claimed, report, retries=retries, timeout=timeout, quiet=quiet)
    except OSError:
        # The disk failed us mid-replay (a full one, while keeping a refused record aside): no claim is
        # left behind; the whole file goes back, and the keys make what was already sent apply once.
        with contextlib.suppress(OSError):
            _put_back(claimed, None)
        raise


def _replay_claimed(tracker: Any, claimed: Path, report: ReplayReport, *, retries: int | None,
                    timeout: float | None, quiet: bool) -> ReplayReport:
    lines = claimed.read_bytes().splitlines(keepends=True)
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
            write = _pending_write(record)
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            # A line torn by a crash mid-append can never be sent: kept aside, said, never dropped unseen.
            _reject(claimed, line, f"unreadable journal line: {exc}")
            report.rejected += 1
            report.errors.append(f"{_original(claimed)}: unreadable line {n + 1} kept in {REJECTED}")
            continue
        try:
            answer = tracker.replay(write, retries=retries, timeout=timeout)
        except (TransportError, AuthError) as exc:
            # Unreachable, or these credentials cannot log in: the rest waits for a later replay.
            report.left += sum(1 for rest in lines[n:] if rest.strip())
            report.errors.append(f"{_original(claimed)}: {type(exc).__name__}: {exc}")
            _put_back(claimed, None if report.sent + report.rejected == 0 else lines[n:])
            return report
        except DiaryError as exc:
            _reject(claimed, line, f"{type(exc).__name__}: {exc}")
            report.rejected += 1
            report.rejected_keys.append(write.idempotency_key)
            message = (f"{_original(claimed)}: {record.get('kind')} write {record['method']} {record['path']} "
                       f"refused ({type(exc).__name__}: {exc}); kept in {_original(claimed).name}{REJECTED}")
            report.errors.append(message)
            if not quiet:
                log.warning("diary: %s", message)
            continue
        report.sent += 1
        if record.get("kind") == "points":
            report.points_sent += int(record.get("count", 0))
        report.delivered_keys.append(write.idempotency_key)
        report.answers[write.idempotency_key] = answer
    os.unlink(claimed)
    return report


def _claimant(claimed: Path) -> str:
    """Who holds a claim, truthfully: this process (another of its threads, e.g. a writer's probe or the
    background replay) or the process with that id."""
    match = _CLAIMED.match(claimed.name)
    pid = int(match.group(2)) if match else None
    if pid == os.getpid():
        return "another thread of this process"
    return f"process {pid}" if pid is not None else "another replayer"


def _other_claims(path: Path, mine: Path) -> list[Path]:
    return [p for p in path.parent.glob(f"{path.name}{_CLAIM}*") if p != mine and _CLAIMED.match(p.name)]


def _recover_stale_claims(directory: Path, keep: Path | None = None) -> None:
    """Claims left by a replayer that died (its pid is gone on this host) go back under their name."""
    for claimed in directory.glob(f"*{_CLAIM}*"):
        match = _CLAIMED.match(claimed.name)
        if match is None or claimed == keep or _alive(int(match.group(2))):
            continue
        with contextlib.suppress(FileNotFoundError):
            _put_back(claimed, None)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def journal_files(url: str | None = None, root: Path | None = None) -> list[Path]:
    """The journal files waiting, of one server or of all, oldest run first."""
    root = root or spool_dir()
    dirs = [server_dir(url, root)] if url is not None else sorted(p for p in root.glob("*") if p.is_dir())
    out: list[Path] = []
    for directory in dirs:
        if not directory.is_dir():
            continue
        _recover_stale_claims(directory)
        files = [p for p in directory.iterdir() if _FILE.match(p.name)]
        out += sorted(files, key=lambda p: int(_FILE.match(p.name).group(1)))  # type: ignore[union-attr]
    return out


def rejected_files(url: str | None = None, root: Path | None = None) -> list[Path]:
    root = root or spool_dir()
    dirs = [server_dir(url, root)] if url is not None else sorted(p for p in root.glob("*") if p.is_dir())
    return sorted(p for d in dirs if d.is_dir() for p in d.glob(f"*{SUFFIX}{REJECTED}"))


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a journal file (unreadable lines are skipped here; replay keeps them aside)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    for line in data.splitlines():
        if line.strip():
            with contextlib.suppress(orjson.JSONDecodeError):
                yield orjson.loads(line)


def file_url(path: Path) -> str | None:
    """The server a journal file belongs to (from its first readable record)."""
    return next((r.get("url") for r in read_records(path) if r.get("url")), None)


def describe(path: Path) -> str:
    """One line on what a journal holds: `iteration 7 on http://...: 5 writes (4000 points, the end: SUCCEEDED)`."""
    records = list(read_records(path))
    unreadable = _unreadable_lines(path)
    points = sum(int(r.get("count", 0)) for r in records if r.get("kind") == "points")
    params = sum(int(r.get("count", 0)) for r in records if r.get("kind") == "parameters")
    parts = [f"{points} points"] if points else []
    if params:
        parts.append(f"{params} parameters")
    ends = [r for r in records if r.get("kind") == "end"]
    if ends:
        status = (ends[-1].get("body") or {}).get("status_id")
        parts.append(f"the end: {_status_name(status)}")
    url = records[0].get("url") if records else "?"
    iteration = records[0].get("iteration_id") if records else "?"
    if unreadable:
        # A torn or damaged line is never sent; replay keeps it in the .rejected file beside the journal.
        parts.append(f"{unreadable} unreadable line{'s' if unreadable != 1 else ''}, to be kept aside in "
                     f"{path.name}{REJECTED}")
    detail = f" ({', '.join(parts)})" if parts else ""
    return f"iteration {iteration} on {url}: {len(records)} write{'s' if len(records) != 1 else ''}{detail}"


def _unreadable_lines(path: Path) -> int:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    count = 0
    for line in data.splitlines():
        if line.strip():
            try:
                orjson.loads(line)
            except orjson.JSONDecodeError:
                count += 1
    return count


def _status_name(status: Any) -> str:
    from ..tracker.enums import IterationStatus

    try:
        return IterationStatus(status).name
    except ValueError:
        return str(status)


def replay_server(tracker: Any, root: Path | None = None, *, retries: int | None = None,
                  timeout: float | None = None, quiet: bool = False) -> ReplayReport:
    """Replay every journal of the tracker's server, in order; stops at the first file the server cannot
    be reached for (the rest would fail the same way)."""
    report = ReplayReport()
    for path in journal_files(tracker.url, root):
        one = replay_file(tracker, path, retries=retries, timeout=timeout, quiet=quiet)
        report.add(one)
        if one.left:
            break
    return report


_background: set[str] = set()
_background_lock = threading.Lock()


def replay_in_background(tracker: Any) -> threading.Thread | None:
    """If journals of this tracker's server wait, replay them from a daemon thread (quietly: what is
    left or refused is logged, not raised). One such thread per server at a time in a process."""
    url = public_url(tracker.url)
    try:
        if not journal_files(url):
            return None
    except OSError:
        return None
    with _background_lock:
        if url in _background:
            return None
        _background.add(url)

    def run() -> None:
        try:
            report = replay_server(tracker, quiet=True)
            if report.sent or report.rejected:
                log.info("diary: replayed %d journaled writes to %s (%d refused, %d left)", report.sent, url,
                         report.rejected, report.left)
            for error in report.errors:
                log.info("diary: journal replay: %s", error)
        except Exception as exc:  # noqa: BLE001 - a background replay must never disturb the process
            log.info("diary: background journal replay failed: %s", exc)
        finally:
            with _background_lock:
                _background.discard(url)

    thread = threading.Thread(target=run, name="diary-journal-replay", daemon=True)
    thread.start()
    return thread
