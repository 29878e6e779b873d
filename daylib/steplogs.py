"""Step logs: what a step printed, kept bounded and copied to S3 beside its workset.

Why: the live log sits on the head node's shared file system, which an operator on a laptop
(or after the cluster is gone) cannot read. When a step ends, the monitor copies its log to
``s3://<bucket>/<prefix><id>/logs/<step>.a<attempt>.log``; a log longer than the configured
size keeps its head and its tail with a line saying how much was cut. ``logs`` reads that
copy from anywhere, or follows the live file on the head node while the step runs.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from daylib.config import Settings
from daylib.errors import AwsError
from daylib.executors.base import STEPS, log_name, status_name
from daylib.s3 import S3Objects
from daylib.s3uri import split_uri
from daylib.spec import folder_uri as spec_folder_uri

_NAME = re.compile(r"^(stage|run|export)\.a([0-9]+)\.log$")


@dataclass(frozen=True, order=True)
class LogRef:
    """One step attempt's log."""

    attempt: int
    step_index: int
    step: str

    @property
    def name(self) -> str:
        return log_name(self.step, self.attempt)


def ref(step: str, attempt: int) -> LogRef:
    return LogRef(attempt, STEPS.index(step), step)


def folder_uri(settings: Settings, workset_id: str) -> str:
    """Where a workset's step logs are copied: ``logs/`` in its folder."""
    return spec_folder_uri(settings, workset_id) + "logs/"


def folder_key(settings: Settings, workset_id: str) -> str:
    return split_uri(folder_uri(settings, workset_id))[1]


def local_path(settings: Settings, workset_id: str, log: LogRef) -> Path:
    """Where the step's wrapper writes (the executors' ``StepRequest.log_file``)."""
    return Path(settings.monitor.workdir) / workset_id / log.name


def status_path(settings: Settings, workset_id: str, log: LogRef) -> Path:
    """The wrapper's exit-status file: it exists once the step has ended."""
    return Path(settings.monitor.workdir) / workset_id / status_name(log.step, log.attempt)


def bounded(fh: BinaryIO, size: int, max_bytes: int, head_bytes: int) -> bytes:
    """The whole file if it fits in ``max_bytes``, else its head and tail around a marker
    line; never reads more than ``max_bytes`` of it."""
    if size <= max_bytes:
        return fh.read(max_bytes)
    head_bytes = min(head_bytes, max_bytes // 2)
    head = fh.read(head_bytes)
    marker_room = 120
    tail_bytes = max(0, max_bytes - head_bytes - marker_room)
    fh.seek(size - tail_bytes)
    tail = fh.read(tail_bytes)
    cut = size - len(head) - len(tail)
    marker = f"\n[daylib: {cut} bytes of this log omitted; kept the first {len(head)} and " \
             f"the last {len(tail)}]\n"
    return head + marker.encode() + tail


def publish(s3: S3Objects, settings: Settings, workset_id: str, log: LogRef,
            path: Path) -> str | None:
    """Copy the step's log (bounded) to S3; return its URI, or None if there is no log."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            data = bounded(fh, size, settings.step_logs.max_bytes, settings.step_logs.head_bytes)
    except FileNotFoundError:
        return None
    key = folder_key(settings, workset_id) + log.name
    s3.put_bytes(settings.storage.bucket, key, data)
    return f"s3://{settings.storage.bucket}/{key}"


def stored(s3: S3Objects, settings: Settings, workset_id: str) -> list[LogRef]:
    """The step logs copied to S3 for a workset, in attempt then step order."""
    found = []
    for name in s3.files(settings.storage.bucket, folder_key(settings, workset_id)):
        m = _NAME.match(name)
        if m:
            found.append(ref(m.group(1), int(m.group(2))))
    return sorted(found)


def read_stored(s3: S3Objects, settings: Settings, workset_id: str, log: LogRef) -> str | None:
    key = folder_key(settings, workset_id) + log.name
    try:
        return s3.read_text(settings.storage.bucket, key, settings.step_logs.max_bytes + 1024)
    except AwsError as exc:
        if exc.code == "InvalidRange":  # an empty log: S3 refuses a range on 0 bytes
            return ""
        raise


_CUT = re.compile(rb"\n\[daylib: ([0-9]+) bytes of this log omitted after the first ([0-9]+) "
                  rb"bytes\]\n")
_CUT_SEARCH_BYTES = 1_048_576  # the marker sits right after the head, at most max_bytes / 2


@dataclass(frozen=True)
class _Cut:
    """Where a cut live log (``jobwrap.BoundedLog``) dropped bytes: after ``head`` bytes, a
    marker of ``marker`` bytes stands for ``omitted`` bytes of output."""

    head: int
    omitted: int
    marker: int

    def stream_offset(self, offset: int) -> int:
        """The position in the step's whole output of byte ``offset`` of this file."""
        if offset <= self.head:
            return offset
        return self.head + self.omitted + max(0, offset - self.head - self.marker)

    def file_offset(self, stream: int) -> int:
        """Where to go on reading this file after ``stream`` bytes of output; the marker's
        own start if some of what follows it was cut."""
        if stream <= self.head:
            return stream
        if stream < self.head + self.omitted:
            return self.head
        return self.head + self.marker + stream - self.head - self.omitted


def _cut_of(fh: BinaryIO) -> _Cut | None:
    fh.seek(0)
    m = _CUT.search(fh.read(_CUT_SEARCH_BYTES))
    if m is None or int(m.group(2)) != m.start():
        return None
    return _Cut(m.start(), int(m.group(1)), m.end() - m.start())


def follow(path: Path, ended: Callable[[], bool], *, poll_seconds: float = 0.2,
           sleep: Callable[[float], None] = time.sleep) -> Iterator[str]:
    """Yield what is appended to ``path`` until ``ended()`` says the step is over, then
    what is left. The file may appear after following starts. When the wrapper cuts the
    live log (a new file of head, marker and tail), reading goes on where it was in the
    step's output, through the marker if some of it was cut."""
    offset, inode, cut = 0, None, None
    while True:
        done = ended()  # asked before reading, so nothing written before the end is missed
        try:
            with open(path, "rb") as fh:
                ino = os.fstat(fh.fileno()).st_ino
                if ino != inode:
                    stream = offset if cut is None else cut.stream_offset(offset)
                    cut = _cut_of(fh)
                    if inode is not None:
                        offset = stream if cut is None else cut.file_offset(stream)
                    inode = ino
                fh.seek(offset)
                chunk = fh.read()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            offset += len(chunk)
            yield chunk.decode("utf-8", errors="replace")
        if done:
            return
        if not chunk:
            sleep(poll_seconds)
