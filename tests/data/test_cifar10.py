"""CIFAR-10 from archives and folders written here in the official layouts."""

import io
import os
import pickle
import tarfile
import warnings

import numpy as np
import pytest
import torch

from mambajepa.core.errors import DataError
from mambajepa.data import CIFAR10, BadItemWarning, download_cifar10, restricted_loads
from mambajepa.data.cifar10 import CLASSES, md5sum

PER_BATCH = 3


def _batches(seed=0):
    """Known pixels and labels: 5 train batches and 1 test batch of PER_BATCH images each."""
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    return {
        name: (
            rng.integers(0, 256, size=(PER_BATCH, 3072), dtype=np.uint8),
            rng.integers(0, 10, size=PER_BATCH),
        )
        for name in names
    }


def _python_files(batches):
    files = {}
    for name, (data, labels) in batches.items():
        record = {b"batch_label": name.encode(), b"labels": [int(v) for v in labels], b"data": data}
        files[name] = pickle.dumps(record, protocol=2)
    files["batches.meta"] = pickle.dumps({b"label_names": [c.encode() for c in CLASSES]}, protocol=2)
    return files


def _binary_files(batches):
    files = {}
    for name, (data, labels) in batches.items():
        files[name + ".bin"] = np.concatenate([labels.astype(np.uint8)[:, None], data], axis=1).tobytes()
    files["batches.meta.txt"] = ("\n".join(CLASSES) + "\n").encode()
    return files


def _write_tar(path, folder, files):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _write_folder(root, folder, files):
    (root / folder).mkdir(parents=True)
    for name, data in files.items():
        (root / folder / name).write_bytes(data)


def _expected(batches, split):
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    data = np.concatenate([batches[n][0] for n in names]).reshape(-1, 3, 32, 32)
    return torch.from_numpy(data).float() / 255.0, np.concatenate([batches[n][1] for n in names])


@pytest.mark.parametrize("layout", ["python", "binary"])
@pytest.mark.parametrize("packed", [True, False])
def test_reads_known_pixels_and_labels(tmp_path, layout, packed):
    batches = _batches()
    files = _python_files(batches) if layout == "python" else _binary_files(batches)
    folder = "cifar-10-batches-py" if layout == "python" else "cifar-10-batches-bin"
    if packed:
        name = "cifar-10-python.tar.gz" if layout == "python" else "cifar-10-binary.tar.gz"
        _write_tar(tmp_path / name, folder, files)
    else:
        _write_folder(tmp_path, folder, files)
    for split in ("train", "test"):
        data = CIFAR10(tmp_path, split=split, check_md5=False)
        images, labels = _expected(batches, split)
        assert len(data) == len(labels)
        for i in range(len(data)):
            image, label = data[i]
            assert image.shape == (3, 32, 32) and image.dtype == torch.float32
            assert torch.equal(image, images[i]) and label == labels[i]


def test_transform_is_applied_to_the_float_image(tmp_path):
    _write_folder(tmp_path, "cifar-10-batches-bin", _binary_files(_batches()))
    data = CIFAR10(tmp_path / "cifar-10-batches-bin", transform=lambda x: x[:, :8, :8] * 2)
    plain = CIFAR10(tmp_path)
    assert torch.equal(data[4][0], plain[4][0][:, :8, :8] * 2)


def test_archive_md5_is_checked(tmp_path):
    _write_tar(tmp_path / "cifar-10-binary.tar.gz", "cifar-10-batches-bin", _binary_files(_batches()))
    with pytest.raises(DataError, match="c32a1d4ab5d03f1284b67883e8d87530"):
        CIFAR10(tmp_path)


def test_missing_data_names_the_root_and_the_options(tmp_path):
    with pytest.raises(DataError, match=r"CIFAR-10 not found under .*mambajepa data download cifar10 --root"):
        CIFAR10(tmp_path / "nowhere")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo owned",))


def test_restricted_unpickler_refuses_code_and_admits_arrays():
    with pytest.raises(pickle.UnpicklingError, match="system"):
        restricted_loads(pickle.dumps(_Exploit(), protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        restricted_loads(b"cbuiltins\neval\n(S'1+1'\ntR.")
    value = {"a": [1, 2.5, b"x", ("s", None)], "arr": np.arange(6, dtype=">i4").reshape(2, 3).T}
    for protocol in (2, 4, 5):
        loaded = restricted_loads(pickle.dumps(value, protocol=protocol))
        assert loaded["a"] == value["a"] and np.array_equal(loaded["arr"], value["arr"])


def test_malicious_batch_is_skipped_with_a_warning_or_raises_when_strict(tmp_path):
    batches = _batches()
    files = _python_files(batches)
    files["data_batch_2"] = pickle.dumps(_Exploit(), protocol=2)
    _write_folder(tmp_path, "cifar-10-batches-py", files)
    with pytest.raises(DataError, match=r"data_batch_2.*refusing to load global (posix|nt)\.system"):
        CIFAR10(tmp_path, strict=True)
    with pytest.warns(BadItemWarning, match="data_batch_2"):
        data = CIFAR10(tmp_path)
    assert len(data) == 4 * PER_BATCH and data.bad_items.total == 1
    assert torch.equal(data[PER_BATCH][0], _expected(batches, "train")[0][2 * PER_BATCH])


def test_truncated_or_missing_binary_batches(tmp_path):
    files = _binary_files(_batches())
    files["data_batch_3.bin"] = files["data_batch_3.bin"][:-7]
    _write_folder(tmp_path, "cifar-10-batches-bin", files)
    with pytest.raises(DataError, match="data_batch_3.bin: size .* multiple of 3073"):
        CIFAR10(tmp_path, strict=True)
    (tmp_path / "cifar-10-batches-bin" / "data_batch_5.bin").unlink()
    with pytest.raises(DataError, match="data_batch_5.bin: missing batch file"):
        CIFAR10(tmp_path, strict=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = CIFAR10(tmp_path)
    assert len(data) == 3 * PER_BATCH
    assert data.bad_items.total == 2 and len(caught) == 2
    (tmp_path / "cifar-10-batches-bin" / "test_batch.bin").write_bytes(b"\x00" * 10)
    with pytest.raises(DataError, match="no readable CIFAR-10 test batch"):
        with pytest.warns(BadItemWarning):
            CIFAR10(tmp_path, split="test")


def test_truncated_archive_reports_the_file(tmp_path):
    path = _write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", _python_files(_batches()))
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match="cifar-10-python.tar.gz"):
        CIFAR10(tmp_path, check_md5=False, strict=True)


def test_download_checks_the_md5_and_feeds_the_loader(tmp_path):
    source = _write_tar(tmp_path / "mirror.tar.gz", "cifar-10-batches-py", _python_files(_batches()))
    url = source.as_uri()
    with pytest.raises(DataError, match="expected 0+"):
        download_cifar10(tmp_path / "root", url=url, md5="0" * 32)
    assert not (tmp_path / "root" / "cifar-10-python.tar.gz").exists()
    path = download_cifar10(tmp_path / "root", url=url, md5=md5sum(source))
    assert path.name == "cifar-10-python.tar.gz" and md5sum(path) == md5sum(source)
    data = CIFAR10(tmp_path / "root", split="test", check_md5=False)
    assert torch.equal(data[1][0], _expected(_batches(), "test")[0][1])
