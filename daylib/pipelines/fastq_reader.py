"""Reading FASTQ: plain or gzip, one (sequence, quality) record at a time, strictly checked.

Standard library only, like every pipeline (they run on compute nodes).
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from pathlib import Path

# Bounds a single line so a binary or newline-free file cannot exhaust memory; generous
# enough for ultra-long nanopore reads.
MAX_LINE_BYTES = 64 * 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_SEQ_ALPHABET = b"ACGTUNRYKMSWBDHVacgtunrykmswbdhv.-"
_QUAL_ALPHABET = bytes(range(33, 127))


class DataError(Exception):
    """Malformed input (FASTQ or sample sheet): exit 65."""


class NoInputError(Exception):
    """A listed input file is missing or unreadable: exit 66."""


def _show(raw: bytes) -> str:
    """A short, escaped excerpt of a bad line; repr keeps the error message on one line."""
    text = raw.rstrip(b"\r\n")
    shown = text[:30].decode("ascii", "replace")
    return repr(shown + ("..." if len(text) > 30 else ""))


def open_fastq(path: Path) -> io.BufferedIOBase:
    """Open plain or gzip FASTQ, sniffing the magic bytes since names do not always say."""
    try:
        with path.open("rb") as probe:
            magic = probe.read(2)
        if magic == _GZIP_MAGIC:
            return gzip.open(path, "rb")
        return path.open("rb")
    except OSError as exc:
        raise NoInputError(f"{path}: cannot open: {exc.strerror or exc}") from None


def iter_records(path: Path) -> Iterator[tuple[bytes, bytes]]:
    """Yield (sequence, quality) per 4-line record, raising DataError on anything malformed.

    Records are numbered from 1; line numbers refer to the decompressed text.
    """
    record = 0
    lineno = 0

    def bad(message: str) -> DataError:
        return DataError(f"malformed FASTQ {path}: record {record} (line {lineno}): {message}")

    with open_fastq(path) as fh:

        def next_line(what: str | None) -> bytes:
            """The next line; b"" at end of file only where ``what`` is None (a header)."""
            nonlocal lineno
            line = fh.readline(MAX_LINE_BYTES)
            if not line:
                if what is None:
                    return line
                raise bad(f"truncated record: file ends before the {what} line")
            lineno += 1
            if len(line) == MAX_LINE_BYTES and not line.endswith(b"\n"):
                raise bad(f"line longer than {MAX_LINE_BYTES} bytes")
            return line

        try:
            while True:
                record += 1
                header = next_line(None)
                if not header:
                    return
                if not header.startswith(b"@"):
                    if header.strip() == b"":
                        # Blank lines are tolerated only as trailing padding.
                        while extra := next_line(None):
                            if extra.strip():
                                raise bad(f"missing '@' header: got {_show(extra)} after a "
                                          f"blank line")
                        return
                    raise bad(f"missing '@' header: got {_show(header)}")
                name = header[1:].rstrip(b"\r\n")
                if not name:
                    raise bad("empty read name after '@'")
                seq = next_line("sequence").rstrip(b"\r\n")
                plus = next_line("'+' separator")
                if not plus.startswith(b"+"):
                    raise bad(f"'+' separator line missing: got {_show(plus)}")
                plus_name = plus[1:].rstrip(b"\r\n")
                if plus_name and plus_name != name:
                    raise bad("'+' line repeats a different read name than the header")
                qual = next_line("quality").rstrip(b"\r\n")
                if len(seq) != len(qual):
                    raise bad(f"sequence length {len(seq)} != quality length {len(qual)}")
                stray = seq.translate(None, _SEQ_ALPHABET)
                if stray:
                    raise bad(f"invalid sequence character {_show(stray[:1])}")
                stray = qual.translate(None, _QUAL_ALPHABET)
                if stray:
                    raise bad(f"invalid quality character {_show(stray[:1])} "
                              f"(expected Phred+33, '!'..'~')")
                yield seq, qual
        except EOFError:
            lineno += 1  # the line being decompressed when the stream ran out
            raise bad("gzip stream is truncated") from None
        except (gzip.BadGzipFile, zlib.error) as exc:
            lineno += 1
            raise bad(f"corrupt gzip data ({exc})") from None
