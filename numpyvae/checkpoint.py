"""Checkpoints: one ``.npz`` of arrays whose metadata is a JSON document.

Layout of the file (a NumPy ``.npz``, read with ``allow_pickle=False``):

* ``params/<name>``: every model parameter (``params/enc0.W``, ...);
* ``optimizer/<key>``: the optimizer state (Adam's ``t``, ``m.*``, ``v.*``);
* ``trainer/perm``: the order of an epoch in progress, when there is one;
* ``meta.json``: a uint8 array holding UTF-8 JSON with the format
  version, the library version, the model config, the optimizer config,
  the trainer state (epoch, step, generator state, history) and a
  SHA-256 per array;
* ``meta.sha256``: the 32-byte SHA-256 digest of ``meta.json``'s bytes.

Together the two checksums make every bit of the stored state count: a
changed array fails its SHA-256 in the JSON, a changed JSON fails
``meta.sha256``.

Keeping the JSON inside the ``.npz`` makes a checkpoint one file, so one
``os.replace`` switches from the old checkpoint to the new one: a crash
while saving leaves the previous file intact. `load` checks every array
against the JSON (names, shapes, dtypes, checksums, finiteness) and
raises `CheckpointError` (a ValueError) naming the file and the problem.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import secrets
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .protocol import Model

FORMAT = "numpyvae-checkpoint"
FORMAT_VERSION = 1
MODEL_KINDS = ("vae", "hierarchical")  # a config's "model" key; absent is "vae"


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt or inconsistent.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> bad = pathlib.Path(tempfile.mkdtemp()) / "bad.npz"
    >>> _ = bad.write_bytes(b"not a zip file")
    >>> try:
    ...     load(bad)
    ... except CheckpointError as e:
    ...     print(isinstance(e, ValueError))
    True
    """


def array_sha256(a: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and C-order bytes.

    Examples
    --------
    >>> a = np.arange(6, dtype=np.float32).reshape(2, 3)
    >>> len(array_sha256(a))
    64
    >>> array_sha256(a) == array_sha256(a.copy()), array_sha256(a) == array_sha256(a.T)
    (True, False)
    """
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


@dataclass
class Checkpoint:
    """What `load_checkpoint` returns.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from numpyvae import VAE
    >>> path = save(VAE(4, 2, hidden=(3,)), pathlib.Path(tempfile.mkdtemp()) / "m.npz")
    >>> ckpt = load_checkpoint(path)
    >>> type(ckpt).__name__, ckpt.optimizer, ckpt.trainer_state
    ('Checkpoint', None, None)
    """

    model: Model
    optimizer: object | None
    trainer_state: dict | None
    arrays: dict
    meta: dict


def model_kind(config: dict) -> str:
    """The kind of model a stored config rebuilds: its ``"model"`` key,
    "vae" when absent (a one-layer config, or one older than the key).

    Examples
    --------
    >>> from numpyvae import HierarchicalVAE, VAE
    >>> model_kind(VAE(4, 2).config.to_dict())
    'vae'
    >>> model_kind(HierarchicalVAE(4, (3, 2)).config.to_dict())
    'hierarchical'
    """
    kind = config.get("model", "vae")
    if kind not in MODEL_KINDS:
        raise ValueError(f"model: expected one of {MODEL_KINDS}, got {kind!r}")
    return kind


def _optimizer_from_config(config: dict):
    from .reference.optim import SGD, Adam
    kwargs = {k: v for k, v in config.items() if k != "name"}
    if config.get("name") == "adam":
        return Adam(**kwargs)
    if config.get("name") == "sgd":
        return SGD(**kwargs)
    raise CheckpointError(f"unknown optimizer {config.get('name')!r}")


def save(model: Model, path, optimizer=None, trainer=None, extra: dict | None = None) -> Path:
    """Write a checkpoint atomically (temporary file, then ``os.replace``).

    Parameters
    ----------
    model : any model of the protocol (VAE, HierarchicalVAE)
        Its ``config.to_dict()`` is stored; its "model" key says which
        class `load` rebuilds.
    path : str or Path
        Destination; ``.npz`` is appended if missing.
    optimizer : Adam or SGD, optional
        Its hyperparameters and state are stored for resuming.
    trainer : Trainer, optional
        Epoch, step, generator state and history, for a bit-identical resume.
    extra : dict, optional
        JSON-ready user metadata.

    Returns
    -------
    Path of the written file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from numpyvae import VAE
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> save(VAE(4, 2, hidden=(3,)), folder / "model").name
    'model.npz'
    >>> load(folder / "model.npz").config.latent_dim
    2
    """
    from .version import __version__
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    arrays = {f"params/{k}": v for k, v in model.params.items()}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
            "numpyvae_version": __version__, "config": model.config.to_dict(),
            "optimizer": None, "trainer": None, "extra": extra or {}}
    if optimizer is None and trainer is not None:
        optimizer = trainer.optimizer
    if optimizer is not None:
        meta["optimizer"] = optimizer.config()
        arrays.update({f"optimizer/{k}": v for k, v in optimizer.state_dict().items()})
    if trainer is not None:
        state = trainer.state_dict()
        perm = state.pop("perm")
        state["sums"] = _encode_nonfinite(state["sums"])
        state["history"] = _encode_nonfinite(state["history"])
        meta["trainer"] = state
        if perm is not None:
            arrays["trainer/perm"] = perm
    meta["sha256"] = {k: array_sha256(v) for k, v in arrays.items()}
    blob = json.dumps(meta, allow_nan=False, sort_keys=True).encode("utf-8")
    arrays["meta.json"] = np.frombuffer(blob, dtype=np.uint8)
    arrays["meta.sha256"] = np.frombuffer(hashlib.sha256(blob).digest(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_npz(f, arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def _create_temporary(path: Path) -> tuple[int, str]:
    """A new file beside `path`, opened for writing, with the mode every
    other file gets (0666 less the umask; mkstemp's would be 0600)."""
    while True:
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def _encode_nonfinite(value):
    """Floats inf, -inf and NaN as the strings "inf", "-inf", "nan" (JSON has
    none of them); a point-mass posterior (delta = 0) has an infinite KL, so
    its history holds inf. `_decode_nonfinite` reverses this."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _encode_nonfinite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode_nonfinite(v) for v in value]
    return value


def _decode_nonfinite(value):
    if isinstance(value, str) and value in ("inf", "-inf", "nan"):
        return float(value)
    if isinstance(value, dict):
        return {k: _decode_nonfinite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_nonfinite(v) for v in value]
    return value


def _write_npz(f, arrays: dict) -> None:
    """Write `arrays` as an uncompressed ``.npz`` with fixed timestamps.

    Same as ``np.savez`` but deterministic: the same state always gives
    the same bytes, so save -> load -> save is bit-identical.
    """
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, a in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(a), allow_pickle=False)


META_MAX_BYTES = 64 * 2**20  # meta.json: config, trainer state, history
PERM_MAX_EXAMPLES = 2**24  # trainer/perm: the order of at most 16.8 million examples


def _member_names(path: Path, zf: zipfile.ZipFile) -> dict:
    """Array name -> ZipInfo of every member; anything but unique .npy is refused."""
    members = {}
    for info in zf.infolist():
        name = info.filename
        if not name.endswith(".npy") or name[:-4] in members:
            raise CheckpointError(f"{path}: unexpected archive member {name!r}")
        members[name[:-4]] = info
    return members


def _header(path: Path, zf: zipfile.ZipFile, info, name: str) -> tuple:
    """(shape, dtype, header bytes) of a member's .npy header, read alone."""
    with zf.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise CheckpointError(f"{path}: {name} has .npy format version {version}; "
                                  "expected 1.0 or 2.0")
        offset = member.tell()
    return shape, dtype, offset


def _budget(path: Path, meta_arrays: dict, members: dict) -> dict:
    """Most bytes each array may hold, from the model config in meta.json:
    a parameter or an optimizer moment its parameter's number of entries
    at 8 bytes (a wrong dtype is then refused by name, once read), Adam's
    t one int64, trainer/perm `PERM_MAX_EXAMPLES` int64s; any other name
    the largest parameter (refused by name once read). A model larger
    than the memory available is refused here."""
    from ._memory import available_memory, size_text
    from .reference.hierarchical_vae import HierarchyConfig
    from .reference.vae import VAEConfig
    meta = _read_meta(path, dict(meta_arrays))
    try:
        fields = dict(meta["config"])
        cls = HierarchyConfig if model_kind(fields) == "hierarchical" else VAEConfig
        fields.pop("model", None)
        config = cls(**fields)
        itemsize = np.dtype(config.dtype).itemsize
        sizes = {k: math.prod(s) * 8 for k, s in config.param_shapes().items()}
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid config in meta.json ({e})") from None
    moments = sum(1 for name in members if name.startswith("optimizer/")
                  and name.split("/", 1)[1].split(".", 1)[-1] in sizes)
    need = sum(sizes.values()) * itemsize / 8 * (1 + min(moments, 2 * len(sizes))
                                                 / max(len(sizes), 1))
    available = available_memory()
    if available is not None and need > available:
        raise CheckpointError(f"{path}: its model needs {size_text(need)} but "
                              f"{size_text(available)} is available")
    budget = {f"params/{k}": n for k, n in sizes.items()}
    for moment in ("m", "v", "velocity"):
        budget.update({f"optimizer/{moment}.{k}": n for k, n in sizes.items()})
    budget["optimizer/t"] = 8
    budget["trainer/perm"] = 8 * PERM_MAX_EXAMPLES
    largest = max(sizes.values(), default=0)
    return {name: budget.get(name, largest) for name in members}


def _read_member(path: Path, zf: zipfile.ZipFile, info, name: str, budget: int):
    """One array, read whole (so its CRC-32 is checked) with
    ``allow_pickle=False``, after its declared size (the zip directory's
    and its .npy header's) is checked against `budget` bytes of data."""
    header_max = 65536 + 12
    if info.file_size > budget + header_max:
        raise CheckpointError(f"{path}: {name} declares {info.file_size} bytes, more than "
                              f"the {budget} its model allows; refused before reading it")
    shape, dtype, offset = _header(path, zf, info, name)
    n_bytes = math.prod(shape) * dtype.itemsize
    if n_bytes > budget or offset + n_bytes != info.file_size:
        raise CheckpointError(f"{path}: {name} declares shape {shape} of {dtype} "
                              f"({n_bytes} bytes) in a member of {info.file_size} bytes; "
                              f"its model allows {budget}")
    return np.lib.format.read_array(io.BytesIO(zf.read(info)), allow_pickle=False)


def _read_arrays(path: Path) -> dict:
    """Every member of the archive: meta.json and meta.sha256 first (at
    most `META_MAX_BYTES`), then each array within the budget its model
    config allows (`_budget`), so that no member is inflated beyond the
    size the checkpoint's model needs (a zip bomb is refused unread)."""
    arrays = {}
    try:
        with zipfile.ZipFile(path) as zf:
            members = _member_names(path, zf)
            for name in ("meta.json", "meta.sha256"):
                if name in members:
                    arrays[name] = _read_member(path, zf, members[name], name, META_MAX_BYTES)
            budget = _budget(path, arrays, members)
            for name, info in members.items():
                if name not in arrays:
                    arrays[name] = _read_member(path, zf, info, name, budget[name])
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except zipfile.BadZipFile as e:
        raise CheckpointError(f"{path}: not a valid .npz archive ({e})") from None
    except ValueError as e:  # object arrays (refused by allow_pickle=False); bad headers
        raise CheckpointError(f"{path}: unreadable array ({e})") from None
    except (OSError, EOFError, KeyError, RuntimeError, UnicodeDecodeError, NotImplementedError,
            OverflowError, MemoryError, SyntaxError, TypeError, zlib.error) as e:
        raise CheckpointError(f"{path}: corrupt or truncated file ({type(e).__name__}: {e})") \
            from None
    return arrays


def _read_meta(path: Path, arrays: dict) -> dict:
    blob = arrays.pop("meta.json", None)
    digest = arrays.pop("meta.sha256", None)
    if blob is None or digest is None:
        raise CheckpointError(f"{path}: no meta.json/meta.sha256 entry; not a numpyvae checkpoint")
    if blob.dtype != np.uint8 or blob.ndim != 1:
        raise CheckpointError(f"{path}: meta.json must be a 1-d uint8 array")
    if digest.dtype != np.uint8 or digest.tobytes() != hashlib.sha256(blob.tobytes()).digest():
        raise CheckpointError(f"{path}: meta.json does not match meta.sha256 (corrupt metadata)")
    try:
        meta = json.loads(blob.tobytes().decode("utf-8"),
                          parse_constant=lambda c: _raise_nonfinite(path, c))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: meta.json does not parse ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: meta.json is not a numpyvae checkpoint header")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: unknown format version {meta.get('format_version')!r}; "
                              f"this numpyvae reads version {FORMAT_VERSION}")
    return meta


def _raise_nonfinite(path, constant):
    raise CheckpointError(f"{path}: meta.json contains {constant}; expected finite numbers")


def _check_arrays(path: Path, arrays: dict, meta: dict, expected: dict) -> None:
    """`expected` maps each array name to (shape or None, dtype)."""
    sums = meta.get("sha256")
    if not isinstance(sums, dict):
        raise CheckpointError(f"{path}: meta.json has no sha256 table")
    missing = sorted(set(expected) - set(arrays))
    extra = sorted(set(arrays) - set(expected))
    if missing:
        raise CheckpointError(f"{path}: missing arrays {missing}")
    if extra:
        raise CheckpointError(f"{path}: unexpected arrays {extra}")
    if set(sums) != set(arrays):
        raise CheckpointError(f"{path}: the sha256 table does not list exactly the arrays")
    for name, (shape, dtype) in expected.items():
        a = arrays[name]
        if a.dtype != np.dtype(dtype):
            raise CheckpointError(f"{path}: {name} has dtype {a.dtype}, expected {dtype}")
        if shape is not None and a.shape != tuple(shape):
            raise CheckpointError(f"{path}: {name} has shape {a.shape}, expected {tuple(shape)}")
        if array_sha256(a) != sums[name]:
            raise CheckpointError(f"{path}: {name} does not match its checksum (corrupt data)")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise CheckpointError(f"{path}: {name} holds NaN or inf")


def _expected_arrays(path: Path, meta: dict, config, arrays: dict) -> dict:
    dtype = config.dtype
    expected = {f"params/{k}": (s, dtype) for k, s in config.param_shapes().items()}
    opt = meta.get("optimizer")
    if opt is not None:
        expected["optimizer/t"] = ((), "int64")
        t = arrays.get("optimizer/t")
        stepped = t is not None and t.shape == () and t.dtype.kind == "i" and int(t) > 0
        if opt.get("name") == "adam":
            moments: tuple[str, ...] = ("m", "v") if stepped else ()
        else:
            moments = ("velocity",) if stepped and opt.get("momentum", 0) > 0 else ()
        for p in moments:
            for k, s in config.param_shapes().items():
                expected[f"optimizer/{p}.{k}"] = (s, dtype)
    tr = meta.get("trainer")
    if tr is not None and "trainer/perm" in arrays:
        expected["trainer/perm"] = (None, "int64")
    return expected


def load_checkpoint(path) -> Checkpoint:
    """Read and verify a checkpoint written by `save`.

    Raises
    ------
    CheckpointError
        (a ValueError) for a missing, truncated or corrupt file, an
        unknown format version, JSON that does not parse, a missing,
        extra, misshapen or mistyped array, a checksum mismatch, or NaN/inf.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from numpyvae import VAE
    >>> from numpyvae.reference.optim import Adam
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> path = save(VAE(4, 2, hidden=(3,)), folder / "m.npz", optimizer=Adam())
    >>> ckpt = load_checkpoint(path)
    >>> ckpt.model.config.input_dim, type(ckpt.optimizer).__name__
    (4, 'Adam')
    >>> ckpt.meta["format"], "params/mu.W" in ckpt.arrays
    ('numpyvae-checkpoint', True)
    """
    from .hierarchical_vae import HierarchicalVAE
    from .vae import VAE
    path = Path(path)
    arrays = _read_arrays(path)
    meta = _read_meta(path, arrays)
    try:
        model_class = HierarchicalVAE if model_kind(meta["config"]) == "hierarchical" else VAE
        model: Model = model_class.from_config(meta["config"])
        optimizer = None if meta.get("optimizer") is None \
            else _optimizer_from_config(meta["optimizer"])
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid config in meta.json ({e})") from None
    _check_arrays(path, arrays, meta, _expected_arrays(path, meta, model.config, arrays))
    model.params = {k: arrays[f"params/{k}"] for k in model.config.param_shapes()}
    if optimizer is not None:
        state = {k[len("optimizer/"):]: v for k, v in arrays.items()
                 if k.startswith("optimizer/")}
        optimizer.load_state_dict(state)
    trainer = meta.get("trainer")
    if isinstance(trainer, dict):
        for key in ("sums", "history"):
            if key in trainer:
                trainer[key] = _decode_nonfinite(trainer[key])
    return Checkpoint(model, optimizer, trainer, arrays, meta)


def load(path) -> Model:
    """Load the model (VAE or HierarchicalVAE) stored in a checkpoint (see
    `load_checkpoint`).

    Raises `CheckpointError` (a ValueError) for anything but an intact
    numpyvae checkpoint; the example of `save` shows a round trip.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from numpyvae import VAE
    >>> model = VAE(4, 2, hidden=(3,))
    >>> path = save(model, pathlib.Path(tempfile.mkdtemp()) / "m.npz")
    >>> bool(np.array_equal(load(path).params["mu.W"], model.params["mu.W"]))
    True
    """
    return load_checkpoint(path).model
