"""Helpers for tests that run the real peer programs (dcraw, LibRaw's dcraw_emu, rawtherapee-cli, siril-cli,
darktable-cli, exiftool).

A test that needs a peer calls :func:`require_peer`: when the program is not
on ``PATH`` the test is skipped, unless the environment variable
``RAWMAP_REQUIRE_PEERS=1`` is set (CI sets it), in which case it fails.
Mark such tests ``@pytest.mark.peers``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

REQUIRE_ENV = "RAWMAP_REQUIRE_PEERS"


def peers_required() -> bool:
    """True when missing peers must fail the run instead of skipping (``RAWMAP_REQUIRE_PEERS=1``)."""
    return os.environ.get(REQUIRE_ENV, "").strip() == "1"


def require_peer(name: str) -> str:
    """Absolute path of the program ``name``; skip the test (or fail it when required) if absent."""
    path = shutil.which(name)
    if path is None:
        msg = (
            f"{name} is not installed (on Debian: apt-get install dcraw rawtherapee libraw-bin siril darktable "
            "libimage-exiftool-perl)"
        )
        if peers_required():
            pytest.fail(f"{msg}, and {REQUIRE_ENV}=1 requires it")
        pytest.skip(msg)
    return path


def run_peer(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 120.0,
    stdout_binary: bool = False,
) -> subprocess.CompletedProcess:
    """Run a peer program; fail the test with its output when it exits non-zero.

    ``env`` entries are added to (and override) the current environment.
    ``stdout`` is returned as bytes when ``stdout_binary`` (e.g. ``dcraw -c``), else as text.
    """
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.run(
        [str(a) for a in argv],
        env=full_env,
        cwd=None if cwd is None else str(cwd),
        capture_output=True,
        timeout=timeout,
        text=not stdout_binary,
    )
    if proc.returncode != 0:
        err = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode("utf-8", "replace")
        pytest.fail(f"{' '.join(str(a) for a in argv)} exited with {proc.returncode}:\n{err[-2000:]}")
    return proc


def rawtherapee_env(home: Path, *, dark_frames: Path, verbose: bool = True) -> dict[str, str]:
    """Environment for ``rawtherapee-cli`` with a private configuration under ``home``.

    Writes ``home/.config/RawTherapee/options`` holding only the dark-frame
    folder (where RawTherapee reads ``*.badpixels``) and the verbose switch;
    RawTherapee 5.9 fills in every other option with its defaults.
    """
    config = home / ".config"
    rt = config / "RawTherapee"
    rt.mkdir(parents=True, exist_ok=True)
    (rt / "options").write_text(
        f"[General]\nDarkFramesPath={dark_frames}\nVerbose={'true' if verbose else 'false'}\n",
        encoding="utf-8",
    )
    return {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(config),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
    }


def darktable_develop(darktable: str, dng: Path, work: Path):
    """``dng`` developed by ``darktable-cli`` (its default processing) as a 16-bit (H, W, 3) array.

    Headless, with private settings: an in-memory library and a configuration
    and cache folder under ``work`` (named after ``dng``'s folder, so two
    files of the same name in two folders do not meet); nothing is written
    beside ``dng``.
    """
    import tifffile

    out = work / f"{dng.parent.name}-{dng.stem}.tif"
    run_peer(
        [
            darktable,
            dng,
            out,
            "--apply-custom-presets",
            "false",
            "--core",
            "--library",
            ":memory:",
            "--configdir",
            work / f"dt-config-{dng.parent.name}",
            "--cachedir",
            work / "dt-cache",
            "--conf",
            "plugins/imageio/format/tiff/bpp=16",
        ],
        timeout=300,
    )
    return tifffile.imread(out)
