#!/usr/bin/env python3
"""Write the small example FASTQs that the demo uploads as worksets.

The files are synthetic but shaped like real NovaSeq output, so the QC pipeline and anything
downstream see realistic input: Casava 1.8 headers, 100 bp reads drawn from a made-up
41%-GC genome (R2 is the reverse complement of the fragment's other end), NovaSeq's four
binned qualities (F : , #) degrading towards the 3' end and worse on R2, sequencing errors
at the rate the quality implies, and the odd N call.

Output is byte-reproducible: a fixed seed, only ``random.random()`` draws (whose algorithm is
stable across Python versions), and gzip with mtime=0 and no file name in the header. Only
a different zlib build could change the compressed bytes; the decompressed text is fixed.

Usage: python scripts/make_example_fastqs.py [--out DIR] [--check]
"""

from __future__ import annotations

import argparse
import gzip
import io
import random
import sys
from dataclasses import dataclass
from pathlib import Path

SEED = 20240611
READ_LENGTH = 100
GENOME_LENGTH = 60_000
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "daylib" / "data" / "examples" / "fastq"

# NovaSeq RTA3 quality bins: Q37 'F', Q25 ':', Q11 ',', Q2 '#'.
Q_HIGH, Q_MID, Q_LOW, Q_NOCALL = "F", ":", ",", "#"
_COMPLEMENT = str.maketrans("ACGTN", "TGCAN")


@dataclass(frozen=True)
class Run:
    """One flowcell lane of one library: enough to write realistic read names."""

    instrument: str
    run_number: int
    flowcell: str
    lane: int
    index: str


@dataclass(frozen=True)
class Example:
    """One example file set: a sample, its lanes, and how many reads (pairs) per lane."""

    sample: str
    reads: int
    paired: bool
    lanes: tuple[tuple[str, Run], ...]  # (file stem, run) per lane


EXAMPLES = (
    Example("NA12878", 400, True, (
        ("NA12878", Run("A00187", 412, "HGWFJDSXY", 2, "CGATGTTT+AAACATCG")),
    )),
    Example("HG002", 300, False, (
        ("HG002", Run("A01021", 88, "H7VNKDSX3", 1, "TTAGGCAT+ATGCCTAA")),
    )),
    Example("HG003", 200, True, (
        ("HG003_L1", Run("A00744", 231, "HMJ5CDSXY", 1, "GCCAATGT+ACATTGGC")),
        ("HG003_L2", Run("A00744", 231, "HMJ5CDSXY", 2, "GCCAATGT+ACATTGGC")),
    )),
)


def make_genome(rng: random.Random) -> str:
    """A random genome whose GC content wanders by 1 kb block, like isochores do."""
    blocks = []
    for _ in range(GENOME_LENGTH // 1000):
        gc = 0.34 + 0.16 * rng.random()  # 34-50% GC, averaging ~41% like the human genome
        block = []
        for _ in range(1000):
            r = rng.random()
            if r < gc:
                block.append("G" if r < gc / 2 else "C")
            else:
                block.append("A" if r < gc + (1 - gc) / 2 else "T")
        blocks.append("".join(block))
    return "".join(blocks)


def quality_string(rng: random.Random, mate: int) -> str:
    """Binned qualities: mostly Q37, with low bins more likely near the 3' end and on R2."""
    quals = []
    for pos in range(READ_LENGTH):
        frac = pos / (READ_LENGTH - 1)
        p_low = 0.015 + 0.13 * frac**2 + (0.03 if pos < 3 else 0.0)
        if mate == 2:
            p_low *= 1.6
        r = rng.random()
        if r >= p_low:
            quals.append(Q_HIGH)
        elif r < p_low * 0.012:
            quals.append(Q_NOCALL)
        elif r < p_low * 0.30:
            quals.append(Q_LOW)
        else:
            quals.append(Q_MID)
    return "".join(quals)


def sequence_read(rng: random.Random, template: str, quals: str) -> str:
    """Call bases from the template: N where Q2, else an error at the quality's rate."""
    out = []
    for base, q in zip(template, quals, strict=True):
        if q == Q_NOCALL:
            out.append("N")
            continue
        error_rate = 10 ** (-(ord(q) - 33) / 10)
        if rng.random() < error_rate:
            out.append("ACGT".replace(base, "")[int(rng.random() * 3)])
        else:
            out.append(base)
    return "".join(out)


def reverse_complement(seq: str) -> str:
    return seq.translate(_COMPLEMENT)[::-1]


def simulate_lane(rng: random.Random, genome: str, run: Run, reads: int,
                  paired: bool) -> tuple[list[str], list[str]]:
    """FASTQ text lines for R1 (and R2), with coordinates ordered as a tile scan emits them."""
    r1: list[str] = []
    r2: list[str] = []
    tile, y = 1101, 1000
    for _ in range(reads):
        y += 1 + int(rng.random() * 180)
        if y > 36000:
            tile, y = tile + 1, 1000 + int(rng.random() * 100)
        x = 1000 + int(rng.random() * 31000)
        name = f"{run.instrument}:{run.run_number}:{run.flowcell}:{run.lane}:{tile}:{x}:{y}"
        insert = 250 + int(rng.random() * 200)
        start = int(rng.random() * (len(genome) - insert))
        fragment = genome[start:start + insert]
        if rng.random() < 0.5:
            fragment = reverse_complement(fragment)
        mates = ((1, fragment[:READ_LENGTH], r1),
                 (2, reverse_complement(fragment)[:READ_LENGTH], r2))
        for mate, template, lines in mates[: 2 if paired else 1]:
            quals = quality_string(rng, mate)
            seq = sequence_read(rng, template, quals)
            lines += [f"@{name} {mate}:N:0:{run.index}", seq, "+", quals]
    return r1, r2


def gzip_bytes(data: bytes) -> bytes:
    """gzip with a fixed header (no name, mtime 0); GzipFile writes the same OS byte on
    every Python, unlike gzip.compress, whose mtime=0 shortcut differs in 3.11."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buf, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def build() -> dict[str, bytes]:
    """All example files as {file name: gzip bytes}; pure, so --check can compare."""
    genome = make_genome(random.Random(f"{SEED}:genome"))
    files: dict[str, bytes] = {}
    for example in EXAMPLES:
        for stem, run in example.lanes:
            rng = random.Random(f"{SEED}:{stem}")
            r1, r2 = simulate_lane(rng, genome, run, example.reads, example.paired)
            for mate, lines in ((1, r1), (2, r2)):
                if lines:
                    text = ("\n".join(lines) + "\n").encode("ascii")
                    files[f"{stem}_R{mate}.fastq.gz"] = gzip_bytes(text)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--check", action="store_true",
                        help="verify the files on disk match instead of writing them")
    args = parser.parse_args(argv)
    files = build()
    if args.check:
        stale = [n for n, data in files.items()
                 if not (args.out / n).is_file() or (args.out / n).read_bytes() != data]
        for name in stale:
            print(f"out of date: {args.out / name}", file=sys.stderr)
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (args.out / name).write_bytes(data)
        print(f"{args.out / name}\t{len(data)} bytes")
    print(f"total\t{sum(len(d) for d in files.values())} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
