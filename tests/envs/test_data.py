"""Tests of the data layer: packed and PNG Omniglot, MNIST's IDX files, splits, errors, caching."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from metacurriculum.envs.data import (
    CorruptDataError,
    DataCacheWarning,
    DataNotFoundError,
    DataSplitWarning,
    ImageSplits,
    clear_dataset_cache,
    load_dataset,
    load_mnist,
    load_omniglot,
    mnist,
    omniglot,
    pack_omniglot_pngs,
    read_idx,
    resolve_data_root,
)
from metacurriculum.envs.data.core import derived_dir, write_atomically


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Point the user cache at a fresh folder and make any download attempt fail."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg_cache")))

    def no_download(*args, **kwargs):
        raise AssertionError("tests must never download")

    monkeypatch.setattr(omniglot, "_download", no_download)
    monkeypatch.setattr(mnist, "_download", no_download)


@pytest.fixture(scope="module")
def packed_npz(data_root):
    """The real packed Omniglot arrays: (background images, evaluation images), bool."""
    return tuple(
        np.load(data_root / "omniglot" / f"{split}.npz")["images"] for split in omniglot.SPLITS
    )


@pytest.fixture(scope="module")
def omniglot_splits(data_root):
    return load_dataset("omniglot", data_root)


def ink28(background_masks: np.ndarray) -> torch.Tensor:
    """Reference resize: bool background masks [..., 105, 105] to ink [..., 1, 28, 28]."""
    ink = torch.from_numpy(~background_masks.reshape(-1, 1, 105, 105)).float()
    small = F.interpolate(ink, size=(28, 28), mode="area")
    return small.view(*background_masks.shape[:-2], 1, 28, 28)


def image_hashes(images: torch.Tensor) -> set[bytes]:
    flat = images.cpu().numpy().reshape(-1, images.shape[-2] * images.shape[-1])
    return {hashlib.sha1(row.tobytes()).digest() for row in flat}


def write_pngs(folder: Path, masks: np.ndarray, first_prefix: int) -> None:
    """Write bool masks [chars, samples, 105, 105] in the upstream PNG layout."""
    for row, drawings in enumerate(masks):
        character = folder / "Alphabet" / f"character{row + 1:02d}"
        character.mkdir(parents=True)
        for sample, mask in enumerate(drawings):
            Image.fromarray(mask).save(character / f"{first_prefix + row:04d}_{sample + 1:02d}.png")


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, 0x08, array.ndim, *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


# -- Omniglot: PNG packing -----------------------------------------------------------


def test_pack_zip_equals_packed_npz_rows(data_root, packed_npz):
    packed = pack_omniglot_pngs(data_root / "omniglot" / "images_background_small1.zip")
    assert packed.images.dtype == np.bool_ and packed.images.shape == (136, 20, 105, 105)
    assert packed.labels.dtype == np.int64
    np.testing.assert_array_equal(packed.labels, np.arange(136)[:, None].repeat(20, axis=1))
    assert np.all(np.diff(packed.prefixes) > 0)
    assert np.array_equal(packed.images, packed_npz[0][packed.prefixes - 1])


def test_pack_folder_equals_zip(data_root, tmp_path):
    archive = data_root / "omniglot" / "images_background_small1.zip"
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(tmp_path)
    from_folder = pack_omniglot_pngs(tmp_path / "images_background_small1")
    from_zip = pack_omniglot_pngs(archive)
    for a, b in zip(from_folder, from_zip, strict=True):
        np.testing.assert_array_equal(a, b)


def test_pack_rejects_bad_sources(tmp_path, packed_npz):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        pack_omniglot_pngs(tmp_path / "absent")
    with pytest.raises(DataNotFoundError, match="No Omniglot PNG"):
        pack_omniglot_pngs(tmp_path)
    (tmp_path / "garbage.zip").write_bytes(b"not a zip")
    with pytest.raises(CorruptDataError, match=r"garbage\.zip"):
        pack_omniglot_pngs(tmp_path / "garbage.zip")

    write_pngs(tmp_path / "pngs", packed_npz[0][:2, :3], first_prefix=1)
    (tmp_path / "pngs" / "Alphabet" / "character02" / "0002_03.png").unlink()
    with pytest.raises(CorruptDataError, match=r"character 0002 has samples \[1, 2\]"):
        pack_omniglot_pngs(tmp_path / "pngs")
    Image.new("1", (28, 28)).save(tmp_path / "pngs" / "Alphabet" / "character02" / "0002_03.png")
    with pytest.raises(CorruptDataError, match=r"0002_03\.png is 28x28 pixels"):
        pack_omniglot_pngs(tmp_path / "pngs")


# -- Omniglot: the loader on the real data ---------------------------------------------


def test_omniglot_shapes_and_values(omniglot_splits):
    splits = omniglot_splits
    assert splits.name == "omniglot" and splits.device == torch.device("cpu")
    assert splits.train.shape[0] + splits.val.shape[0] == 964
    assert splits.val.shape[0] == round(964 * 0.15)
    assert splits.test.shape[0] == 659
    for images in (splits.train, splits.val, splits.test):
        assert images.shape[1:] == (20, 1, 28, 28) and images.dtype == torch.float32
        assert images.min() >= 0.0 and images.max() <= 1.0
        assert images.mean() < 0.2  # ink = 1 on a background of 0
    assert "evaluation" in splits.notes and "omniglot" not in repr(splits.train)


def test_omniglot_val_is_the_held_out_run(omniglot_splits, packed_npz):
    background, evaluation = packed_npz
    num_train = omniglot_splits.train.shape[0]
    picks = {
        "train": (omniglot_splits.train, [0, num_train - 1], background),
        "val": (omniglot_splits.val, [0, -1], background[num_train:]),
        "test": (omniglot_splits.test, [0, -1], evaluation),
    }
    for images, rows, source in picks.values():
        torch.testing.assert_close(images[rows], ink28(source[rows]), rtol=0, atol=1e-6)


def test_omniglot_splits_are_disjoint(omniglot_splits):
    train, val, test = (image_hashes(getattr(omniglot_splits, p)) for p in ("train", "val", "test"))
    assert not train & val and not train & test and not val & test


def test_load_dataset_shares_one_copy(omniglot_splits, data_root):
    assert load_dataset("omniglot", str(data_root), device="cpu") is omniglot_splits


@pytest.mark.cuda
def test_load_on_cuda(data_root):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    with pytest.warns(DataSplitWarning):
        on_cuda = load_dataset("mnist", data_root, device="cuda")
    assert (
        on_cuda.device.type == "cuda"
        and load_dataset("mnist", data_root, device="cuda:0") is on_cuda
    )
    torch.testing.assert_close(on_cuda.train.cpu(), load_dataset("mnist", data_root).train)


# -- Omniglot: packing torchvision's PNG download into a cache --------------------------


@pytest.fixture
def png_root(tmp_path, packed_npz):
    """A data root holding only torchvision's layout: background a folder, evaluation a zip."""
    root = tmp_path / "root"
    write_pngs(root / "omniglot-py" / "images_background", packed_npz[0][:3], first_prefix=1)
    write_pngs(tmp_path / "images_evaluation", packed_npz[1][:2], first_prefix=965)
    shutil.make_archive(
        str(root / "omniglot-py" / "images_evaluation"), "zip", tmp_path, "images_evaluation"
    )
    return root


def check_tiny_splits(splits: ImageSplits, packed_npz) -> None:
    assert [len(part) for part in (splits.train, splits.val, splits.test)] == [2, 1, 2]
    torch.testing.assert_close(splits.train, ink28(packed_npz[0][:2]), rtol=0, atol=1e-6)
    torch.testing.assert_close(splits.test, ink28(packed_npz[1][:2]), rtol=0, atol=1e-6)


def test_pngs_are_packed_once_into_the_root(png_root, packed_npz):
    check_tiny_splits(load_omniglot(png_root, val_fraction=0.3), packed_npz)
    written = np.load(png_root / "omniglot" / "images_background.npz")
    np.testing.assert_array_equal(written["images"], packed_npz[0][:3])
    shutil.rmtree(png_root / "omniglot-py")  # the second load reads the packed files only
    check_tiny_splits(load_omniglot(png_root, val_fraction=0.3), packed_npz)


def test_read_only_root_packs_into_the_user_cache(png_root, packed_npz):
    (png_root / "omniglot").write_text("a file where a folder would go: writes fail here")
    check_tiny_splits(load_omniglot(png_root, val_fraction=0.3), packed_npz)
    assert (derived_dir(png_root) / "omniglot" / "images_evaluation.npz").is_file()
    shutil.rmtree(png_root / "omniglot-py")
    check_tiny_splits(load_omniglot(png_root, val_fraction=0.3), packed_npz)


def test_unwritable_cache_warns_and_still_loads(png_root, packed_npz, tmp_path, monkeypatch):
    (png_root / "omniglot").write_text("blocks the root")
    (tmp_path / "blocked_cache").write_text("blocks the user cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "blocked_cache"))
    with pytest.warns(DataCacheWarning, match="packed again next time"):
        check_tiny_splits(load_omniglot(png_root, val_fraction=0.3), packed_npz)


def test_download_goes_to_a_writable_folder(tmp_path, packed_npz, monkeypatch):
    def fake_download(folder: Path, split: str) -> None:
        masks, first = (
            (packed_npz[0][:3], 1) if split == "images_background" else (packed_npz[1][:2], 965)
        )
        write_pngs(folder / "omniglot-py" / split, masks, first_prefix=first)

    monkeypatch.setattr(omniglot, "_download", fake_download)
    with pytest.raises(DataNotFoundError):
        load_omniglot(tmp_path, download=False)
    check_tiny_splits(load_omniglot(tmp_path, download=True, val_fraction=0.3), packed_npz)
    assert (tmp_path / "omniglot" / "images_background.npz").is_file()


def test_missing_character_is_reported(png_root):
    shutil.rmtree(png_root / "omniglot-py" / "images_background" / "Alphabet" / "character02")
    with pytest.raises(CorruptDataError, match=r"lacks 1 Omniglot characters, prefixes \[2\]"):
        load_omniglot(png_root)


# -- Omniglot: bad packed files and arguments -------------------------------------------


def write_packed(root: Path, images: np.ndarray, labels: np.ndarray | None = None) -> None:
    if labels is None:
        labels = np.arange(len(images))[:, None].repeat(images.shape[1], axis=1)
    for split in omniglot.SPLITS:
        (root / "omniglot").mkdir(parents=True, exist_ok=True)
        np.savez_compressed(root / "omniglot" / f"{split}.npz", images=images, labels=labels)


@pytest.mark.parametrize(
    ("images", "labels", "match"),
    [
        (
            np.ones((3, 20, 28, 28), bool),
            None,
            r"bool \[characters, 20, 105, 105\], got bool \[3, 20, 28, 28\]",
        ),
        (np.ones((3, 20, 105, 105), np.uint8), None, "got uint8"),
        (np.ones((3, 20, 105, 105), bool), np.zeros((3, 20), np.int64), "row c must be all c"),
    ],
    ids=["wrong-shape", "wrong-dtype", "rows-out-of-order"],
)
def test_malformed_packed_file_is_named(tmp_path, images, labels, match):
    write_packed(tmp_path, images, labels)
    with pytest.raises(CorruptDataError, match=match) as error:
        load_omniglot(tmp_path)
    assert str(tmp_path / "omniglot" / "images_background.npz") in str(error.value)


def test_garbage_packed_file_is_named(tmp_path):
    (tmp_path / "omniglot").mkdir()
    for split in omniglot.SPLITS:
        (tmp_path / "omniglot" / f"{split}.npz").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CorruptDataError, match=r"images_background\.npz") as error:
        load_omniglot(tmp_path)
    assert str(tmp_path) in str(error.value)


def test_val_fraction_must_leave_both_parts(tmp_path):
    write_packed(tmp_path, np.ones((10, 20, 105, 105), bool))
    splits = load_omniglot(tmp_path, val_fraction=0.5)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (5, 5, 10)
    for bad in (0.0, 1.0, -0.1, 0.01, 0.99):
        with pytest.raises(ValueError, match=f"val_fraction={bad!r}|got {bad!r}"):
            load_omniglot(tmp_path, val_fraction=bad)


# -- MNIST -------------------------------------------------------------------------------


def test_mnist_test_file_only_is_split_by_image_with_a_warning(data_root):
    with pytest.warns(DataSplitWarning, match="Only one MNIST file"):
        splits = load_mnist(data_root)
    raw = read_idx(data_root / "MNIST/raw/t10k-images-idx3-ubyte.gz")
    labels = read_idx(data_root / "MNIST/raw/t10k-labels-idx1-ubyte.gz")
    per_class = min(np.bincount(labels))  # 892: the rarest digit, 5
    sizes = [part.shape[1] for part in (splits.train, splits.val, splits.test)]
    assert sizes == [per_class - round(0.1 * per_class) - round(0.2 * per_class), 89, 178]
    parts = [splits.train, splits.val, splits.test]
    for images in parts:
        assert images.shape[0] == 10 and images.shape[2:] == (1, 28, 28)
        assert images.dtype == torch.float32 and images.min() == 0.0 and images.max() == 1.0
    hashes = [image_hashes(images) for images in parts]
    assert not hashes[0] & hashes[1] and not hashes[0] & hashes[2] and not hashes[1] & hashes[2]
    assert sum(len(h) for h in hashes) == 10 * per_class  # no image twice, even within a part
    for digit in range(10):  # class k holds only images labelled k in the file
        expected = image_hashes(torch.from_numpy(raw[labels == digit] / np.float32(255.0)))
        assert set().union(*(image_hashes(part[digit]) for part in parts)) <= expected


@pytest.fixture
def two_file_root(tmp_path):
    rng = np.random.default_rng(1)
    files = {}
    for split, per_class, suffix in (("train", 12, ".gz"), ("t10k", 5, "")):
        labels = np.repeat(np.arange(10), per_class)
        images = rng.integers(0, 256, (len(labels), 28, 28), dtype=np.uint8)
        images[:, 0, 0] = np.arange(len(labels))  # every image distinct
        raw = tmp_path / "MNIST" / "raw"
        write_idx(raw / f"{split}-images-idx3-ubyte{suffix}", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte{suffix}", labels)
        files[split] = (images, labels)
    return tmp_path, files


def test_mnist_with_both_files_keeps_the_official_test_split(two_file_root):
    root, files = two_file_root
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        splits = load_mnist(root, val_fraction=0.25)
    assert [part.shape[1] for part in (splits.train, splits.val, splits.test)] == [9, 3, 5]
    test_images, test_labels = files["t10k"]
    for digit in range(10):
        expected = image_hashes(
            torch.from_numpy(test_images[test_labels == digit] / np.float32(255))
        )
        assert image_hashes(splits.test[digit]) == expected
    train_hashes, val_hashes = image_hashes(splits.train), image_hashes(splits.val)
    assert not train_hashes & val_hashes and len(train_hashes | val_hashes) == 120


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"\x08\x03\x00\x00", "is not an IDX file"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated inside its IDX header"),
        (struct.pack(">BBBBIII", 0, 0, 8, 3, 2, 28, 28) + b"\x00" * 10, "promises shape"),
    ],
    ids=["bad-magic", "short-header", "short-data"],
)
def test_read_idx_rejects_malformed_files(tmp_path, content, match):
    (tmp_path / "bad-idx").write_bytes(content)
    with pytest.raises(CorruptDataError, match=match) as error:
        read_idx(tmp_path / "bad-idx")
    assert str(tmp_path / "bad-idx") in str(error.value)


def test_mnist_labels_out_of_range_are_reported(two_file_root):
    root, _ = two_file_root
    write_idx(root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte", np.full(50, 11))
    with pytest.raises(CorruptDataError, match="t10k-labels-idx1-ubyte must hold 50 labels in 0-9"):
        load_mnist(root)


def test_mnist_fractions_are_checked(two_file_root):
    root, _ = two_file_root
    for bad in ({"val_fraction": 0.0}, {"test_fraction": 1.0}, {"val_fraction": 0.01}):
        with pytest.raises(ValueError, match="fraction"):
            load_mnist(root, **bad)


# -- Missing data, the registry, the data root --------------------------------------------


@pytest.mark.parametrize("name", ["omniglot", "mnist"])
def test_missing_data_names_the_paths_and_the_fix(tmp_path, name):
    with pytest.raises(DataNotFoundError) as error:
        load_dataset(name, tmp_path / "empty")
    message = str(error.value)
    assert isinstance(error.value, FileNotFoundError)
    assert str(tmp_path / "empty") in message and "METACURRICULUM_DATA" in message
    assert "download=True" in message


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"dataset='cifar' is unknown.*data sets: mnist, omniglot"):
        load_dataset("cifar")


def test_cache_key_includes_kwargs_and_can_be_cleared(tmp_path):
    write_packed(tmp_path, np.ones((10, 20, 105, 105), bool))
    first = load_dataset("omniglot", tmp_path, val_fraction=0.5)
    assert load_dataset("omniglot", tmp_path, download=True, val_fraction=0.5) is first
    assert load_dataset("omniglot", tmp_path, val_fraction=0.2) is not first
    clear_dataset_cache()
    assert load_dataset("omniglot", tmp_path, val_fraction=0.5) is not first


def test_resolve_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("METACURRICULUM_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_root() == tmp_path / "xdg" / "metacurriculum" / "data"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/is/ignored")
    assert resolve_data_root() == Path.home() / ".cache" / "metacurriculum" / "data"
    monkeypatch.setenv("METACURRICULUM_DATA", "")
    assert resolve_data_root() == Path.home() / ".cache" / "metacurriculum" / "data"
    monkeypatch.setenv("METACURRICULUM_DATA", str(tmp_path / "from_env"))
    assert resolve_data_root() == tmp_path / "from_env"
    assert resolve_data_root(tmp_path / "explicit") == tmp_path / "explicit"
    monkeypatch.chdir(tmp_path)
    assert resolve_data_root("relative") == tmp_path / "relative"


# -- Small pieces ------------------------------------------------------------------------------


def test_image_splits_checks_its_parts():
    good = torch.zeros(2, 3, 1, 28, 28)
    splits = ImageSplits("toy", good, good, good)
    assert repr(splits) == (
        "ImageSplits(name='toy', train=[2, 3, 1, 28, 28], val=[2, 3, 1, 28, 28], "
        "test=[2, 3, 1, 28, 28], device=cpu)"
    )
    assert splits.to("cpu") is splits and splits.image_shape == (1, 28, 28)
    with pytest.raises(TypeError, match="float32"):
        ImageSplits("toy", good.double(), good, good)
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 28, 28\)"):
        ImageSplits("toy", good, good[:, :, 0], good)
    with pytest.raises(ValueError, match="share image shape"):
        ImageSplits("toy", good, torch.zeros(2, 3, 1, 14, 14), good)


def test_write_atomically_leaves_nothing_on_failure(tmp_path):
    def fail(file):
        file.write(b"partial")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        write_atomically(tmp_path / "out.npz", fail)
    assert list(tmp_path.iterdir()) == []
    write_atomically(tmp_path / "out.npz", lambda file: file.write(b"whole"))
    assert (tmp_path / "out.npz").read_bytes() == b"whole"


# ----------------------------------------------------------------- MAML's Omniglot protocol


@pytest.fixture(scope="module")
def maml_splits(data_root):
    return load_dataset("omniglot", data_root, protocol="maml")


def _class_digests(images: torch.Tensor) -> list[bytes]:
    """One digest per class of ``[classes, samples, 1, H, W]`` images."""
    flat = images.flatten(1).numpy()
    return [hashlib.sha1(row.tobytes()).digest() for row in flat]


def test_maml_protocol_counts(maml_splits):
    # 1100 + 100 + 423 characters of 1623, each in 4 rotations.
    assert maml_splits.train.shape == (4400, 20, 1, 28, 28)
    assert maml_splits.val.shape == (400, 20, 1, 28, 28)
    assert maml_splits.test.shape == (1692, 20, 1, 28, 28)
    assert "MAML's protocol" in maml_splits.notes


def test_maml_protocol_classes_are_rotated_characters(maml_splits):
    for part in (maml_splits.train, maml_splits.val, maml_splits.test):
        upright = part[0::4]
        for r in range(1, 4):
            assert torch.equal(part[r::4], torch.rot90(upright, r, dims=(-2, -1)))
        # Rotation makes new classes: the quarter turns of a character differ.
        assert not torch.equal(part[1::4], upright)


def test_maml_protocol_parts_are_disjoint_also_under_rotation(maml_splits, packed_npz):
    digests = {
        name: set(_class_digests(getattr(maml_splits, name))) for name in ("train", "val", "test")
    }
    assert not digests["train"] & digests["val"]
    assert not digests["train"] & digests["test"]
    assert not digests["val"] & digests["test"]
    # Every upstream character is in exactly one part (as its upright class).
    upright = {
        name: _class_digests(getattr(maml_splits, name)[0::4]) for name in ("train", "val", "test")
    }
    assert sum(len(v) for v in upright.values()) == sum(len(images) for images in packed_npz)
    assert len(set().union(*map(set, upright.values()))) == 1623


def test_maml_character_split_is_fixed_and_checks_its_counts():
    first = omniglot.maml_character_split(1623)
    again = omniglot.maml_character_split(1623)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert [len(part) for part in first] == [1100, 100, 423]
    assert np.array_equal(np.sort(np.concatenate(first)), np.arange(1623))
    with pytest.raises(ValueError, match="leave 0 for testing"):
        omniglot.maml_character_split(1200)


def test_unknown_protocol_lists_the_protocols(data_root):
    with pytest.raises(ValueError, match="'maml', 'background'"):
        load_omniglot(data_root, protocol="rotated")


def test_env_config_knows_the_loaders_protocols():
    from metacurriculum.envs.config import OMNIGLOT_PROTOCOLS

    assert OMNIGLOT_PROTOCOLS == omniglot.PROTOCOLS
