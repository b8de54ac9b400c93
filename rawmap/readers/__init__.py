"""The reader backends, one module each, behind one registry.

=======================  ====================================================
:mod:`.libraw`           camera RAW files, decoded by LibRaw (rawpy)
:mod:`.images`           developed JPEG, TIFF and PNG images (Pillow, tifffile)
:mod:`.mosaic`           raw mosaics in grayscale TIFF, PNG and PGM files (``--cfa``)
:mod:`.fits`             FITS files of astronomy cameras (astropy, the ``rawmap[fits]`` extra)
:mod:`.base`             the :class:`Backend` record, :class:`Probe`, :class:`FileInfo`,
                         the checks made before any decoder runs
=======================  ====================================================

:mod:`rawmap.reader` is the public face: it checks a file
(:func:`~rawmap.readers.base.check_file`), asks each backend of
:data:`BACKENDS` in order whether it claims the file, and calls the hooks
of the first that does.  Adding a reader (as :mod:`.fits` was) is one module with a
``BACKEND`` record and one entry in :data:`BACKENDS`, before
:mod:`.libraw`, which claims every file the others leave.
"""

from __future__ import annotations

from . import fits, images, libraw, mosaic
from .base import Backend, FileInfo, Probe

__all__ = ["BACKENDS", "Backend", "FileInfo", "Probe", "backend_for"]

#: The backends in the order they are asked: FITS first (its header says what a FITS file holds, with
#: ``--cfa`` or not), the mosaic reader (it takes grayscale images only when a
#: :class:`~rawmap.readers.mosaic.MosaicSpec` is given), then developed images, and LibRaw last.
BACKENDS: tuple[Backend, ...] = (fits.BACKEND, mosaic.BACKEND, images.BACKEND, libraw.BACKEND)


def backend_for(probe: Probe) -> Backend:
    """The first backend of :data:`BACKENDS` that claims ``probe``'s file.

    Examples
    --------
    >>> from pathlib import Path
    >>> from rawmap.metadata import Metadata
    >>> backend_for(Probe(Path("IMG_1.CR2"), Metadata())).name
    'libraw'
    """
    for backend in BACKENDS:
        if backend.claims(probe):
            return backend
    raise LookupError(f"no reader backend claims {probe.path}")  # pragma: no cover - libraw claims all
