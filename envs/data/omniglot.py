"""Omniglot: the packed-array format, the PNG packer and the loader.

The packed format (one ``.npz`` per upstream split) holds ``images``, bool
``[characters, 20, 105, 105]`` with True = white background, and ``labels``,
int64 ``[characters, 20]`` with row ``c`` all ``c``; character ``c`` is the
upstream file prefix ``XXXX`` minus the split's smallest prefix, sample ``s``
the suffix ``YY = s + 1``. The loader reads it in chunks straight from the
zip stream, so the 212 MB of bool pixels never sit in memory at once.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import warnings
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import BinaryIO, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .core import (
    CorruptDataError,
    DataCacheWarning,
    DataNotFoundError,
    ImageSplits,
    first_writable_dir,
    missing_data_error,
    resolve_data_root,
    search_dirs,
    write_first_writable,
)

logger = logging.getLogger(__name__)

SPLITS = ("images_background", "images_evaluation")
RAW_SIZE = 105
IMAGE_SIZE = 28
_CHUNK_CHARACTERS = 32  # 32 x 20 x 105 x 105 float32 = 28 MB per resize chunk
_PNG_NAME = re.compile(r"(\d+)_(\d+)\.png")
_LAYOUT = "omniglot/images_background.npz and omniglot/images_evaluation.npz"


class PackedOmniglot(NamedTuple):
    """One Omniglot split in the packed format, as returned by :func:`pack_omniglot_pngs`.

    Attributes:
        images: bool ``[characters, samples, 105, 105]``, True = white background.
        labels: int64 ``[characters, samples]``, row ``c`` all ``c``.
        prefixes: int64 ``[characters]``, the upstream file prefix ``XXXX`` of each row.
    """

    images: np.ndarray
    labels: np.ndarray
    prefixes: np.ndarray


def pack_omniglot_pngs(source: str | os.PathLike[str]) -> PackedOmniglot:
    """Read Omniglot PNG files in the upstream layout into the packed format.

    The upstream layout is ``<split>/<Alphabet>/characterNN/XXXX_YY.png``; only
    the file names matter here: characters are ordered by prefix ``XXXX``,
    samples by suffix ``YY``. Every character must have the same samples
    ``1..S``. macOS metadata (``__MACOSX``, ``._*``) and other files are ignored.

    Args:
        source: A folder, or a ``.zip`` archive, holding the PNG files at any depth.

    Returns:
        The images, labels and prefixes; row ``c`` of ``images`` is the
        character with the ``c``-th smallest prefix in ``source``.

    Raises:
        DataNotFoundError: If ``source`` does not exist or holds no ``XXXX_YY.png`` file.
        CorruptDataError: If the archive or an image cannot be read, an image is
            not 105x105, or a character's samples are incomplete or duplicated.
    """
    source = Path(source)
    if source.is_dir():
        names = [path.relative_to(source).as_posix() for path in source.rglob("*.png")]
        return _pack(source, names, lambda name: (source / name).read_bytes())
    if not source.exists():
        raise DataNotFoundError(f"Omniglot PNG source {source} does not exist.")
    try:
        with zipfile.ZipFile(source) as archive:
            return _pack(source, archive.namelist(), archive.read)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise CorruptDataError(
            f"Cannot read {source} as a zip archive of Omniglot PNGs ({error}); "
            "download it again or pass the extracted folder."
        ) from error


def _pack(source: Path, names: Sequence[str], read: Callable[[str], bytes]) -> PackedOmniglot:
    index: dict[int, dict[int, str]] = {}
    for name in names:
        parts = PurePosixPath(name).parts
        match = _PNG_NAME.fullmatch(parts[-1])
        if match is None or "__MACOSX" in parts:
            continue
        samples = index.setdefault(int(match[1]), {})
        if int(match[2]) in samples:
            raise CorruptDataError(
                f"{source} holds two files for one Omniglot image: {samples[int(match[2])]} and {name}."
            )
        samples[int(match[2])] = name
    if not index:
        raise DataNotFoundError(f"No Omniglot PNG files (named XXXX_YY.png) found in {source}.")

    prefixes = sorted(index)
    num_samples = len(index[prefixes[0]])
    images = np.empty((len(prefixes), num_samples, RAW_SIZE, RAW_SIZE), dtype=bool)
    from tqdm.auto import tqdm  # progress for the one-off pack of ~20,000 PNGs

    with tqdm(
        total=images.shape[0] * num_samples, desc=f"Packing {source.name}", disable=None
    ) as bar:
        for row, prefix in enumerate(prefixes):
            samples = index[prefix]
            if sorted(samples) != list(range(1, num_samples + 1)):
                raise CorruptDataError(
                    f"{source}: character {prefix:04d} has samples {sorted(samples)}, expected "
                    f"1..{num_samples} like character {prefixes[0]:04d}; re-extract the archive."
                )
            for suffix, name in samples.items():
                images[row, suffix - 1] = _decode_png(read(name), f"{source}/{name}")
            bar.update(num_samples)
    labels = np.repeat(np.arange(len(prefixes), dtype=np.int64)[:, None], num_samples, axis=1)
    return PackedOmniglot(images, labels, np.asarray(prefixes, dtype=np.int64))


def _decode_png(data: bytes, where: str) -> np.ndarray:
    """Decode one PNG into bool ``[105, 105]``, True = background (light pixels)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            gray = np.asarray(image.convert("L"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise CorruptDataError(f"Cannot decode image {where}: {error}") from error
    if gray.shape != (RAW_SIZE, RAW_SIZE):
        raise CorruptDataError(
            f"Image {where} is {gray.shape[1]}x{gray.shape[0]} pixels; Omniglot images are "
            f"{RAW_SIZE}x{RAW_SIZE}."
        )
    return gray >= 128


#: The ways to cut Omniglot into meta-training, meta-validation and meta-testing parts.
PROTOCOLS = ("maml", "background")
#: MAML's protocol (Finn et al., 2017, after Santoro et al., 2016): characters shuffled with
#: this seed, the first ``MAML_TRAIN`` for meta-training, the next ``MAML_VAL`` for
#: meta-validation (the paper's "100 of them held out"), the remaining 423 for testing.
MAML_SEED, MAML_TRAIN, MAML_VAL = 1, 1100, 100
ROTATIONS = 4


def load_omniglot(
    root: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
    device: str | torch.device = "cpu",
    protocol: str = "background",
    val_fraction: float = 0.15,
    train_characters: int = MAML_TRAIN,
    val_characters: int = MAML_VAL,
) -> ImageSplits:
    """Load Omniglot as 28x28 ink images, split by character under one of two protocols.

    ``protocol="background"``: meta-training uses the first background characters,
    meta-validation the last ``val_fraction`` of them (a contiguous run in upstream
    order, so mostly whole alphabets), meta-testing the evaluation split (659
    characters of 20 other alphabets), no rotations.

    ``protocol="maml"``, MAML's (and "Teaching Your MAML"'s): the 1623 characters of
    both upstream splits, shuffled with a fixed seed, give 1100 characters for
    meta-training, 100 for meta-validation and the other 423 for meta-testing; each
    character also appears rotated by 90, 180 and 270 degrees as three new classes
    (class ``4 c + r`` is character ``c`` rotated by ``r`` quarter turns), so the
    parts hold 4400, 400 and 1692 classes. Rotations are made after the split, so the
    rotated copies of a character stay in its part. MAML's published 98.7% (5-way)
    and 95.8% (20-way) 1-shot accuracies are on this protocol.

    Each 105x105 drawing is resized once, here, by area averaging of the ink
    (anti-aliased, values in [0, 1]).

    The packed files ``<root>/omniglot/images_{background,evaluation}.npz``
    are read when present. Otherwise torchvision's PNG download
    (``<root>/omniglot-py/``) is packed into that format once; with
    ``download=True`` it is first downloaded. Packed files and downloads go to
    ``<root>`` when writable, else to a per-root folder in the user cache
    (:func:`~metacurriculum.envs.data.core.derived_dir`), which is searched too.

    Args:
        root: The data root; see :func:`~metacurriculum.envs.data.resolve_data_root`.
        download: Download through ``torchvision.datasets.Omniglot`` if no data is found.
        device: Where the image tensors are put.
        protocol: ``"background"`` or ``"maml"`` (see above).
        val_fraction: ``"background"`` only: the share of background characters held
            out for meta-validation.
        train_characters: ``"maml"`` only: characters for meta-training (MAML: 1100).
        val_characters: ``"maml"`` only: characters for meta-validation (MAML: 100);
            the rest are for meta-testing.

    Returns:
        Splits of shape ``[classes, 20, 1, 28, 28]``.

    Raises:
        ValueError: If ``protocol`` is unknown, or its settings leave a part empty.
        DataNotFoundError: If no data is found and ``download`` is False.
        CorruptDataError: If a data file is unreadable or has the wrong shape or dtype.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"Omniglot protocol={protocol!r} is unknown; use one of {PROTOCOLS}.")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}.")
    root = resolve_data_root(root)
    background, background_source = _load_split(root, SPLITS[0], download)
    evaluation, evaluation_source = _load_split(root, SPLITS[1], download)
    sources = f"Sources: {background_source}, {evaluation_source}."
    if protocol == "maml":
        return _maml_splits(
            torch.cat([background, evaluation]), train_characters, val_characters, device, sources
        )
    num_val = round(background.shape[0] * val_fraction)
    num_train = background.shape[0] - num_val
    if num_val < 1 or num_train < 1:
        raise ValueError(
            f"val_fraction={val_fraction!r} of {background.shape[0]} background characters leaves "
            f"{num_train} for train and {num_val} for val; choose a fraction that leaves both non-empty."
        )
    background = background.to(device)
    notes = (
        f"Omniglot, background protocol, 105x105 resized to 28x28 by area averaging. train: "
        f"background characters 0-{num_train - 1}; val: background characters {num_train}-"
        f"{background.shape[0] - 1} (last {val_fraction:g}, a contiguous run of alphabets); "
        f"test: all {evaluation.shape[0]} evaluation characters. {sources}"
    )
    return ImageSplits(
        "omniglot", background[:num_train], background[num_train:], evaluation.to(device), notes
    )


def maml_character_split(
    num_characters: int, train_characters: int = MAML_TRAIN, val_characters: int = MAML_VAL
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The characters (indices into background then evaluation) of MAML's three parts.

    A fixed permutation (seed :data:`MAML_SEED`), cut into ``train_characters``,
    ``val_characters`` and the rest.

    Raises:
        ValueError: If a part would be empty.
    """
    test_characters = num_characters - train_characters - val_characters
    if min(train_characters, val_characters, test_characters) < 1:
        raise ValueError(
            f"train_characters={train_characters} and val_characters={val_characters} of "
            f"{num_characters} Omniglot characters leave {test_characters} for testing; every "
            "part needs at least one (MAML's protocol: 1100, 100 and 423 of 1623)."
        )
    order = np.random.default_rng(MAML_SEED).permutation(num_characters)
    cut = train_characters + val_characters
    return order[:train_characters], order[train_characters:cut], order[cut:]


def with_rotations(characters: torch.Tensor) -> torch.Tensor:
    """``[c, s, 1, H, W]`` characters as ``[4 c, s, 1, H, W]`` classes: class ``4 i + r``
    is character ``i`` rotated by ``r`` quarter turns (counter-clockwise)."""
    turns = [torch.rot90(characters, r, dims=(-2, -1)) for r in range(ROTATIONS)]
    return torch.stack(turns, dim=1).flatten(0, 1)


def _maml_splits(
    characters: torch.Tensor, train: int, val: int, device: str | torch.device, sources: str
) -> ImageSplits:
    parts = maml_character_split(characters.shape[0], train, val)
    train_x, val_x, test_x = (
        with_rotations(characters[torch.from_numpy(part)]).to(device) for part in parts
    )
    notes = (
        f"Omniglot, MAML's protocol, 105x105 resized to 28x28 by area averaging: the "
        f"{characters.shape[0]} characters of both upstream splits shuffled with seed "
        f"{MAML_SEED}; {len(parts[0])} for train, {len(parts[1])} for val, {len(parts[2])} for "
        f"test, each also rotated by 90, 180 and 270 degrees as new classes. {sources}"
    )
    return ImageSplits("omniglot", train_x, val_x, test_x, notes)


def _load_split(root: Path, split: str, download: bool) -> tuple[torch.Tensor, Path]:
    """Return one split as ink images ``[characters, 20, 1, 28, 28]`` on the CPU, and its source."""
    packed = Path("omniglot") / f"{split}.npz"
    for folder in search_dirs(root):
        if (folder / packed).is_file():
            return _read_packed(folder / packed), folder / packed

    candidates = [
        folder / "omniglot-py" / name
        for folder in search_dirs(root)
        for name in (split, f"{split}.zip")
    ]
    source = next((path for path in candidates if path.exists()), None)
    if source is None and not download:
        looked_at = [folder / packed for folder in search_dirs(root)] + candidates
        raise missing_data_error("Omniglot", looked_at, _LAYOUT)
    if source is None:
        folder = first_writable_dir(search_dirs(root), "the Omniglot download")
        _download(folder, split)
        source = folder / "omniglot-py" / split

    logger.info("Packing Omniglot %s from %s (once; later loads read the .npz)", split, source)
    images, labels, prefixes = pack_omniglot_pngs(source)
    if not np.array_equal(prefixes, np.arange(prefixes[0], prefixes[0] + len(prefixes))):
        missing = sorted(set(range(prefixes[0], prefixes[-1] + 1)) - set(prefixes.tolist()))
        raise CorruptDataError(
            f"{source} lacks {len(missing)} Omniglot characters, prefixes {missing[:10]}; "
            "delete it and download again."
        )

    def write(file: BinaryIO) -> None:
        np.savez_compressed(file, images=images, labels=labels)

    written = write_first_writable(packed, search_dirs(root), write)
    if written is None:
        warnings.warn(
            f"Could not write the packed Omniglot file {packed} under {search_dirs(root)}; "
            "the PNGs will be packed again next time.",
            DataCacheWarning,
            stacklevel=4,
        )
    return _resize(images), source


def _download(folder: Path, split: str) -> None:
    try:
        from torchvision.datasets import Omniglot
    except ImportError as error:
        raise ImportError(
            "Downloading Omniglot needs torchvision: pip install torchvision"
        ) from error
    logger.info("Downloading Omniglot %s into %s", split, folder / "omniglot-py")
    Omniglot(root=str(folder), background=split == SPLITS[0], download=True)


def _ink28(masks: np.ndarray) -> torch.Tensor:
    """Invert and resize bool background masks ``[c, s, 105, 105]`` to ink ``[c, s, 1, 28, 28]``."""
    ink = torch.from_numpy(masks).logical_not().float().flatten(0, 1).unsqueeze(1)
    small = F.interpolate(ink, size=(IMAGE_SIZE, IMAGE_SIZE), mode="area")
    return small.view(*masks.shape[:2], 1, IMAGE_SIZE, IMAGE_SIZE)


def _resize(images: np.ndarray) -> torch.Tensor:
    """:func:`_ink28` over a whole split, a chunk of characters at a time."""
    out = torch.empty(*images.shape[:2], 1, IMAGE_SIZE, IMAGE_SIZE)
    for start in range(0, len(images), _CHUNK_CHARACTERS):
        out[start : start + _CHUNK_CHARACTERS] = _ink28(images[start : start + _CHUNK_CHARACTERS])
    return out


def _read_packed(path: Path) -> torch.Tensor:
    """Read a packed ``.npz`` as :func:`_resize` would, streaming chunks from the zip."""
    try:
        with zipfile.ZipFile(path) as archive:
            with archive.open("labels.npy") as file:
                labels = np.lib.format.read_array(file, allow_pickle=False)
            with archive.open("images.npy") as file:
                shape, dtype = _read_npy_header(file, path)
                _check_packed_format(path, shape, dtype, labels)
                out = torch.empty(*shape[:2], 1, IMAGE_SIZE, IMAGE_SIZE)
                # One reused buffer: no 212 MB array, and no heap churn from a new one per chunk.
                buffer = bytearray(_CHUNK_CHARACTERS * math.prod(shape[1:]))
                for start in range(0, shape[0], _CHUNK_CHARACTERS):
                    count = min(_CHUNK_CHARACTERS, shape[0] - start)
                    view = memoryview(buffer)[: count * math.prod(shape[1:])]
                    if file.readinto(view) != len(view):
                        raise CorruptDataError(f"{path} is truncated: images.npy ends early.")
                    masks = np.frombuffer(view, dtype=bool).reshape(count, *shape[1:])
                    out[start : start + count] = _ink28(masks)
                if file.read(1):
                    raise CorruptDataError(f"{path}: images.npy holds more data than its shape.")
    except CorruptDataError:
        raise
    except (zipfile.BadZipFile, KeyError, EOFError, ValueError, zlib.error) as error:
        raise CorruptDataError(
            f"Cannot read the packed Omniglot file {path}: {error}. Delete it and rebuild it "
            "(load with download=True) or copy it again."
        ) from error
    return out


def _read_npy_header(file: BinaryIO, path: Path) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(file)
    readers = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }
    if version not in readers:
        raise CorruptDataError(
            f"{path}: images.npy uses unsupported .npy format version {version}."
        )
    shape, fortran_order, dtype = readers[version](file)
    if fortran_order:
        raise CorruptDataError(f"{path}: images.npy is Fortran-ordered; expected C order.")
    return shape, dtype


def _check_packed_format(
    path: Path, shape: tuple[int, ...], dtype: np.dtype, labels: np.ndarray
) -> None:
    if (
        dtype != np.bool_
        or len(shape) != 4
        or shape[0] < 1
        or shape[1:] != (20, RAW_SIZE, RAW_SIZE)
    ):
        raise CorruptDataError(
            f"{path}: images must be bool [characters, 20, 105, 105], got {dtype} {list(shape)}."
        )
    rows = np.arange(shape[0])[:, None]
    if labels.shape != tuple(shape[:2]) or not np.issubdtype(labels.dtype, np.integer):
        raise CorruptDataError(
            f"{path}: labels must be int64 {list(shape[:2])}, got {labels.dtype} {list(labels.shape)}."
        )
    if not np.array_equal(labels, np.broadcast_to(rows, labels.shape)):
        raise CorruptDataError(f"{path}: labels row c must be all c; the rows are out of order.")
