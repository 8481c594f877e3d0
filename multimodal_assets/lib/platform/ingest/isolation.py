"""Parsers in this process or in worker processes: a native reader that crashes or hangs costs its file only."""

from __future__ import annotations

import contextlib
import multiprocessing
import tempfile
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, TimeoutError
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .landing import LandedFile
from .registry import PartlyRead, QuarantineError


def _parse_file(parse, with_path: bool, path: Path):
    """The parsed rows, or the QuarantineError that says why there are none."""
    try:
        data = path.read_bytes()
        return parse(data, path) if with_path else parse(data)
    except QuarantineError as err:
        return err
    except Exception as err:  # noqa: BLE001 - a parser bug must not sink the batch
        # Exception text from third-party parsers can quote file content: keep the type only.
        return QuarantineError("parser_error", f"unexpected {type(err).__name__} while parsing")


def parse_to_parquet(parse, with_path: bool, path: Path, staging: Path, key: str):
    """Worker side: parse one file and stage each table's rows as Parquet (paths returned, with
    the records that could not be read when there are some)."""
    outcome = _parse_file(parse, with_path, path)
    if isinstance(outcome, QuarantineError):
        return outcome.code, outcome.message
    outcome, rejected = PartlyRead.split(outcome)
    by_table = outcome if isinstance(outcome, dict) else {None: outcome}
    staged = {}
    for i, (name, rows) in enumerate(by_table.items()):
        arrow = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows)
        staged[name] = str(staging / f"{key}-{i}.parquet")
        pq.write_table(arrow, staged[name])
    return PartlyRead.join(staged, rejected)


def read_staged(staged):
    """The parser outcome that `parse_to_parquet`'s result stands for (rows read back)."""
    if isinstance(staged, tuple):
        return QuarantineError(*staged)
    staged, rejected = PartlyRead.split(staged)
    tables = {name: pq.read_table(path) for name, path in staged.items()}
    return PartlyRead.join(tables[None] if None in tables else tables, rejected)


def staged_to_json(staged) -> dict:
    """`parse_to_parquet`'s result as JSON, to cross a process or engine boundary."""
    if isinstance(staged, tuple):
        return {"quarantine": list(staged)}
    staged, rejected = PartlyRead.split(staged)
    return {
        "tables": {name or "": path for name, path in staged.items()},
        "rejected": [list(r) for r in rejected],
    }


def staged_from_json(document: dict):
    if "quarantine" in document:
        return tuple(document["quarantine"])
    tables = {name or None: path for name, path in document["tables"].items()}
    return PartlyRead.join(tables, [tuple(r) for r in document["rejected"]])


class ParsedElsewhere:
    """A parse that returns what another engine (a Spark job) already parsed and staged with
    `parse_to_parquet`, looked up by the bytes' SHA-256: the ingest then commits it exactly as
    it commits its own parses."""

    def __init__(self, staged_by_sha256: dict[str, object]):
        self.staged = staged_by_sha256

    def __call__(self, data: bytes, path: Path | None = None):
        import hashlib

        staged = self.staged.get(hashlib.sha256(data).hexdigest())
        if staged is None:
            raise QuarantineError("not_parsed", "the distributed parse returned nothing for it")
        outcome = read_staged(staged)
        if isinstance(outcome, QuarantineError):
            raise outcome
        return outcome


PARSE_SECONDS = 600  # per-file budget of an isolated parser (a 1 GB VCF parses in ~2 minutes)


class _Parser:
    """Parses files in order in this process, or ahead of time in a process pool.

    `isolated` parsers (native readers that can take the process down: htslib, PLINK and BGEN
    readers) always run in pool workers. A worker that dies or overruns its time costs only
    its file: the file is parsed again alone in a process of its own, and if that one dies too
    (or hangs) the file is quarantined as parser_crashed (with the signal) or parser_timeout.
    """

    def __init__(self, parse, with_path: bool, workers: int, isolated: bool = False):
        self.parse, self.with_path, self.workers = parse, with_path, max(workers, 1)
        self.pooled = workers > 1 or isolated
        self.futures: dict[str, Future] = {}
        self.stack = contextlib.ExitStack()
        self.context = multiprocessing.get_context("forkserver")

    def __enter__(self):
        if self.pooled:
            self.staging = Path(self.stack.enter_context(tempfile.TemporaryDirectory()))
            self.pool = ProcessPoolExecutor(self.workers, mp_context=self.context)
            self.stack.callback(lambda: self.pool.shutdown(wait=True, cancel_futures=True))
        return self

    def __exit__(self, *exc):
        return self.stack.__exit__(*exc)

    def submit(self, files: list[LandedFile]) -> None:
        if not self.pooled:
            return
        for landed in files:  # identical bytes are parsed once, from their first path
            if landed.sha256 not in self.futures:
                self.futures[landed.sha256] = self.pool.submit(
                    parse_to_parquet,
                    self.parse,
                    self.with_path,
                    landed.absolute,
                    self.staging,
                    landed.sha256,
                )

    def result(self, landed: LandedFile):
        if not self.pooled:
            return _parse_file(self.parse, self.with_path, landed.absolute)
        try:
            staged = self.futures[landed.sha256].result(timeout=PARSE_SECONDS)
        except TimeoutError:
            self._stop_pool()  # its worker is stuck: the files still queued run alone below
            staged = self._alone(landed)
        except (BrokenProcessPool, CancelledError):
            staged = self._alone(landed)
        return read_staged(staged)

    def _stop_pool(self) -> None:
        for process in list(getattr(self.pool, "_processes", {}).values()):
            process.kill()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _alone(self, landed: LandedFile):
        """Parse one file in a process of its own: its result, or why it has none."""
        receive, send = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=_parse_into_pipe,
            args=(send, self.parse, self.with_path, landed.absolute, self.staging, landed.sha256),
        )
        process.start()
        send.close()
        process.join(PARSE_SECONDS)
        if process.is_alive():
            process.kill()
            process.join()
            return ("parser_timeout", f"the parser ran past {PARSE_SECONDS} s on this file")
        if process.exitcode != 0:
            import signal

            code = -process.exitcode if process.exitcode < 0 else None
            how = f"signal {signal.Signals(code).name}" if code else f"exit {process.exitcode}"
            return ("parser_crashed", f"the parser's process died on this file ({how})")
        return receive.recv()


def _parse_into_pipe(send, parse, with_path, path, staging, key) -> None:
    send.send(parse_to_parquet(parse, with_path, path, staging, key))
    send.close()
