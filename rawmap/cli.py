"""The ``rawmap`` command line: a thin typer layer over the library.

Every command parses its arguments, calls the library, shows progress on
stderr and prints the lines :mod:`rawmap.report` writes (a ``--state``
continuation is :class:`rawmap.series_state.SeriesState`).  A
:class:`~rawmap.errors.RawmapError` (or an OS error on a user's file)
becomes one ``Error: ...`` line on stderr and exit code 1; usage errors exit 2 (click's default).  Heavy modules (rawpy,
numba kernels) are imported inside the commands so that ``rawmap --help``
stays fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, TypeVar

import typer
import typer.core

from ._version import __version__
from .defectmap import DefectKind, DefectMap
from .errors import NothingToMapError, RawmapError, one_line
from .export import ExportFormat
from .report import show_path

if TYPE_CHECKING:  # pragma: no cover
    from .mapping import BodyMap
    from .reader import MosaicSpec

__all__ = ["app", "run"]

app = typer.Typer(
    name="rawmap",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,  # plain click help: metavars as given, no "<bool>" / "<list[str]>" type column
)

F = TypeVar("F", bound=Callable[..., Any])


class _Command(typer.core.TyperCommand):
    """A typer command whose help shows each argument's metavar alone (``PATHS...``, not ``PATHS <list[str]>``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, typer.core.TyperArgument) and param.metavar:
                param.__class__ = _Argument


class _Argument(typer.core.TyperArgument):
    def display_type_rich(self, ctx: Any) -> Optional[str]:
        return None

    def _usage_display_name(self) -> str:
        name = str(self.metavar) + ("..." if self.nargs != 1 else "")
        return name if self.required else f"[{name}]"


def _choice(enum: type[Enum], value: Optional[str], option: str) -> Any:
    """``value`` of a choice option as a member of ``enum`` (case ignored); a one-line usage error otherwise."""
    if value is None:
        return None
    for member in enum:
        if member.value.lower() == value.strip().lower():
            return member
    raise typer.BadParameter(
        f"{value!r} is not a choice; choose one of {', '.join(m.value for m in enum)}", param_hint=f"'{option}'"
    )


# --------------------------------------------------------------------------- plumbing


class _Failed(Exception):
    """A command's own failure: print ``Error: message`` and exit 1."""


def _error(message: object) -> None:
    """Print one ``Error: ...`` line on stderr (control characters from file metadata replaced)."""
    from .frame import printable

    typer.echo(f"Error: {printable(one_line(message), None)}", err=True)


def _warn(message: object) -> None:
    """Print one ``Warning: ...`` line on stderr."""
    from .frame import printable

    typer.echo(f"Warning: {printable(one_line(message), None)}", err=True)


def _os_message(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"


def _handle_errors(func: F) -> F:
    """Turn library and OS errors of a user's input into one ``Error:`` line and exit 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (RawmapError, _Failed) as exc:
            _error(exc)
        except BrokenPipeError:
            raise  # stdout closed by its reader (`| head`): not an error of the command, see rawmap.__main__
        except OSError as exc:
            _error(_os_message(exc))
        except KeyboardInterrupt:
            typer.echo("Interrupted.", err=True)
            raise typer.Exit(130) from None
        raise typer.Exit(1)

    return wrapper  # type: ignore[return-value]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"rawmap {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print rawmap's version and exit."
    ),
) -> None:
    """Map a camera body's defective photosites (hot, stuck, dead, cold, noisy, column
    segments) from many ordinary photos, keep one map per body, export it for dcraw,
    RawTherapee or Siril, and repair new photos.

    Example: rawmap map ~/Pictures/2024/ -o d750.json
    """


def _out_arg(text: str | Path | None) -> tuple[Optional[Path], bool]:
    """An ``-o`` value as typed: ``(path, True)`` when it names a folder.

    A trailing ``/`` (or the platform's separator) or an existing folder
    means a folder, created if missing; anything else is a file.  The text
    must be taken as typed: :class:`~pathlib.Path` drops the trailing slash.
    """
    if text is None:
        return None, False
    raw = str(text)
    seps = ("/", os.sep) + ((os.altsep,) if os.altsep else ())
    path = Path(raw)
    return path, raw.endswith(seps) or path.is_dir()


def _refuse_input(out: Path, inputs: Sequence[Path], what: str = "an input photo") -> None:
    """Refuse an output that is one of ``inputs`` (the same file under any name), even with --overwrite."""
    from .fileio import same_file

    for p in inputs:
        if same_file(out, p):
            raise _Failed(f"{out}: is {what} ({p}); rawmap never writes over its inputs, choose another output")


class _Progress:
    """A progress bar on stderr, or nothing when quiet or stderr is not a terminal."""

    def __init__(self, description: str, *, quiet: bool) -> None:
        self.description = description
        self.enabled = not quiet and sys.stderr.isatty()
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[name]}"),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self.description, total=None, name="")
        return self

    def __call__(self, done: int, total: int, path: Path) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=done, total=total, name=Path(path).name)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)


# --------------------------------------------------------------------------- raw mosaics in image files


class CfaOption(str, Enum):
    """``--cfa``: the colour pattern of the mosaic a grayscale image holds, or a monochrome sensor."""

    RGGB = "RGGB"
    BGGR = "BGGR"
    GRBG = "GRBG"
    GBRG = "GBRG"
    MONO = "mono"


def _cfa_option() -> Any:
    return typer.Option(
        None,
        "--cfa",
        metavar="RGGB|BGGR|GRBG|GBRG|mono",
        help="Read grayscale 8/16-bit TIFF, PNG and PGM files as a camera's raw mosaic with this pattern "
        "(the colours of the top-left 2x2 photosites), or 'mono' for a sensor without colour filters: "
        "what machine-vision and astronomy software saves. Without it they are developed images.",
    )


def _black_option() -> Any:
    return typer.Option(
        None,
        "--black",
        min=0,
        max=65534,
        metavar="DN",
        help="With --cfa: black level of the mosaic files, in DN (default 0).",
    )


def _exposure_option() -> Any:
    return typer.Option(
        None,
        "--exposure",
        min=0.0,
        metavar="SECONDS",
        help="With --cfa: exposure time of mosaic files that do not record one (a file's own wins).",
    )


def _iso_option() -> Any:
    return typer.Option(
        None,
        "--iso",
        min=0.0,
        metavar="N",
        help="With --cfa: ISO (or gain) of mosaic files that do not record one (a file's own wins).",
    )


def _camera_option() -> Any:
    return typer.Option(
        None,
        "--camera",
        metavar="'MAKE MODEL[, SERIAL]'",
        help="With --cfa: the body that took the mosaic files (first word the make, the rest the model, "
        "a serial after a comma), e.g. 'ZWO ASI294MM Pro, 1A2B3C'. Default: the files' own Make/Model "
        "tags, else one body per pattern and size ('RGGB sensor 1280x960').",
    )


def _parse_camera(text: str) -> Any:
    from .frame import CameraId

    name, _, serial = text.partition(",")
    make, _, model = name.strip().partition(" ")
    if not model:
        make, model = "", make
    if not model.strip():
        raise typer.BadParameter(
            f"{text!r}: give the camera as 'MAKE MODEL[, SERIAL]', e.g. 'ZWO ASI294MM Pro, 1A2B3C'",
            param_hint="'--camera'",
        )
    return CameraId(make.strip(), " ".join(model.split()), serial.strip())


def _mosaic_spec(
    cfa_text: Optional[str],
    black: Optional[int],
    exposure: Optional[float],
    iso: Optional[float],
    camera: Optional[str],
) -> MosaicSpec | None:
    """The ``--cfa`` options as a :class:`~rawmap.reader.MosaicSpec` (None without --cfa; a usage error if stray)."""
    cfa: Optional[CfaOption] = _choice(CfaOption, cfa_text, "--cfa")
    if cfa is None:
        stray = [
            name
            for name, v in (("--black", black), ("--exposure", exposure), ("--iso", iso), ("--camera", camera))
            if v is not None
        ]
        if stray:
            raise typer.BadParameter(
                f"{', '.join(stray)} describe(s) mosaic files read with --cfa; add --cfa RGGB|BGGR|GRBG|GBRG|mono",
                param_hint=f"'{stray[0]}'",
            )
        return None
    from .reader import MosaicSpec

    return MosaicSpec(
        cfa.value,
        black=black or 0,
        exposure=exposure or 0.0,
        iso=iso or 0.0,
        camera=_parse_camera(camera) if camera is not None else None,
    )


# --------------------------------------------------------------------------- map


def _map_filename(body: BodyMap) -> str:
    return body.slug + ".json"


def _plan_map_outputs(out: Path, bodies: Sequence[BodyMap], *, as_folder: bool) -> tuple[list[Path], str]:
    """Where each body's map goes, and a note when OUT was turned into a folder."""
    note = ""
    if not as_folder and len(bodies) > 1:
        as_folder = True
        if out.suffix.lower() == ".json":
            folder = out.with_suffix("")
            note = (
                f"{len(bodies)} maps made (camera bodies, or sensor sizes of one body): one map each written "
                f"into the folder {show_path(folder)}/ instead of {show_path(out)}"
            )
            out = folder
    if as_folder:
        if out.exists() and not out.is_dir():
            raise _Failed(f"{out}: is a file; several maps need a folder (give -o a folder)")
        return [out / _map_filename(b) for b in bodies], note
    return [out], note


@app.command("map", cls=_Command)
@_handle_errors
def map_cmd(
    ctx: typer.Context,
    paths: list[str] = typer.Argument(
        ...,
        metavar="PATHS",
        help="Photos: files, folders (searched recursively) and glob patterns such as 'card/**/*.NEF'.",
    ),
    output: Optional[str] = typer.Option(
        None,
        "-o",
        "--output",
        metavar="OUT",
        help="Map file (JSON) for one body; with several bodies a folder that gets one <body>.json each "
        "(a .json name then becomes a folder of that name without .json). A name ending in / (or an "
        "existing folder) is a folder, created if missing. Optional with --save.",
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace existing map files (not needed for the map a --state file wrote itself last time).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar (the summary is still printed)."),
    save: bool = typer.Option(
        False,
        "--save/--no-save",
        help="Store each body's map and statistics in the library, continuing what is stored for that body "
        "(files already counted are not read again; nothing new: one line, exit 0). A killed run leaves "
        "each entry whole; concurrent runs wait for each other. Off by default: `rawmap map` writes only -o.",
    ),
    library: Optional[Path] = typer.Option(
        None,
        "--library",
        metavar="DIR",
        help="Library folder for --save (default: $RAWMAP_LIBRARY, else the platform's user data folder).",
    ),
    state: Optional[Path] = typer.Option(
        None,
        "--state",
        metavar="FILE",
        help="Statistics file of one body: continued if it exists (files already counted are skipped), "
        "then written back. Lets a map grow over time without the library; the -o map it wrote is "
        "replaced by the next continuation without --overwrite (unless changed since). Saved every "
        "--checkpoint-every photos too: after a kill or Ctrl-C, the same command reads only the rest.",
    ),
    checkpoint_every: int = typer.Option(
        50,
        "--checkpoint-every",
        min=1,
        metavar="N",
        help="With --state or --save: save the statistics after every N photos of the run.",
    ),
    threads: int = typer.Option(
        2,
        "--threads",
        "-j",
        min=1,
        metavar="N",
        help="Photos decoded and folded in at once. Each thread holds about one photo in memory; "
        "the map is the same whatever the number.",
    ),
    dask: Optional[str] = typer.Option(
        None,
        "--dask",
        metavar="SCHEDULER|local:N",
        help="Read and fold the photos on the workers of a Dask cluster: a scheduler address "
        "(tcp://host:8786), or local:N for N worker processes on this machine. Every worker must see the "
        "photos at the same paths (a shared folder). The map is the one of a local run. "
        "Needs pip install 'rawmap[dask]'.",
    ),
    dask_chunk: int = typer.Option(
        16,
        "--dask-chunk",
        min=1,
        metavar="N",
        help="With --dask: at most N photos of a body per task (a body with more is cut into contiguous chunks).",
    ),
    sensitivity: str = typer.Option(
        "normal",
        "--sensitivity",
        metavar="low|normal|high",
        help="How readily a photosite is called defective: low keeps only the surest defects (outliers in "
        "half as many scenes again, larger deviations), high adds fainter stuck, cold, noisy and line defects "
        "and, in short series, rarer ones. Changes the classification only (recorded in the map's thresholds): "
        "stored statistics continue whatever it is.",
    ),
    cfa: Optional[str] = _cfa_option(),
    black: Optional[int] = _black_option(),
    exposure: Optional[float] = _exposure_option(),
    iso: Optional[float] = _iso_option(),
    camera: Optional[str] = _camera_option(),
) -> None:
    """Map defective photosites from many photos of one or more camera bodies.

    Reads every photo once, keeps running per-photosite statistics per
    camera body and classifies the photosites that misbehave across the
    series.  Prints, per body, the frames used, the defects by kind and a
    short table; files that cannot be used are skipped with their reason.
    Needs at least 3 photos of a body, and gets better with dozens of
    varied ones (different scenes, light and exposure times).

    Files are recognised by content: copies, renamed files and moved
    folders count once (and not again with --save or --state).  The JPEG a
    camera writes beside its RAW file is skipped.  Each sensor size of a
    body (crop modes) gets its own map, named <body>-<H>x<W>.  Photos
    without camera make/model are grouped by size, assumed to be one body.

    With --cfa, grayscale TIFF, PNG and PGM files are read as the raw
    mosaic of a machine-vision or astronomy camera (colour images are then
    skipped).

    Examples:

        rawmap map ~/Pictures/2024/ -o d750.json

        rawmap map card1/ card1-backup/ -o d750.json   (the copies count once)

        rawmap map 'card/DCIM/**/*.NEF' old.NEF -o maps/

        rawmap map ~/Pictures/new/ --save   (again later: only new photos are read)

        rawmap map ~/Pictures/new/ --state d750.rawstate -o d750.json

        rawmap map ~/Pictures/2024/ -o d750.json --sensitivity high

        rawmap map darks/*.tif --cfa RGGB --exposure 30 -o cam.json

        rawmap map /mnt/share/fleet/ -o maps/ --dask tcp://10.0.0.5:8786   (on a Dask cluster)
    """
    from ._malloc import reuse_large_buffers
    from .detect import ClassifyParams

    try:
        classify_params = ClassifyParams.for_sensitivity(sensitivity.strip().lower())
    except ValueError:
        raise typer.BadParameter(f"{sensitivity!r}: choose low, normal or high", param_hint="'--sensitivity'") from None
    from . import report
    from .mapping import Counted, collect_inputs, map_files, map_slug
    from .series_state import SeriesState

    reuse_large_buffers()  # LibRaw's frame buffers: reused instead of mapped afresh for every photo
    spec = _mosaic_spec(cfa, black, exposure, iso, camera)
    if dask is not None:
        from .distributed import parse_address, require_distributed

        try:
            parse_address(dask)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="'--dask'") from None
        require_distributed()  # before reading anything: the one line that says how to install it
    if output is None and not save:
        ctx.fail("missing -o OUT: give the map file to write, or store the map in the library with --save")
    if save and state is not None:
        ctx.fail("--state and --save both keep statistics: use one (--save keeps every body's in the library)")
    out, out_folder = _out_arg(output)
    if state is not None and out is not None and not out_folder and _same_file(state, out):
        ctx.fail(f"-o {output} is the --state file: give the map another name")
    if out is not None:
        from .fileio import check_output_folder

        # found now, not after reading every photo: a folder that cannot be created or written in
        check_output_folder(out if out_folder else out.parent)
    if state is not None:
        from .fileio import check_output_folder

        check_output_folder(state.parent)  # the statistics are written back after the work

    lib = _library(library) if save else None
    if lib is not None:
        _hold_library(
            ctx, lib
        )  # until the command ends: a concurrent --save waits, then continues what this one stored
    if state is not None and state.is_dir():
        raise _Failed(f"{state}: is a folder; --state wants a state file (e.g. body.rawstate)")
    series = SeriesState.open(state) if state is not None else None
    if (
        out is not None
        and not out_folder
        and not overwrite
        and out.is_file()
        and not (series is not None and series.wrote(out))
    ):
        raise _Failed(f"{out}: already exists (add --overwrite to replace it, or choose another -o)")

    files, skipped_inputs = collect_inputs(paths, mosaic=spec is not None)
    if out is not None and not out_folder:
        _refuse_input(out, files)
    shown: dict[Path, str] = {}
    resolved: list[Path] = []
    for p in files:
        r = p.resolve()
        shown[r] = str(p)
        resolved.append(r)

    states: Any = None
    counted = Counted()
    if lib is not None:
        states = lib.states()
        counted = Counted(lib.known_keys(), {Path(p) for p in lib.known_files()})
    elif series is not None:
        states, counted = series.states(), series.counted()
    where = "the library" if lib is not None else (show_path(state) if state is not None else "the stored statistics")
    if resolved and all(p in counted.paths for p in resolved):
        said = [report.nothing_new(len(resolved), where)]
        if series is not None and out is not None and series.accumulator is not None:
            # a run killed after its last checkpoint but before its map: the map of the stored statistics
            acc = series.accumulator
            target = out / (map_slug(acc.camera, acc.source, acc.shape) + ".json") if out_folder else out
            if not target.exists():
                _refuse_input(target, resolved)
                _refuse_input(target, [series.path], "the --state file")
                from .detect import build_map

                dmap = build_map(acc, classify_params)
                series.record_output(target, dmap)
                said.append(report.map_written_line(dmap.save(target)))
        typer.echo("\n".join(said))
        return

    not_found = "; ".join(f"{s.path}: {s.reason}" for s in skipped_inputs)
    if not resolved:
        raise _Failed(f"nothing to map: {not_found}" if not_found else "nothing to map")
    from . import _kernels

    first_run = not _kernels.compiled()
    if first_run and not quiet:  # say why nothing moves for a while
        typer.echo("Compiling rawmap's kernels, once (about half a minute; later runs reuse them) ...", err=True)
    try:
        with contextlib.ExitStack() as stack:
            engine = None
            if dask is not None:
                from .distributed import dask_engine

                if not quiet:
                    typer.echo(f"Connecting to Dask ({dask}) ...", err=True)
                engine = stack.enter_context(dask_engine(dask, chunk_frames=dask_chunk))
                # the workers decode as this process does: freed frame buffers reused (Dask's nanny starts
                # them trimming the heap at 64 kB, which made decoding 3-4x slower on them)
                engine.client.run(reuse_large_buffers)
            if first_run and engine is None:  # the fold kernel compiles on the other core meanwhile
                stack.enter_context(_kernels.fold_warmup())
            progress = stack.enter_context(_Progress("Mapping", quiet=quiet))
            run = map_files(
                resolved,
                progress=progress,
                states=states,
                counted=counted,
                workers=threads,
                classify_params=classify_params,
                mosaic=spec,
                checkpoint=series.checkpoint if series is not None else _library_checkpoint(lib, classify_params),
                checkpoint_every=checkpoint_every,
                engine=engine,
            )
    except NothingToMapError as exc:
        from .mapping import SkipKind

        n_counted = sum(1 for s in exc.skipped if s.kind is SkipKind.COUNTED)
        if n_counted:  # nothing new: not an error (a scheduled `rawmap map DIR --save` goes on working)
            others = [s for s in list(skipped_inputs) + exc.skipped if s.kind is not SkipKind.COUNTED]
            typer.echo("\n".join([report.nothing_new(n_counted, where)] + report.skipped_lines(others, shown)))
            return
        raise _Failed(f"{exc} (also: {not_found})" if not_found else str(exc)) from None

    skipped = list(skipped_inputs) + run.skipped
    targets: list[Path] = []
    note = ""
    replace_own: set[Path] = set()
    if out is not None:
        targets, note = _plan_map_outputs(out, run.maps, as_folder=out_folder)
        for t in targets:
            _refuse_input(t, resolved)
            if state is not None:
                _refuse_input(t, [state], "the --state file")
            if not overwrite and t.exists():
                if series is not None and series.wrote(t):
                    replace_own.add(t)  # the map this state wrote last time: replaced without --overwrite
                    continue
                raise _Failed(f"{t}: already exists (add --overwrite to replace it, or choose another -o)")

    tail: list[str] = []
    if series is not None:  # before the maps, recording them: a kill between the two leaves -o still replaceable
        if series.accumulator is None and len(run.maps) != 1:
            series.path.unlink(
                missing_ok=True
            )  # a checkpoint of the first body: the state did not exist before the run
            raise _Failed(
                f"--state keeps the statistics of one body and sensor size, but {len(run.maps)} maps were made; "
                f"nothing was written (use --save to keep every body's statistics in the library)"
            )
        tail.append(report.state_line(series.save(run, targets=targets)))

    lines: list[str] = []
    for i, body in enumerate(run.maps):
        dmap = body.defect_map
        stored = ""
        if lib is not None:
            from .bodies import store_body

            entry, dmap = store_body(lib, body)  # the map stored (imported defects merged in, edits carried)
            stored = f"  saved in the library as {entry.path.name} ({entry.path})"
        lines += report.body_header(dmap, len(body.files))
        lines += report.map_lines(dmap)
        if targets:
            written = dmap.save(targets[i], overwrite=overwrite or targets[i] in replace_own)
            lines.append(report.map_written_line(written, replacing_own=targets[i] in replace_own))
        if stored:
            lines.append(stored)
        lines.append("")
    lines += report.skipped_lines(skipped, shown)
    lines += run.notes
    if note:
        lines.append(note)
    lines += [t for t in tail if t]
    typer.echo("\n".join(lines).rstrip("\n"))


def _library_checkpoint(lib: Any, classify_params: Any) -> Any:
    """``map --save``'s checkpoint: the body's statistics so far stored in the library (None without a library).

    The entry is updated as a unit (statistics, map, photos); the final store
    continues it, and a run killed meanwhile, run again, reads only the rest.
    """
    if lib is None:
        return None
    from .bodies import store_body
    from .detect import build_map
    from .mapping import BodyMap, Checkpoint

    def save(cp: Checkpoint) -> None:
        dmap = build_map(cp.accumulator, classify_params)
        store_body(lib, BodyMap(cp.camera, cp.source, dmap, cp.accumulator, cp.files, cp.content))

    return save


def _hold_library(ctx: typer.Context, lib: Any) -> None:
    """Hold the library's write lock until the command ends, saying so when another run holds it."""
    from .library import LibraryBusyError

    try:
        ctx.with_resource(lib.updating(wait=False))
    except LibraryBusyError:
        typer.echo(f"Waiting for another rawmap run to finish updating the library {lib.root} ...", err=True)
        ctx.with_resource(lib.updating())


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):
        return False


_LIBRARY_OPTION_HELP = "Library folder (default: $RAWMAP_LIBRARY, else the platform's user data folder)."


def _library_option() -> Any:
    return typer.Option(None, "--library", metavar="DIR", help=_LIBRARY_OPTION_HELP)


def _library(directory: Optional[Path]) -> Any:
    from .library import Library

    return Library(directory)


# --------------------------------------------------------------------------- info


@app.command("info", cls=_Command)
@_handle_errors
def info_cmd(
    files: list[Path] = typer.Argument(..., metavar="FILES", help="Photos to describe (RAW, FITS, JPEG, TIFF or PNG)."),
    cfa: Optional[str] = _cfa_option(),
    black: Optional[int] = _black_option(),
    exposure: Optional[float] = _exposure_option(),
    iso: Optional[float] = _iso_option(),
    camera: Optional[str] = _camera_option(),
) -> None:
    """Show what rawmap reads from photos: camera, serial, format, size, CFA, levels, exposure.

    A file that cannot be read prints an `Error:` line and the others are
    still shown; the exit code is then 1.  With --cfa (and its options, as
    for `rawmap map`) grayscale TIFF, PNG and PGM files are shown as the raw
    mosaics they would be mapped as.  FITS files (astronomy cameras; the
    rawmap[fits] extra) also show frame type, gain, sensor temperature,
    binning, the Bayer keywords and the row order.

    Examples:

        rawmap info DSC_0001.NEF

        rawmap info darks/dark_001.fits

        rawmap info card/DCIM/100CANON/*.CR2

        rawmap info dark_0001.png --cfa GRBG --exposure 10
    """
    from .reader import read_info
    from .report import info_lines

    spec = _mosaic_spec(cfa, black, exposure, iso, camera)
    failed = 0
    first = True
    for f in files:
        try:
            info = read_info(f, mosaic=spec)
        except RawmapError as exc:
            _error(exc)
            failed += 1
            continue
        except OSError as exc:
            _error(_os_message(exc))
            failed += 1
            continue
        if not first:
            typer.echo("")
        first = False
        typer.echo("\n".join(info_lines(info)))
    if failed:
        raise typer.Exit(1)


# --------------------------------------------------------------------------- export


def _parse_crop(text: Optional[str]) -> Optional[tuple[int, int]]:
    if text is None:
        return None
    parts = text.replace(" ", "").split(",")
    try:
        top, left = (int(parts[0]), int(parts[1])) if len(parts) == 2 else (None, None)
    except ValueError:
        top = left = None
    if top is None or left is None or top < 0 or left < 0:
        raise typer.BadParameter(
            f"{text!r}: give ROW,COL of the raw crop's top-left corner, e.g. 12,136", param_hint="'--crop-origin'"
        )
    return top, left


@app.command("export", cls=_Command)
@_handle_errors
def export_cmd(
    map_file: Path = typer.Argument(..., metavar="MAP", help="A map file written by `rawmap map`."),
    fmt_text: str = typer.Option(
        ..., "--format", "-f", metavar="|".join(f.value for f in ExportFormat), help="Format to write."
    ),
    output: Optional[str] = typer.Option(
        None,
        "-o",
        "--output",
        metavar="FILE_OR_DIR/",
        help="Output file, or a folder (e.g. RawTherapee's dark-frame folder): a name ending in / or an "
        "existing folder, created if missing, gets the format's usual name inside. Default: that name in "
        "the current folder.",
    ),
    serial: bool = typer.Option(
        True,
        "--serial/--no-serial",
        help="Put the body's serial number in the default file name (RawTherapee then applies the list "
        "only to that body; without it, to every body of the model). For RawTherapee only where it reads the "
        "serial itself (EXIF BodySerialNumber); otherwise the name has none and a warning says so.",
    ),
    crop_origin: Optional[str] = typer.Option(
        None,
        "--crop-origin",
        metavar="ROW,COL",
        help="RawTherapee only: top-left corner of its raw crop in the full frame, for cameras that "
        "camconst.json gives a raw_crop (default: the visible area).",
    ),
    always: Optional[bool] = typer.Option(
        None,
        "--always/--since-first-seen",
        help="dcraw only: date every line 0 so every photo is repaired, older ones too (the default), or "
        "date each line with the defect's first_seen (capture time of the first photo that showed it, "
        "camera clock read as UTC) so photos taken before it showed are left alone.",
        show_default=False,
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
) -> None:
    """Write a map in a format other raw tools read: dcraw/LibRaw -P, RawTherapee, Siril, CSV.

    Coordinates are converted as each tool expects (see the README).

    Examples:

        rawmap export d750.json --format dcraw

        rawmap export d750.json --format dcraw --since-first-seen

        rawmap export d750.json --format rawtherapee -o ~/RawTherapee/darkframes/

        rawmap export d750.json --format siril -o d750.lst

        rawmap export d750.json --format csv -o defects.csv
    """
    from .export import FORMATS, default_filename, rawtherapee_filename, rawtherapee_reads_serial, write_export
    from .frame import CameraId
    from .report import export_lines, rawtherapee_serial_warning

    fmt: ExportFormat = _choice(ExportFormat, fmt_text, "--format")

    info = FORMATS[fmt]

    def only_for(option: str) -> str:
        return " or ".join(f.value for f, i in FORMATS.items() if option in i.options)

    crop = _parse_crop(crop_origin)
    if crop is not None and "crop_origin" not in info.options:
        raise typer.BadParameter(
            f"--crop-origin applies to --format {only_for('crop_origin')} only", param_hint="'--crop-origin'"
        )
    if always is not None and "since_first_seen" not in info.options:
        raise typer.BadParameter(
            f"--always/--since-first-seen apply to --format {only_for('since_first_seen')} only",
            param_hint="'--always/--since-first-seen'",
        )
    dmap = DefectMap.load(map_file)
    if fmt is ExportFormat.RAWTHERAPEE:
        name = rawtherapee_filename(dmap.camera, with_serial=serial)
    elif serial:
        name = default_filename(dmap, fmt)
    else:
        bare = dataclasses.replace(dmap, camera=CameraId(dmap.camera.make, dmap.camera.model))
        name = default_filename(bare, fmt)
    out, out_folder = _out_arg(output)
    if out is None:
        target = Path(name)
    elif out_folder:
        target = out / name
    else:
        target = out
    _refuse_input(target, [map_file], "the map being exported")
    options: dict[str, Any] = {}
    if crop is not None:
        options["crop_origin"] = crop
    if "since_first_seen" in info.options:
        options["since_first_seen"] = always is False
    try:
        written = write_export(dmap, fmt, target, overwrite=overwrite, **options)
    except RawmapError as exc:
        if target.exists() and not overwrite:
            raise _Failed(f"{target}: already exists (add --overwrite to replace it, or choose another -o)") from exc
        raise
    lines = export_lines(dmap, fmt, written, since_first_seen=bool(options.get("since_first_seen")))
    typer.echo(lines[0])
    if (
        fmt is ExportFormat.RAWTHERAPEE
        and target.name == name
        and not (serial and rawtherapee_reads_serial(dmap.camera))
    ):
        _warn(rawtherapee_serial_warning(dmap.camera, serial=serial))
    for line in lines[1:]:
        typer.echo(line)


# --------------------------------------------------------------------------- show


@app.command("show", cls=_Command)
@_handle_errors
def show_cmd(
    map_ref: str = typer.Argument(
        ..., metavar="MAP", help="A map file, or a body in the library (as `rawmap library show` takes it)."
    ),
    plot: Optional[str] = typer.Option(
        None,
        "--plot",
        metavar="FILE.png",
        help="Also draw the sensor with every defect marked, and zoomed crops, as a PNG (a folder, ending "
        "in / or existing, gets <body>.png inside).",
    ),
    photo: Optional[Path] = typer.Option(
        None,
        "--photo",
        metavar="PHOTO",
        help="With --plot: show this photo's photosite values in the crops (same body).",
    ),
    top: int = typer.Option(
        10, "--top", min=0, metavar="N", help="How many of the strongest defects to list and draw as crops with --plot."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing picture."),
    library: Optional[Path] = _library_option(),
    cfa: Optional[str] = _cfa_option(),
    black: Optional[int] = _black_option(),
    camera: Optional[str] = _camera_option(),
) -> None:
    """Summarize a map: defects by kind and colour channel, what went into it, the strongest defects.

    With --cfa (and the --black/--camera the map was made with), the --photo
    may be a grayscale TIFF, PNG or PGM mosaic.

    Examples:

        rawmap show d750.json

        rawmap show d750.json --plot d750.png --photo DSC_0001.NEF

        rawmap show asi183mm.json --plot asi.png --photo light_001.tif --cfa mono
    """
    from .report import format_summary, summarize
    from .show import plot_map

    if photo is not None and plot is None:
        raise typer.BadParameter("--photo goes with --plot FILE.png", param_hint="'--photo'")
    spec = _mosaic_spec(cfa, black, None, None, camera)
    if spec is not None and photo is None:
        raise typer.BadParameter("--cfa describes the --photo: give --photo too", param_hint="'--cfa'")
    path = Path(map_ref)
    is_file = path.exists() or path.suffix.lower() == ".json"
    if is_file:
        dmap = DefectMap.load(path)
    else:
        lib = _library(library)
        dmap = lib.load_map(_find_entry(lib, map_ref))
    target: Optional[Path] = None
    if plot is not None:
        from .fileio import check_output

        chosen, folder = _out_arg(plot)
        assert chosen is not None  # plot is not None
        target = chosen / f"{dmap.camera.slug}.png" if folder else chosen
        _refuse_input(target, [path] if is_file else [], "the map shown")
        if photo is not None:
            _refuse_input(target, [photo], "the --photo")
        check_output(target, overwrite=overwrite)  # before reading the photo
    typer.echo(format_summary(summarize(dmap, top=top)))
    if target is not None:
        frame = None
        if photo is not None:
            from .reader import read_frame

            frame = read_frame(photo, mosaic=spec)
        written = plot_map(dmap, target, photo=frame, crops=top, overwrite=overwrite)
        typer.echo(f"\npicture written to {show_path(written)}")


# --------------------------------------------------------------------------- edit

_KIND_NAMES = tuple(k.value for k in DefectKind)


def _parse_site(text: str, option: str, *, with_kind: bool) -> tuple[int, int, Optional[str]]:
    """``ROW,COL`` (and ``,KIND`` when allowed) of an --add/--drop value; a usage error otherwise."""
    parts = [p.strip() for p in text.split(",")]
    kind = None
    if with_kind and len(parts) == 3:
        kind = parts.pop().lower()
        if kind not in _KIND_NAMES:
            raise typer.BadParameter(
                f"{text!r}: unknown kind {kind!r}; choose one of {', '.join(_KIND_NAMES)}", param_hint=option
            )
    try:
        row, col = (int(parts[0]), int(parts[1])) if len(parts) == 2 else (None, None)
    except ValueError:
        row = col = None
    if row is None or col is None:
        form = "ROW,COL[,KIND]" if with_kind else "ROW,COL"
        raise typer.BadParameter(
            f"{text!r}: give {form} (visible-area row and column), e.g. 120,431", param_hint=option
        )
    return row, col, kind


def _backup_name(path: Path) -> Path:
    """``d750.json`` -> ``d750.previous.json``: where an edit in place keeps the map it replaced."""
    return path.with_name(f"{path.stem}.previous{path.suffix or '.json'}")


@app.command("edit", cls=_Command)
@_handle_errors
def edit_cmd(
    ctx: typer.Context,
    map_ref: str = typer.Argument(
        ..., metavar="MAP", help="A map file, or a body in the library (as `rawmap library show` takes it)."
    ),
    add: list[str] = typer.Option(
        [],
        "--add",
        metavar="ROW,COL[,KIND]",
        help="Mark a photosite defective by hand (repeatable). KIND: stuck, dead, hot (default), warm, cold, "
        "noisy, column. Visible-area coordinates, as in the map.",
    ),
    drop: list[str] = typer.Option(
        [],
        "--drop",
        metavar="ROW,COL",
        help="Take a photosite out of the map (repeatable); it stays out when the body is mapped again in the library.",
    ),
    output: Optional[str] = typer.Option(
        None,
        "-o",
        "--output",
        metavar="OUT",
        help="Write the edited map here (MAP is left as it is); a folder (ending in / or existing) gets "
        "MAP's file name, or <body>.json for a library body.",
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Without -o: edit the MAP file in place, keeping its previous version as <name>.previous.json. "
        "With -o: replace an existing OUT.",
    ),
    library: Optional[Path] = _library_option(),
) -> None:
    """Add or drop photosites of a map by hand.

    Added photosites are marked "manual": true in the map; dropped ones are
    listed under "dropped". A map file is edited into -o OUT, or in place
    with --overwrite (the previous version kept beside it); a body in the
    library is edited in place (its previous map kept as map.previous.json),
    and mapping it again keeps the edits.

    Examples:

        rawmap edit d750.json --add 120,431 --add 88,17,stuck -o d750-edited.json

        rawmap edit d750.json --drop 300,12 --overwrite

        rawmap edit d750 --add 120,431,hot
    """
    if not add and not drop:
        ctx.fail("nothing to edit: give --add ROW,COL[,KIND] and/or --drop ROW,COL")
    adds = [_parse_site(a, "'--add'", with_kind=True) for a in add]
    drops = [_parse_site(d, "'--drop'", with_kind=False)[:2] for d in drop]

    path = Path(map_ref)
    lib = entry = None
    if path.exists() or path.suffix.lower() == ".json":
        if output is None and not overwrite:
            ctx.fail(
                f"give -o OUT for the edited map, or --overwrite to edit {map_ref} in place "
                f"(its previous version is then kept as {_backup_name(path).name})"
            )
        dmap = DefectMap.load(path)
    else:
        lib = _library(library)
        entry = _find_entry(lib, map_ref)
        dmap = lib.load_map(entry)
    out, out_folder = _out_arg(output)
    if out is not None and out_folder:
        out = out / (path.name if entry is None else f"{dmap.camera.slug}.json")
    if out is not None and not overwrite and out.exists():
        raise _Failed(f"{out}: already exists (add --overwrite to replace it, or choose another -o)")
    if out is not None and entry is None and out.exists() and out.resolve() == path.resolve():
        out = None  # -o MAP --overwrite: in place, keeping the previous version like --overwrite alone
    if out is not None:
        from .fileio import check_output

        check_output(out, overwrite=overwrite)

    edited = dmap.edited(add=[(r, c, None if k is None else DefectKind(k)) for r, c, k in adds], drop=drops)

    from .report import edit_lines

    lines = edit_lines(dmap, edited, adds, drops)

    if out is not None:
        written = edited.save(out, overwrite=overwrite)
        lines.append(f"edited map written to {show_path(written)}")
    elif entry is not None:
        assert lib is not None  # an entry comes from the library
        entry = lib.save_edited(entry, edited)
        lines.append(
            f"saved in the library as {entry.path.name}; the map before the edit is {entry.path / 'map.previous.json'}"
        )
    else:
        from .fileio import atomic_copy

        backup = atomic_copy(path, _backup_name(path), overwrite=True)
        written = edited.save(path, overwrite=True)
        lines.append(f"map {show_path(written)} edited in place; its previous version is {show_path(backup)}")
    typer.echo("\n".join(lines))


# --------------------------------------------------------------------------- repair


class RepairFormat(str, Enum):
    """What a repaired RAW file is written as."""

    DNG = "dng"
    TIFF = "tiff"


#: Most photos ``rawmap repair`` works on at once by default (each holds a few frames' worth of memory).
_MAX_REPAIR_THREADS = 4
_REPAIR_THREADS = max(1, min(os.cpu_count() or 1, _MAX_REPAIR_THREADS))


@app.command("repair", cls=_Command)
@_handle_errors
def repair_cmd(
    photos: list[str] = typer.Argument(
        ..., metavar="PHOTOS", help="Photos to repair: files, folders (searched recursively) and glob patterns."
    ),
    out_dir: Path = typer.Option(
        ...,
        "-o",
        "--output",
        metavar="OUTDIR",
        help="Folder for the repaired files (created if missing): <stem>.dng, or <stem>-2.dng, -3 ... where that "
        "name is an input photo's or another input's output (inputs are never written over).",
    ),
    map_file: Optional[Path] = typer.Option(
        None,
        "--map",
        metavar="MAP",
        help="Use this map file for every photo. Default: each photo's own body's map from the library.",
    ),
    library: Optional[Path] = typer.Option(
        None,
        "--library",
        metavar="DIR",
        help="Library folder to take the maps from (default: $RAWMAP_LIBRARY, else the platform's user data folder).",
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Apply a map of another camera body (a different sensor size or pattern is always refused).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files (never the input)."),
    skip_existing: bool = typer.Option(
        False,
        "--skip-existing",
        help="Skip photos whose output file already exists in OUTDIR (a run that was interrupted: outputs are "
        "written whole or not at all), with one count in the summary; never overwrites. Not with --overwrite.",
    ),
    opcodes: bool = typer.Option(
        False,
        "--opcodes",
        help="RAW photos only: leave the mosaic untouched and list the map's photosites in the DNG's OpcodeList1 "
        "(a FixBadPixelsList opcode, full-frame coordinates) for raw developers that apply DNG opcodes: "
        "darktable does; RawTherapee 5.9, dcraw and LibRaw ignore it.",
    ),
    fmt_text: Optional[str] = typer.Option(
        None,
        "--format",
        "-f",
        metavar="dng|tiff",
        help="Output of RAW photos: dng (the raw data, repaired; default) or tiff (developed, 16-bit sRGB with "
        "the shot's EXIF and an sRGB ICC profile). "
        "JPEGs are always written as JPEG, FITS files as FITS.",
    ),
    threads: int = typer.Option(
        _REPAIR_THREADS,
        "--threads",
        "-j",
        min=1,
        metavar="N",
        help=f"Repair up to N photos at once, in threads (at most N photos in memory; default: the number of "
        f"cores, at most {_MAX_REPAIR_THREADS}). The outputs are the same whatever N; the report keeps the input order.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    cfa: Optional[str] = _cfa_option(),
    black: Optional[int] = _black_option(),
    exposure: Optional[float] = _exposure_option(),
    iso: Optional[float] = _iso_option(),
    camera: Optional[str] = _camera_option(),
) -> None:
    """Repair the mapped photosites of new photos and write repaired copies.

    RAW photos become DNG files whose unmapped photosites are bit-identical
    to the original; JPEGs are repaired around each mapped spot and saved
    with their own quantisation tables and EXIF.  Each photo gets the map of
    its own body from the library unless --map is given.  A photo that
    fails is reported and the others are still repaired (exit code 1).
    Inputs are never written over, even with --overwrite: a photo whose
    output name is taken by an input or by another input's output (two
    folders holding x.dng) is written as x-2.dng, x-3.dng ...
    With --cfa (the options the map was made with), grayscale TIFF, PNG and
    PGM mosaics are repaired and written in their own format and depth.
    FITS files are written as FITS: the same header plus HISTORY cards
    naming rawmap and the map, the same data type and row order, every
    unmapped value bit-identical.
    With --opcodes, RAW photos become DNG copies whose mosaic is untouched
    and whose OpcodeList1 lists the map for the raw developer (darktable
    applies it; RawTherapee 5.9, dcraw and LibRaw ignore it). With
    --skip-existing, a second run into the same OUTDIR (after an
    interruption) skips the photos whose output is already there.
    With --threads N, N photos are repaired at once (each photo is decoded
    once; the files written are the same whatever N).

    Examples:

        rawmap repair card/DCIM/100NIKON/ -o repaired/

        rawmap repair card/DCIM/100NIKON/ -o repaired/ --skip-existing

        rawmap repair card/DCIM/100NIKON/ -o repaired/ --threads 2

        rawmap repair IMG_0042.CR2 --map eos5d.json -o repaired/ --format tiff

        rawmap repair IMG_0042.CR2 --map eos5d.json -o for-darktable/ --opcodes

        rawmap repair lights/*.png --cfa RGGB --map cam.json -o repaired/

        rawmap repair lights/*.fits --map asi2600mc.json -o repaired/
    """
    from ._malloc import reuse_large_buffers
    from .fileio import check_output_folder
    from .mapping import body_of, collect_inputs
    from .reader import RAW_EXTENSIONS
    from .repair import output_name, plan_outputs, repair_file
    from .report import renamed_line, repair_line, repair_summary

    reuse_large_buffers()  # each photo's frame and work buffers: reused instead of mapped afresh
    fmt: Optional[RepairFormat] = _choice(RepairFormat, fmt_text, "--format")
    if skip_existing and overwrite:
        raise typer.BadParameter(
            "--skip-existing keeps existing outputs and --overwrite replaces them; give one of the two",
            param_hint="'--skip-existing'",
        )
    if opcodes and fmt is RepairFormat.TIFF:
        raise typer.BadParameter(
            "--opcodes writes DNG files (the developer applies the opcodes); drop --format tiff",
            param_hint="'--opcodes'",
        )
    spec = _mosaic_spec(cfa, black, exposure, iso, camera)
    if out_dir.exists() and not out_dir.is_dir():
        raise _Failed(f"{out_dir}: is a file; -o takes the folder the repaired photos go to")
    check_output_folder(out_dir)
    fixed = DefectMap.load(map_file) if map_file is not None else None
    lib = _library(library) if fixed is None else None
    files, missing = collect_inputs(photos, mosaic=spec is not None)
    plan = plan_outputs(files, out_dir, fmt=fmt.value if fmt is not None else None)
    renamed = [p for p in files if plan[p].name != output_name(p, fmt=fmt.value if fmt is not None else None)]
    failures = [f"{s.path}: {s.reason}" for s in missing]
    maps: dict[Any, Any] = {}
    raw_fmt = fmt.value if fmt is not None else None

    def map_for(p: Path) -> DefectMap:
        """The map to repair ``p`` with (the library's maps are looked up in the main thread, cached)."""
        if fixed is not None:
            return fixed
        assert lib is not None  # no map given: the library's
        key = body_of(p, spec)  # from the header: the photo is decoded once, by the repair
        if key not in maps:
            try:  # the map of this sensor size (crop mode), else the body's first map
                entry = lib.get(key[0], key[1], shape=key[2])
                maps[key] = lib.load_map(entry if entry is not None else key[0], key[1])
            except RawmapError as exc:
                maps[key] = exc
        if isinstance(maps[key], Exception):
            raise _Failed(f"{p}: {maps[key]}")
        return maps[key]

    def work(p: Path, dmap: DefectMap) -> Any:
        raw = p.suffix[1:].lower() in RAW_EXTENSIONS
        return repair_file(
            p,
            dmap,
            out_dir,
            fmt=raw_fmt if raw else None,
            overwrite=overwrite,
            force=force,
            mosaic=spec,
            name=plan[p].name,
            opcodes=opcodes,
        )

    def outcome(p: Path, run: Any) -> tuple[bool, str]:
        """(True, report line) or (False, failure line) of ``run()``, the repair of ``p``."""
        try:
            return True, repair_line(p, run())
        except (RawmapError, _Failed) as exc:
            return False, one_line(exc)
        except OSError as exc:
            return False, f"{p}: {_os_message(exc)}"

    # each photo's outcome by its index: reported in input order whatever order they finish in
    outcomes: dict[int, tuple[bool, str] | None] = {}
    done = 0
    with _Progress("Repairing", quiet=quiet) as progress, ThreadPoolExecutor(max_workers=threads) as pool:
        running: dict[Any, tuple[int, Path]] = {}

        def finish(future: Any) -> None:
            nonlocal done
            i, p = running.pop(future)
            outcomes[i] = outcome(p, future.result)
            done += 1
            progress(done, len(files), p)

        for i, p in enumerate(files):
            # finished by an earlier run: outputs are renamed into place only when whole
            if skip_existing and os.path.lexists(plan[p]):
                outcomes[i] = None
                done += 1
                progress(done, len(files), p)
                continue
            try:
                dmap = map_for(p)
            except (RawmapError, _Failed) as exc:
                outcomes[i] = (False, one_line(exc))
                done += 1
                progress(done, len(files), p)
                continue
            while len(running) >= threads:  # at most `threads` photos in memory at once
                for future in wait(running, return_when=FIRST_COMPLETED).done:
                    finish(future)
            running[pool.submit(work, p, dmap)] = (i, p)
        while running:
            for future in wait(running, return_when=FIRST_COMPLETED).done:
                finish(future)
    lines: list[str] = []
    repaired = skipped = 0
    for i in range(len(files)):
        result = outcomes[i]
        if result is None:
            skipped += 1
        elif result[0]:
            repaired += 1
            lines.append(result[1])
        else:
            failures.append(result[1])
    total = len(files) + len(missing)
    if renamed:
        lines.append(renamed_line(len(renamed)))
    if lines:
        typer.echo("\n".join(lines))
    typer.echo(repair_summary(repaired, total, out_dir, failed=len(failures), skipped=skipped))
    for f in failures:
        _error(f)
    if failures:
        raise typer.Exit(1)


# --------------------------------------------------------------------------- library

library_app = typer.Typer(
    name="library",
    short_help="The per-body library of maps: list, show, remove, import, export.",
    help=(
        "The per-body library: one map and its statistics per camera body, kept by `rawmap map --save` "
        "and used by `rawmap repair`. BODY is a folder name from `rawmap library list`, a unique prefix "
        "of it, or a unique part of the camera's name.\n\n"
        "Example: rawmap library list"
    ),
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)
app.add_typer(library_app, name="library")


def _find_entry(lib: Any, text: str) -> Any:
    """The library entry BODY names: exact folder name or slug, else a unique prefix or label part."""
    entries = lib.entries()
    needle = text.strip().lower()
    if not entries:
        raise _Failed(f"the library {lib.root} is empty; make a map with `rawmap map PHOTOS --save`")
    for test in (
        lambda e: e.path.name.lower() == needle,
        lambda e: e.camera.slug == needle,
        lambda e: e.path.name.lower().startswith(needle) or needle in e.camera.label.lower(),
    ):
        found = [e for e in entries if test(e)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(f"{e.path.name} ({e.label})" for e in found)
            raise _Failed(f"{text!r} matches {len(found)} bodies: {names}; give one of these folder names")
    raise _Failed(f"no body matching {text!r} in {lib.root}; see `rawmap library list`")


@library_app.command("list", cls=_Command)
@_handle_errors
def library_list_cmd(library: Optional[Path] = _library_option()) -> None:
    """List the bodies in the library, with their number of frames and defects.

    Example: rawmap library list
    """
    from .report import library_list_lines

    lib = _library(library)
    typer.echo("\n".join(library_list_lines(lib.root, lib.entries())))


@library_app.command("show", cls=_Command)
@_handle_errors
def library_show_cmd(
    body: str = typer.Argument(
        ..., metavar="BODY", help="Folder name (or a unique part of it or of the camera's name)."
    ),
    library: Optional[Path] = _library_option(),
) -> None:
    """Show one body's entry and the defects of its map.

    Example: rawmap library show d750
    """
    lib = _library(library)
    entry = _find_entry(lib, body)
    from .report import entry_lines, format_summary, summarize

    typer.echo("\n".join(entry_lines(entry)) + "\n\n" + format_summary(summarize(lib.load_map(entry))))


@library_app.command("remove", cls=_Command)
@_handle_errors
def library_remove_cmd(
    body: str = typer.Argument(
        ..., metavar="BODY", help="Folder name (or a unique part of it or of the camera's name)."
    ),
    library: Optional[Path] = _library_option(),
) -> None:
    """Take a body out of the library (its folder is moved to the library's .trash, not deleted).

    Example: rawmap library remove canon-eos-d30-171048961
    """
    lib = _library(library)
    entry = _find_entry(lib, body)
    dest = lib.remove(entry.camera, entry.source)
    typer.echo(
        f"Removed {entry.label} ({entry.path.name}); its files are now in {dest} (move the folder back to restore it)"
    )


@library_app.command("import", cls=_Command)
@_handle_errors
def library_import_cmd(
    map_file: Path = typer.Argument(
        ..., metavar="MAP", help="A map file written by rawmap (e.g. by `rawmap library export`)."
    ),
    state: Optional[Path] = typer.Option(
        None,
        "--state",
        metavar="FILE",
        help="The statistics exported with the map (.rawstate), so new photos continue them.",
    ),
    replace: bool = typer.Option(
        False,
        "--replace",
        help="Replace the body's current entry, in one step (the old entry is moved to the library's .trash).",
    ),
    library: Optional[Path] = _library_option(),
) -> None:
    """Add a map made elsewhere (another computer, a backup) to the library.

    A map of photos without camera make and model goes to the unknown
    camera's entry (unknown-camera), where `map --save` files such photos.

    Examples:

        rawmap library import d750.map.json --state d750.rawstate

        rawmap library import old-d750.json --replace
    """
    lib = _library(library)
    DefectMap.load(map_file)  # a clear error for a file that is not a map
    entry = lib.import_map(map_file, state=state, replace=replace)
    typer.echo(
        f"Imported the map of {entry.label or 'an unknown camera'} ({entry.defects} defects) as {entry.path.name} in {lib.root}"
    )


@library_app.command("export", cls=_Command)
@_handle_errors
def library_export_cmd(
    body: str = typer.Argument(
        ..., metavar="BODY", help="Folder name (or a unique part of it or of the camera's name)."
    ),
    dest: Path = typer.Option(
        ..., "-o", "--output", metavar="DIR", help="Folder to copy the map and its statistics into."
    ),
    library: Optional[Path] = _library_option(),
) -> None:
    """Copy a body's map and statistics out of the library (to back them up or move them).

    Example: rawmap library export d750 -o /media/backup/rawmap/
    """
    from .fileio import check_output_folder

    lib = _library(library)
    entry = _find_entry(lib, body)
    check_output_folder(dest)
    written = lib.export_entry(entry.camera, entry.source, dest)
    from .report import library_export_lines

    typer.echo("\n".join(library_export_lines(written)))


# --------------------------------------------------------------------------- entry point


@app.command("merge", cls=_Command)
@_handle_errors
def merge_cmd(
    states: list[Path] = typer.Argument(..., metavar="STATES...", help="Two or more --state files of one body."),
    output: Path = typer.Option(..., "-o", "--output", metavar="STATE", help="The merged state file to write."),
    map_file: Optional[Path] = typer.Option(
        None, "--map", metavar="MAP", help="Also write the map of the merged statistics."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
) -> None:
    """Merge the statistics of several runs (e.g. made on several machines) into one state.

    The result is the state of one run over all their photos; a photo
    counted by two of them is refused (it would count twice).

    Example:

        rawmap merge part1.rawstate part2.rawstate -o body.rawstate --map body.json
    """
    from .detect import build_map
    from .fileio import check_output_folder, same_file
    from .mapping import merge_states, save_state

    if len(states) < 2:
        raise typer.BadParameter("give two state files or more", param_hint="'STATES...'")
    for out in [output] + ([map_file] if map_file else []):
        for st in states:
            _refuse_input(out, [st], "a state being merged")
        if not overwrite and out.exists():
            raise _Failed(f"{out}: already exists (add --overwrite to replace it, or choose another name)")
        check_output_folder(out.parent)
    if map_file is not None and same_file(map_file, output):
        raise typer.BadParameter("--map and -o must be different files", param_hint="'--map'")
    from .report import merge_lines

    acc, keys = merge_states(states)
    save_state(output, acc, keys, overwrite=overwrite)
    dmap = None
    if map_file is not None:
        dmap = build_map(acc)
        dmap.save(map_file, overwrite=overwrite)
    typer.echo("\n".join(merge_lines(acc, len(states), output, dmap, map_file)))


def run() -> None:
    """Run the command line on ``sys.argv`` (exits; see :func:`main` for Ctrl-C and closed pipes)."""
    app(prog_name="rawmap")
