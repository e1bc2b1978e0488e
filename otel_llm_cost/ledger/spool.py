"""The spool: rows a process could not write before it ended, kept in files until a ledger takes them.

A ledger that is down when the app exits must not eat its rows. The writer waits a while
(OTEL_LLM_COST_LEDGER_EXIT_TIMEOUT), then writes what is left to one JSON-lines file per process, beside
a SQLite ledger or in OTEL_LLM_COST_LEDGER_SPOOL. The next process that opens the same ledger, or
`otel-llm-cost ledger replay`, writes them back. Rows keep their ids, and writes are idempotent by id,
so a file replayed twice (two processes racing, a crash mid-replay) never duplicates a row.

A file is claimed before it is replayed by renaming it to `<name>.replaying-<pid>`: only one process
replays a file at a time, and a claim whose process died is taken over.

A file that cannot be read whole (a line cut short, bytes that are not UTF-8 JSON, a line that is not a
row, no row at all) never stops the others, and is not the database's fault: its good rows are written,
and it is set aside as `<name>.unreadable`, for a person to look at.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from otel_llm_cost.ledger.rows import Row

__all__ = ["Spool", "Unreadable", "default_spool_dir"]

_SUFFIX = ".jsonl"
_CLAIM = ".replaying-"
_ASIDE = ".unreadable"


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A spool file set aside: where it is now, how many rows were read (and written) from it, and why."""

    path: Path
    rows: int
    reason: str


def default_spool_dir() -> Path:
    """The user cache directory (XDG), where a PostgreSQL ledger's spool goes unless told otherwise."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "otel-llm-cost" / "ledger-spool"


def _ledger_id(url: str) -> str:
    """A file-name-safe name for a ledger URL, the same for every process that names it the same way
    (the password is left out: it may be rotated, and it must not end up in a file name)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username
    normal = urlunsplit((parts.scheme, f"{user}@{netloc}" if user else netloc, parts.path, "", ""))
    return hashlib.sha256(normal.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class Spool:
    """The spool files of one ledger."""

    def __init__(self, url: str, directory: Path | None = None) -> None:
        if url.startswith("sqlite:///") and directory is None:
            ledger = Path(url[len("sqlite:///"):])
            self.directory, self.prefix = ledger.parent, f"{ledger.name}-spool-"
        else:
            self.directory = directory or default_spool_dir()
            self.prefix = f"ledger-{_ledger_id(url)}-"

    def write(self, rows: Sequence[Row]) -> Path:
        """Write `rows` to a new file, whole or not at all (a temporary name, then a rename)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{self.prefix}{os.getpid()}-{os.urandom(6).hex()}{_SUFFIX}"
        temporary = path.with_name(path.name + ".tmp")
        with open(temporary, "w", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row.to_json(), separators=(",", ":"), ensure_ascii=True) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
        return path

    def files(self) -> list[Path]:
        """Files waiting to be replayed, and claims left by processes that died, oldest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.glob(f"{self.prefix}*"):
            name = path.name
            if name.endswith(_SUFFIX) or _CLAIM in name and not _alive(int(name.rpartition(_CLAIM)[2] or 0)):
                found.append(path)
        return sorted(found, key=lambda p: p.stat().st_mtime if p.exists() else 0)

    def replay(self, write: Callable[[Sequence[Row]], object],
               batch_size: int = 500) -> tuple[int, list[Path], list[Unreadable]]:
        """Hand every spooled row to `write`, batch by batch, and remove each file once it is written.
        A `write` that raises leaves the file (unclaimed) for the next try. A file that cannot be read
        whole has its good rows written and is set aside. Returns rows written, files done, files set aside."""
        rows_done, files_done, unreadable = 0, [], []
        for path in self.files():
            original = path.with_name(path.name.partition(_CLAIM)[0])
            claimed = original.with_name(original.name + _CLAIM + str(os.getpid()))
            try:
                os.replace(path, claimed)
            except FileNotFoundError:  # another process claimed it first
                continue
            read, problem = 0, None
            try:
                batch: list[Row] = []
                for row in _read(claimed):
                    if isinstance(row, str):
                        problem = problem or row
                        continue
                    batch.append(row)
                    read += 1
                    if len(batch) >= batch_size:
                        write(batch)
                        rows_done, batch = rows_done + len(batch), []
                if batch:
                    write(batch)
                    rows_done += len(batch)
            except OSError as error:  # the file itself cannot be read
                problem = f"cannot read it: {error.strerror or error}"
            except BaseException:
                os.replace(claimed, original)
                raise
            if problem is None and read == 0:
                problem = "it holds no row"
            if problem is not None:
                aside = original.with_name(original.name + _ASIDE)
                os.replace(claimed, aside)
                unreadable.append(Unreadable(aside, read, problem))
                continue
            claimed.unlink(missing_ok=True)
            files_done.append(original)
        return rows_done, files_done, unreadable


def _read(path: Path) -> Iterator[Row | str]:
    """Each line's row, or what is wrong with the line (a string); blank lines are nothing."""
    with open(path, "rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line.decode("utf-8"))
                if not isinstance(data, dict):
                    raise TypeError(f"a JSON {type(data).__name__}, not a row")
                yield Row.from_json(data)
            except (ValueError, TypeError, KeyError, AttributeError) as error:
                cut = "" if line.endswith(b"\n") else ", cut short"
                yield f"line {number}{cut}: {type(error).__name__}: {str(error)[:120]}"


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
