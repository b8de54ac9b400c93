"""Fuzzing support: mutate real RAW files and simulated DNGs, run the rawmap CLI on each, count what goes wrong.

Used by ``tests/test_fuzz.py`` (a bounded, seeded subset in the test suite)
and ``tests/benchmarks/bench_fuzz.py`` (the full run).  Three parts:

* **TIFF editing** (:func:`tiff_entries`, :func:`set_tiff_tag`): the IFD
  entries of a TIFF-based RAW file (IFD0 chain, SubIFDs, EXIF IFD) and an
  editor for their integer values, for mutants that say something precise
  and wrong (a 24,260 x 28,769 sensor, a white level of 8).
* **Mutation** (:func:`mutate`): seeded bit flips, byte runs, truncations,
  tag-value and size-field edits, and structure edits (entry counts and
  types); :func:`variant` makes a good copy with other content, so that a
  mutant can sit among good frames of its own body.
* **Running** (:class:`CliWorker`): ``rawmap`` commands run one after
  another in a long-lived worker process (imports and compiled kernels
  loaded once, an address-space limit set), each with a deadline: a
  command that does not answer in time is a hang, and the worker is killed
  and started again; a worker that dies is a crash.  File descriptors 1
  and 2 are redirected per command, so whatever a C library prints is
  caught too.  :class:`Outcome` judges one run: traceback, hang, crash,
  and stderr lines that are not ``Error:``/``warning`` lines.
"""

from __future__ import annotations

import json
import os
import select
import signal
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# --------------------------------------------------------------------------- TIFF structure

#: byte size of one value of each TIFF field type (RATIONALs: two LONGs)
_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8}


@dataclass(frozen=True)
class TiffEntry:
    """One 12-byte IFD entry of a TIFF structure.

    Attributes
    ----------
    ifd : int
        Which IFD, in walking order (0: IFD0).
    offset : int
        Absolute offset of the entry (tag, type, count, value-or-offset).
    tag, type, count : int
    value_at : int
        Absolute offset of the first value (inside the entry when it fits
        in 4 bytes).
    endian : str
        ``"<"`` or ``">"``.
    """

    ifd: int
    offset: int
    tag: int
    type: int
    count: int
    value_at: int
    endian: str


def tiff_entries(data: bytes | bytearray, *, max_ifds: int = 32) -> list[TiffEntry]:
    """The entries of every IFD reachable from a TIFF header (IFD0 chain, SubIFDs, EXIF IFD).

    Returns ``[]`` for data that is not TIFF-based (CIFF, JPEG, ...).
    Damaged structures are walked as far as they parse.
    """
    if len(data) < 8 or bytes(data[:2]) not in (b"II", b"MM"):
        return []
    e = "<" if bytes(data[:2]) == b"II" else ">"
    (magic,) = struct.unpack_from(e + "H", data, 2)
    if magic not in (42, 0x4F52, 0x5352, 0x55):
        return []
    (first,) = struct.unpack_from(e + "I", data, 4)
    todo, seen, out = [first], set(), []
    while todo and len(seen) < max_ifds:
        off = todo.pop(0)
        if off in seen or not 8 <= off <= len(data) - 2:
            continue
        seen.add(off)
        (n,) = struct.unpack_from(e + "H", data, off)
        if n == 0 or n > 1000 or off + 2 + 12 * n > len(data):
            continue
        index = len(seen) - 1
        for i in range(n):
            p = off + 2 + 12 * i
            tag, typ, count, val = struct.unpack_from(e + "HHII", data, p)
            size = _TYPE_SIZE.get(typ, 1) * count
            at = p + 8 if size <= 4 else val
            out.append(TiffEntry(index, p, tag, typ, count, at, e))
            if tag in (330, 34665) and typ in (4, 13) and size <= 4 * 64 and at + size <= len(data):
                todo.extend(struct.unpack_from(e + "I" * count, data, at))
        nxt_at = off + 2 + 12 * n
        if nxt_at + 4 <= len(data):
            (nxt,) = struct.unpack_from(e + "I", data, nxt_at)
            if nxt:
                todo.append(nxt)
    return out


def _put(data: bytearray, entry: TiffEntry, index: int, value: int) -> bool:
    """Write integer ``value`` as value ``index`` of ``entry`` (SHORT, LONG or a RATIONAL's numerator)."""
    codes = {1: "B", 3: "H", 4: "I", 5: "I", 6: "b", 8: "h", 9: "i", 10: "i", 13: "I"}
    code = codes.get(entry.type)
    if code is None or index >= entry.count:
        return False
    at = entry.value_at + index * _TYPE_SIZE[entry.type]
    if not 0 <= at <= len(data) - struct.calcsize(code):
        return False
    bits = 8 * struct.calcsize(code)
    if code.islower():
        value = (value + (1 << (bits - 1))) % (1 << bits) - (1 << (bits - 1))
    else:
        value %= 1 << bits
    struct.pack_into(entry.endian + code, data, at, value)
    if entry.type in (5, 10):  # RATIONAL: denominator 1
        struct.pack_into(entry.endian + code, data, at + 4, 1)
    return True


def set_tiff_tag(data: bytearray, tag: int, values: Sequence[int], *, ifd: int | None = None) -> int:
    """Set the first values of every entry ``tag`` (in IFD number ``ifd`` only, if given) in place.

    Parameters
    ----------
    data : bytearray
        A TIFF-based file's bytes, edited in place.
    tag : int
    values : sequence of int
        New values, from the entry's first on (extra values are ignored).
    ifd : int, optional
        Only the entries of this IFD (walking order of :func:`tiff_entries`).

    Returns
    -------
    int
        Entries edited.

    Raises
    ------
    KeyError
        No entry with this tag (in that IFD).
    """
    done = 0
    for entry in tiff_entries(data):
        if entry.tag == tag and (ifd is None or entry.ifd == ifd):
            ok = [_put(data, entry, i, int(v)) for i, v in enumerate(values)]
            done += any(ok)
    if not done:
        raise KeyError(f"no TIFF entry {tag}" + (f" in IFD {ifd}" if ifd is not None else ""))
    return done


def raw_ifd(data: bytes | bytearray) -> int | None:
    """The IFD holding the largest image (the RAW data of a NEF/KDC/DNG), by ImageWidth x ImageLength."""
    sizes: dict[int, dict[int, int]] = {}
    for entry in tiff_entries(data):
        if entry.tag in (256, 257) and entry.type in (3, 4) and entry.value_at + 4 <= len(data):
            code = "H" if entry.type == 3 else "I"
            (v,) = struct.unpack_from(entry.endian + code, data, entry.value_at)
            sizes.setdefault(entry.ifd, {})[entry.tag] = v
    best = max(sizes.items(), key=lambda kv: kv[1].get(256, 0) * kv[1].get(257, 0), default=None)
    return None if best is None else best[0]


# --------------------------------------------------------------------------- mutation

#: tags that give sizes, offsets and the structure of the image data
SIZE_TAGS = (256, 257, 273, 278, 279, 322, 323, 324, 325, 330, 34665, 50719, 50720, 50829)
#: tags that give levels, the pattern and the coding of the data
LEVEL_TAGS = (258, 259, 262, 274, 277, 33421, 33422, 50713, 50714, 50715, 50716, 50717, 50711)
#: values that tend to break things
INTERESTING = (
    0,
    1,
    2,
    3,
    7,
    8,
    255,
    256,
    4095,
    16383,
    24260,
    28769,
    65000,
    65535,
    65536,
    1 << 24,
    0x7FFFFFFF,
    0xFFFFFFFF,
)


def _flip(data: bytearray, rng: np.random.Generator) -> str:
    k = int(rng.choice([1, 2, 4, 8, 16, 32]))
    head = min(len(data), 1 << 16)
    for _ in range(k):
        pos = int(rng.integers(0, head)) if rng.random() < 0.7 else int(rng.integers(0, len(data)))
        data[pos] ^= 1 << int(rng.integers(0, 8))
    return f"{k} bit(s) flipped"


def _run(data: bytearray, rng: np.random.Generator) -> str:
    n = int(rng.integers(4, 257))
    head = min(len(data), 1 << 16)
    pos = int(rng.integers(0, max(1, head - n))) if rng.random() < 0.6 else int(rng.integers(0, max(1, len(data) - n)))
    fill = int(rng.integers(0, 3))
    if fill == 2:
        data[pos : pos + n] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()[: len(data[pos : pos + n])]
    else:
        data[pos : pos + n] = bytes([0xFF * fill]) * len(data[pos : pos + n])
    return f"{n} bytes at {pos} set to {('zeros', 'ones', 'random')[fill]}"


def _truncate(data: bytearray, rng: np.random.Generator) -> str:
    r = rng.random()
    keep = int(len(data) * (rng.uniform(0.995, 0.99999) if r < 0.3 else rng.uniform(0.0, 0.99)))
    del data[keep:]
    return f"cut to {keep} bytes"


def _zero_tail(data: bytearray, rng: np.random.Generator) -> str:
    start = int(len(data) * rng.uniform(0.3, 0.95))
    data[start:] = bytes(len(data) - start)
    return f"zeros from byte {start}"


def _tag(data: bytearray, rng: np.random.Generator) -> str:
    entries = tiff_entries(data)
    if not entries:
        return "no TIFF entries, " + _flip(data, rng)
    wanted = [e for e in entries if e.tag in SIZE_TAGS + LEVEL_TAGS]
    pool = wanted if wanted and rng.random() < 0.8 else entries
    entry = pool[int(rng.integers(0, len(pool)))]
    value = int(rng.choice(INTERESTING)) if rng.random() < 0.7 else int(rng.integers(0, 1 << 32))
    index = int(rng.integers(0, max(1, min(entry.count, 4))))
    if not _put(data, entry, index, value):
        return f"tag {entry.tag} of type {entry.type} not editable, " + _flip(data, rng)
    return f"tag {entry.tag} (IFD {entry.ifd}) value {index} set to {value}"


def _size(data: bytearray, rng: np.random.Generator) -> str:
    """A sensor size that is wrong but self-consistent: width, length, crop size and active area."""
    ifd = raw_ifd(data)
    if ifd is None:
        return "no TIFF image, " + _flip(data, rng)
    h, w = (int(rng.choice([24260, 10000, 8000, 6000, 4000, 65535, 3, 1, 0])) for _ in range(2))
    edits = []
    for tag, values in ((256, [w]), (257, [h]), (50720, [w, h]), (50829, [0, 0, h, w])):
        try:
            set_tiff_tag(data, tag, values, ifd=ifd)
            edits.append(str(tag))
        except KeyError:
            pass
    return f"sensor size set to {h}x{w} (tags {', '.join(edits)})"


def _structure(data: bytearray, rng: np.random.Generator) -> str:
    entries = tiff_entries(data)
    if not entries:
        return "no TIFF entries, " + _run(data, rng)
    entry = entries[int(rng.integers(0, len(entries)))]
    if rng.random() < 0.5:
        count = int(rng.choice([0, 1, 2, 1000, 1 << 20, 0xFFFFFFFF]))
        struct.pack_into(entry.endian + "I", data, entry.offset + 4, count)
        return f"tag {entry.tag} (IFD {entry.ifd}) count set to {count}"
    typ = int(rng.integers(0, 20))
    struct.pack_into(entry.endian + "H", data, entry.offset + 2, typ)
    return f"tag {entry.tag} (IFD {entry.ifd}) type set to {typ}"


#: mutation operators and their weights
OPERATORS: dict[str, tuple[Callable[[bytearray, np.random.Generator], str], float]] = {
    "flip": (_flip, 0.25),
    "run": (_run, 0.15),
    "truncate": (_truncate, 0.10),
    "zero-tail": (_zero_tail, 0.05),
    "tag": (_tag, 0.25),
    "size": (_size, 0.10),
    "structure": (_structure, 0.10),
}


def mutate(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """One seeded mutant of ``data`` and what was done to it (``"operator: detail"``)."""
    names = list(OPERATORS)
    weights = np.array([OPERATORS[n][1] for n in names])
    name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    out = bytearray(data)
    detail = OPERATORS[name][0](out, rng)
    if bytes(out) == data:  # an edit that changed nothing: flip one more bit
        out[int(rng.integers(0, len(out)))] ^= 1
    return bytes(out), f"{name}: {detail}"


def variant(data: bytes, i: int) -> bytes | None:
    """A good copy of a TIFF-based RAW file with other bytes (``i + 1`` zero bytes appended); None for others.

    Another content key, the same body and pixels: a mutant can then be
    mapped among good frames of its own series.
    """
    if not tiff_entries(data):
        return None
    return data + bytes(i + 1)


# --------------------------------------------------------------------------- running

_WORKER = r"""
import json, os, sys, tempfile, traceback
root, limit, warm = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sys.path.insert(0, root)
reply = os.fdopen(os.dup(1), "w")
null = os.open(os.devnull, os.O_WRONLY)
os.dup2(null, 1)
import rawmap.__main__, rawmap.mapping
from pathlib import Path
if warm:  # compiled kernels loaded before the address-space limit
    rawmap.mapping.map_files(sorted(Path(warm).glob("*.dng"))[:3])
if limit:
    import resource
    vm = 0
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            vm = int(line.split()[1]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + limit, resource.RLIM_INFINITY))
out_f, err_f = tempfile.TemporaryFile(), tempfile.TemporaryFile()
reply.write(json.dumps({"ready": rawmap.__file__}) + "\n")
reply.flush()
for line in sys.stdin:
    req = json.loads(line)
    for f in (out_f, err_f):
        f.seek(0)
        f.truncate()
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(out_f.fileno(), 1)
    os.dup2(err_f.fileno(), 2)
    code, exc = 0, ""
    t0 = __import__("time").perf_counter()
    try:
        sys.argv = ["rawmap"] + req["argv"]
        rawmap.__main__.main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        code, exc = -1, traceback.format_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(null, 1)
        os.dup2(null, 2)
    seconds = __import__("time").perf_counter() - t0
    texts = []
    for f in (out_f, err_f):
        f.seek(0)
        texts.append(f.read(1 << 20).decode("utf-8", "replace"))
    reply.write(json.dumps({"code": code, "stdout": texts[0], "stderr": texts[1], "exc": exc, "seconds": seconds}) + "\n")
    reply.flush()
"""


@dataclass
class Outcome:
    """One command's run, judged.

    Attributes
    ----------
    argv : list of str
    code : int or None
        Exit code; ``None`` for a hang (no answer before the deadline);
        negative: the worker died of that signal (a crash), -1 an
        exception that escaped the command.
    stdout, stderr : str
    seconds : float
    exc : str
        The traceback of an exception that escaped the command.
    """

    argv: list[str]
    code: int | None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    exc: str = ""
    crashed: bool = False

    @property
    def hang(self) -> bool:
        return self.code is None

    @property
    def traceback(self) -> bool:
        """An exception escaped (a Python traceback, plain or drawn by rich)."""
        text = self.stderr + self.stdout + self.exc
        return bool(self.exc) or "Traceback" in text or "╭─" in text

    @property
    def stray(self) -> list[str]:
        """stderr lines that are not one ``Error: ...`` or ``warning...`` line (LibRaw's messages, ...)."""
        return [
            line
            for line in self.stderr.splitlines()
            if line.strip() and not line.startswith(("Error: ", "warning", "Warning", "Interrupted"))
        ]

    @property
    def long_errors(self) -> list[str]:
        """``Error:`` lines longer than 600 characters or holding control characters."""
        return [
            line
            for line in self.stderr.splitlines()
            if line.startswith("Error: ") and (len(line) > 600 or any(ord(c) < 32 and c != "\t" for c in line))
        ]

    @property
    def bad(self) -> bool:
        return self.hang or self.crashed or self.traceback or bool(self.stray) or bool(self.long_errors)


class CliWorker:
    """``rawmap`` commands run in a long-lived worker process, each with a deadline.

    Parameters
    ----------
    root : Path
        Repository root whose ``rawmap`` package is run.
    timeout : float
        Seconds a command may take before it counts as a hang (the worker
        is then killed and started again).
    mem_limit : int
        Bytes of address space the worker may add after loading (0: no
        limit), so that a mutant making rawmap allocate gigabytes fails
        instead of taking the machine's memory.
    warm : Path, optional
        A folder of at least 3 DNG frames mapped once at start, so that the
        compiled kernels are loaded before the limit is set.
    env : dict, optional
        Environment of the worker (e.g. ``RAWMAP_LIBRARY``).
    """

    def __init__(
        self,
        root: Path,
        *,
        timeout: float = 60.0,
        mem_limit: int = 3 << 30,
        warm: Path | None = None,
        env: dict | None = None,
    ) -> None:
        self.root, self.timeout, self.mem_limit = Path(root), timeout, mem_limit
        self.warm, self.env = warm, env
        self.proc: subprocess.Popen | None = None
        self.restarts = 0

    def _start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(self.root), str(self.mem_limit), str(self.warm or "")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=self.env,
            start_new_session=True,
            text=True,
        )
        ready = self._answer(max(self.timeout, 300.0))
        if not ready or "ready" not in ready:
            self.close()
            raise RuntimeError("the fuzz worker did not start")
        if not str(ready["ready"]).startswith(str(self.root)):
            self.close()
            raise RuntimeError(f"the fuzz worker runs {ready['ready']}, not the package of {self.root}")

    def _answer(self, timeout: float) -> dict | None:
        """The worker's next answer, or None when it did not come in time or the worker died."""
        assert self.proc is not None and self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else None

    def run(self, argv: Sequence[str]) -> Outcome:
        """Run ``rawmap ARGV`` and judge it."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        assert self.proc is not None and self.proc.stdin is not None
        argv = [str(a) for a in argv]
        t0 = time.perf_counter()
        try:
            self.proc.stdin.write(json.dumps({"argv": argv}) + "\n")
            self.proc.stdin.flush()
            got = self._answer(self.timeout)
        except (BrokenPipeError, ValueError):
            got = None
        if got is not None:
            return Outcome(argv, int(got["code"]), got["stdout"], got["stderr"], float(got["seconds"]), got["exc"])
        status = self.proc.poll()
        self._kill()
        if status is None:  # still running after the deadline: a hang
            return Outcome(argv, None, seconds=time.perf_counter() - t0)
        return Outcome(argv, status, seconds=time.perf_counter() - t0, crashed=True)

    def _kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait()
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream is not None:
                    stream.close()
            self.proc = None
            self.restarts += 1

    def close(self) -> None:
        if self.proc is not None:
            try:
                if self.proc.stdin is not None:
                    self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self._kill()
            self.restarts -= 1

    def __enter__(self) -> CliWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- campaign


@dataclass
class Base:
    """A good file to mutate, with good frames of its own body and a map of its sensor.

    Attributes
    ----------
    path : Path
    good : list of Path
        Other good frames of the same body and size (other content), may be empty.
    others : list of Path
        Good frames of another body, so that every ``map`` run has a series to map.
    map_file : Path
        A map to repair with (of this body when one could be made).
    """

    path: Path
    good: list[Path]
    others: list[Path]
    map_file: Path


@dataclass
class Report:
    """Counts over a fuzz campaign."""

    mutants: int = 0
    runs: int = 0
    tracebacks: int = 0
    hangs: int = 0
    crashes: int = 0
    stray: int = 0
    long_errors: int = 0
    codes: Counter = field(default_factory=Counter)
    operators: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, what: str, mutant: Path, how: str, outcome: Outcome, keep: int = 40) -> None:
        self.runs += 1
        self.codes[(what, "hang" if outcome.hang else ("crash" if outcome.crashed else outcome.code))] += 1
        problems = []
        if outcome.hang:
            self.hangs += 1
            problems.append("hang")
        if outcome.crashed:
            self.crashes += 1
            problems.append(f"crash (signal {-outcome.code if outcome.code else '?'})")
        if outcome.traceback:
            self.tracebacks += 1
            last = (outcome.exc or outcome.stderr).strip().splitlines()[-1:] or [""]
            problems.append(f"traceback: {last[0][:200]}")
        if outcome.stray:
            self.stray += 1
            problems.append(f"stray stderr: {outcome.stray[0][:200]}")
        if outcome.long_errors:
            self.long_errors += 1
            problems.append(f"long or raw error line ({len(outcome.long_errors[0])} chars)")
        if problems and len(self.examples) < keep:
            self.examples.append(f"{what} {mutant.name} [{how}]: {'; '.join(problems)}")

    @property
    def bad(self) -> int:
        return self.tracebacks + self.hangs + self.crashes + self.stray + self.long_errors

    def text(self) -> str:
        lines = [
            f"{self.mutants} mutants, {self.runs} runs in {self.seconds:.0f} s: "
            f"{self.tracebacks} tracebacks, {self.hangs} hangs, {self.crashes} crashes, "
            f"{self.stray} runs with stray stderr lines, {self.long_errors} with long or raw error lines",
            "operators: " + ", ".join(f"{k} {v}" for k, v in sorted(self.operators.items())),
            "exit codes:",
        ]
        for what in sorted({w for w, _ in self.codes}):
            row = {c: n for (w, c), n in self.codes.items() if w == what}
            lines.append(
                f"  {what:<10} " + ", ".join(f"{c}: {n}" for c, n in sorted(row.items(), key=lambda kv: str(kv[0])))
            )
        if self.examples:
            lines.append("problems:")
            lines.extend("  " + e for e in self.examples)
        return "\n".join(lines)


def run_mutant(worker: CliWorker, base: Base, mutant: Path, how: str, work: Path, report: Report) -> None:
    """``info``; ``map`` with the mutant first, then last, among good frames; ``repair``: each judged into ``report``."""
    report.mutants += 1
    report.operators[how.split(":")[0]] += 1
    series = base.good + base.others
    report.add("info", mutant, how, worker.run(["info", mutant]))
    out = work / "out"
    report.add(
        "map-first", mutant, how, worker.run(["map", mutant, *series, "-o", out / "first.json", "--overwrite", "-q"])
    )
    report.add(
        "map-last",
        mutant,
        how,
        worker.run(["map", *series, mutant, "-o", out / "last.json", "--overwrite", "-q", "--threads", "1"]),
    )
    report.add(
        "repair",
        mutant,
        how,
        worker.run(["repair", mutant, "--map", base.map_file, "-o", out / "repaired", "--overwrite", "-q"]),
    )


def campaign(
    worker: CliWorker,
    bases: Sequence[Base],
    n: int,
    seed: int,
    work: Path,
    progress: Callable[[int, Report], None] | None = None,
) -> Report:
    """Mutate ``n`` files (the bases in turn), run each through :func:`run_mutant`, count."""
    rng = np.random.default_rng(seed)
    report = Report()
    t0 = time.perf_counter()
    folder = work / "mutants"
    folder.mkdir(parents=True, exist_ok=True)
    data = {b.path: b.path.read_bytes() for b in bases}
    for i in range(n):
        base = bases[i % len(bases)]
        blob, how = mutate(data[base.path], rng)
        mutant = folder / f"m{i:05d}-{base.path.stem}{base.path.suffix}"
        mutant.write_bytes(blob)
        try:
            run_mutant(worker, base, mutant, how, work, report)
        finally:
            mutant.unlink()
        if progress is not None:
            progress(i + 1, report)
    report.seconds = time.perf_counter() - t0
    return report


def make_bases(
    worker: CliWorker, work: Path, samples: Path | None, *, seed: int = 5, images: bool = True
) -> list[Base]:
    """The files to mutate: simulated DNG series, developed images (``images``) and the real samples.

    Two simulated DNG series (one with an optical-black border), with
    ``images`` a JPEG and a 16-bit RGB TIFF series of noise (no camera
    identity: grouped by size), and the real samples in ``samples``.

    Each simulated frame 0 is a base, with the series' other frames as its
    good frames; each TIFF-based real sample gets two good copies
    (:func:`variant`).  A map per base is made with the worker (``rawmap
    map``); a base whose map cannot be made is repaired with the first
    series' map (and refused, in one line, for its other sensor size).
    """
    from rawmap.frame import CameraId
    from rawmap.testing import SensorSpec, generate_series

    series = []
    specs = [
        SensorSpec(64, 96),
        SensorSpec(72, 100, top_margin=6, left_margin=8, camera=CameraId("Rawmap", "Simulated Border", "SIM0042")),
    ]
    for k, spec in enumerate(specs):
        folder = work / f"series-{k}"
        generate_series(folder, n_frames=4, seed=seed + k, spec=spec)
        series.append(sorted(folder.glob("*.dng")))
    bases: list[Base] = []
    maps = work / "maps"
    maps.mkdir(parents=True, exist_ok=True)

    def map_of(name: str, files: Sequence[Path]) -> Path | None:
        out = maps / f"{name}.json"
        got = worker.run(["map", *files, "-o", out, "--overwrite", "-q"])
        return out if got.code == 0 and out.exists() else None

    series_maps = [map_of(f"series-{k}", files) for k, files in enumerate(series)]
    if series_maps[0] is None:
        raise RuntimeError("the simulated series could not be mapped: the fuzz campaign has no map to repair with")
    for k, files in enumerate(series):
        bases.append(Base(files[0], files[1:], series[1 - k][:3], series_maps[k] or series_maps[0]))
    if images:  # developed images: a JPEG and a 16-bit TIFF series (Pillow and tifffile read them)
        import tifffile
        from PIL import Image

        rng = np.random.default_rng(seed)
        for kind in ("jpg", "tif"):
            folder = work / f"images-{kind}"
            folder.mkdir(parents=True, exist_ok=True)
            files = []
            for i in range(4):
                pixels = rng.normal(0.4, 0.1, size=(72, 96, 3)).clip(0, 1)
                path = folder / f"img_{i}.{kind}"
                if kind == "jpg":
                    Image.fromarray((pixels * 255).astype(np.uint8)).save(path, quality=92)
                else:
                    tifffile.imwrite(path, (pixels * 65535).astype(np.uint16), photometric="rgb")
                files.append(path)
            own = map_of(f"images-{kind}", files)
            bases.append(Base(files[0], files[1:], series[0][:3], own or series_maps[0]))
    if samples is not None and samples.is_dir():
        copies = work / "samples"
        copies.mkdir(parents=True, exist_ok=True)
        for path in sorted(samples.iterdir()):
            data = path.read_bytes()
            good = []
            for i in range(2):
                blob = variant(data, i)
                if blob is not None:
                    good.append(copies / f"{path.stem}-good{i}{path.suffix}")
                    good[-1].write_bytes(blob)
            own = map_of(path.stem, [path, *good]) if good else None
            bases.append(Base(path, good, series[0][:3], own or series_maps[0]))  # type: ignore[arg-type]
    return bases
