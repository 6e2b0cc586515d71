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
while saving leaves the previous file intact. `_verify` holds every rule
(checksums first, then names, shapes, dtypes, finiteness, the
optimizer's and the trainer's state); `load` runs it on what it read
(from regular files only), `save` on what it is about to write: save
never writes what load refuses. Errors: `CheckpointError` (a ValueError).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import npz_files
from .npz_files import array_sha256  # importable from here too, as before
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
        Destination; ``.npz`` is appended if missing (``"model"`` writes
        ``model.npz``, which ``load("model")`` then finds).
    optimizer : Adam or SGD, optional
        Its hyperparameters and state are stored for resuming.
    trainer : Trainer, optional
        Epoch, step, generator state and history, for a bit-identical resume.
    extra : dict, optional
        JSON-ready user metadata.

    Returns
    -------
    Path of the written file.

    Raises
    ------
    CheckpointError
        (a ValueError) for anything `load` would refuse (NaN or inf, a
        parameter or moment of the wrong name, dtype or shape, a bad
        optimizer or trainer state) or `extra` that is not JSON-ready,
        before any byte is written: an existing file stays as it was.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from numpyvae import VAE
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> save(VAE(4, 2, hidden=(3,)), folder / "model").name
    'model.npz'
    >>> load(folder / "model").config.latent_dim
    2
    """
    from .version import __version__
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    arrays = {f"params/{k}": np.asarray(v) for k, v in model.params.items()}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
            "numpyvae_version": __version__, "config": model.config.to_dict(),
            "optimizer": None, "trainer": None, "extra": extra or {}}
    if optimizer is None and trainer is not None:
        optimizer = trainer.optimizer
    if optimizer is not None:
        meta["optimizer"] = optimizer.config()
        arrays.update({f"optimizer/{k}": np.asarray(v)
                       for k, v in optimizer.state_dict().items()})
    if trainer is not None:
        state = trainer.state_dict()
        perm = state.pop("perm")
        state["sums"] = _encode_nonfinite(state["sums"])
        state["history"] = _encode_nonfinite(state["history"])
        meta["trainer"] = state
        if perm is not None:
            arrays["trainer/perm"] = perm
    _add_meta(path, arrays, meta)
    try:  # load's rules, on exactly the arrays and JSON about to be written
        _verify(path, dict(arrays))
    except CheckpointError as e:
        raise CheckpointError(f"{e}; refused to save, nothing was written") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    npz_files.write_npz_atomically(path, arrays)
    return path


def _add_meta(path: Path, arrays: dict, meta: dict) -> None:
    """Add meta.json (with a SHA-256 of every array) and meta.sha256."""
    meta["sha256"] = {k: array_sha256(v) for k, v in arrays.items()}
    try:
        blob = json.dumps(meta, allow_nan=False, sort_keys=True).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: the metadata is not JSON-ready ({e}); extra must "
                              "hold finite numbers, strings, lists and dicts only") from None
    arrays["meta.json"] = np.frombuffer(blob, dtype=np.uint8)
    arrays["meta.sha256"] = np.frombuffer(hashlib.sha256(blob).digest(), dtype=np.uint8)


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


META_MAX_BYTES = 64 * 2**20  # meta.json: config, trainer state, history
PERM_MAX_EXAMPLES = 2**24  # trainer/perm: the order of at most 16.8 million examples


def _budget(path: Path, meta_arrays: dict, members: dict) -> dict:
    """Most bytes each array may hold, from the model config in meta.json:
    a parameter or moment its parameter's entries at 8 bytes (a wrong
    dtype is refused by name once read), Adam's t one int64, trainer/perm
    `PERM_MAX_EXAMPLES` int64s, any other name the largest parameter. A
    model larger than the memory available is refused here."""
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


def _read_arrays(path: Path) -> dict:
    """Every member of the archive (a regular file: `open_regular`):
    meta.json and meta.sha256 first (at most `META_MAX_BYTES`), then each
    array within the budget its model config allows (`_budget`), so that
    no member is inflated beyond the size the checkpoint's model needs (a
    zip bomb is refused unread)."""
    arrays, label = {}, str(path)
    try:
        with npz_files.open_regular(path, label) as f, zipfile.ZipFile(f) as zf:
            members = npz_files.member_names(zf, label)
            for name in ("meta.json", "meta.sha256"):
                if name in members:
                    arrays[name] = npz_files.read_member(zf, members[name], label, name, META_MAX_BYTES)
            budget = _budget(path, arrays, members)
            for name, info in members.items():
                if name not in arrays:
                    arrays[name] = npz_files.read_member(zf, info, label, name, budget[name])
    except CheckpointError:
        raise
    except npz_files.NpzFileError as e:  # not a regular file; a bad member name, header or size
        raise CheckpointError(f"{e}; expected a numpyvae checkpoint") from None
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


def _checkpoint_file(path: Path) -> Path:
    """The file `load` reads for `path`: `path` itself if it exists, else
    the file `save` writes for it (``.npz`` appended) if that exists."""
    if path.suffix == ".npz" or os.path.lexists(path):
        return path
    npz = path.with_name(path.name + ".npz")
    if not os.path.lexists(npz):
        raise CheckpointError(f"{path}: no such checkpoint file (nor {npz})")
    return npz


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


def _check_checksums(path: Path, arrays: dict, meta: dict) -> None:
    """Every array, whatever its dtype, against its SHA-256 in meta.json,
    first: nothing is read from an array (Adam's t) before it is intact."""
    sums = meta.get("sha256")
    if not isinstance(sums, dict) or set(sums) != set(arrays):
        raise CheckpointError(f"{path}: the sha256 table does not list exactly the arrays")
    for name, a in arrays.items():
        if array_sha256(a) != sums[name]:
            raise CheckpointError(f"{path}: {name} does not match its checksum (corrupt data)")


def _check_arrays(path: Path, arrays: dict, expected: dict) -> None:
    """`expected` maps each array name to (shape or None, dtype)."""
    for name, (shape, dtype) in expected.items():
        a = arrays.get(name)
        if a is None:
            continue
        if a.dtype != np.dtype(dtype):
            raise CheckpointError(f"{path}: {name} has dtype {a.dtype}, expected {dtype}")
        if shape is not None and a.shape != tuple(shape):
            raise CheckpointError(f"{path}: {name} has shape {a.shape}, expected {tuple(shape)}")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise CheckpointError(f"{path}: {name} holds NaN or inf")
    for problem, names in (("missing", set(expected) - set(arrays)),
                           ("unexpected", set(arrays) - set(expected))):
        if names:
            raise CheckpointError(f"{path}: {problem} arrays {sorted(names)}")


def _step_count(path: Path, t) -> int:
    """The optimizer's step count ``optimizer/t``, an int64 in [0, 2**53]
    (a wrong dtype or shape counts 0 here and is refused by name later)."""
    from ._validation import check_count
    if t is None or t.shape != () or t.dtype != np.int64:
        return 0
    try:
        return check_count(int(t), "optimizer/t")
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None


def _expected_arrays(path: Path, meta: dict, config, arrays: dict) -> dict:
    dtype = config.dtype
    expected = {f"params/{k}": (s, dtype) for k, s in config.param_shapes().items()}
    opt = meta.get("optimizer")
    if opt is not None:
        expected["optimizer/t"] = ((), "int64")
        stepped = _step_count(path, arrays.get("optimizer/t")) > 0
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


def _check_trainer(path: Path, meta: dict, arrays: dict, model: Model, optimizer) -> None:
    """The trainer's state: counts, position, sums, history
    (`_validation.check_trainer_state`), the generator state, and its
    settings, by `trainer_from_checkpoint` (the Trainer's own rules)."""
    from ._validation import check_trainer_state
    from .trainer import generator_from_state, trainer_from_checkpoint
    state = meta["trainer"]
    if optimizer is None:
        raise CheckpointError(f"{path}: trainer state without an optimizer state; resuming needs both")
    try:
        check_trainer_state(state, arrays.get("trainer/perm"), PERM_MAX_EXAMPLES)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: {e}") from None
    try:
        generator_from_state(state["rng"])
    except (KeyError, OverflowError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: trainer.rng: not a generator state ({e!r})") from None
    try:
        trainer_from_checkpoint(Checkpoint(model, optimizer, state, arrays, meta))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: trainer state cannot be resumed ({e})") from None


def _verify(path: Path, arrays: dict) -> tuple[dict, Model, Any]:
    """Every rule of a checkpoint, on its arrays (meta.json and meta.sha256
    popped from them): the metadata, the config, the checksums, the arrays
    the config and optimizer state call for, the trainer's state. Returns
    (meta, a model and an optimizer of the config), state not loaded."""
    from .hierarchical_vae import HierarchicalVAE
    from .vae import VAE
    meta = _read_meta(path, arrays)
    try:
        model_class = HierarchicalVAE if model_kind(meta["config"]) == "hierarchical" else VAE
        model: Model = model_class.from_config(meta["config"])
        optimizer = None if meta.get("optimizer") is None \
            else _optimizer_from_config(meta["optimizer"])
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid config in meta.json ({e})") from None
    _check_checksums(path, arrays, meta)
    _check_arrays(path, arrays, _expected_arrays(path, meta, model.config, arrays))
    trainer = meta.get("trainer")
    if trainer is not None:
        for key in ("sums", "history"):
            if isinstance(trainer, dict) and key in trainer:
                trainer[key] = _decode_nonfinite(trainer[key])
        _check_trainer(path, meta, arrays, model, optimizer)
    return meta, model, optimizer


def load_checkpoint(path) -> Checkpoint:
    """Read and verify a checkpoint written by `save`.

    `path` is read if it exists; otherwise, without the ``.npz`` suffix,
    the file `save` writes for it: ``load_checkpoint("model")`` reads
    ``model.npz`` when no file "model" exists.

    Raises
    ------
    CheckpointError
        (a ValueError) for a missing, truncated or corrupt file, anything
        but a regular file (a FIFO, a directory: refused unopened), an
        unknown format version, JSON that does not parse, a missing,
        extra, misshapen or mistyped array, a checksum mismatch (of any
        array), NaN/inf, or a bad optimizer or trainer state (by key).

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
    path = _checkpoint_file(Path(path))
    arrays = _read_arrays(path)
    meta, model, optimizer = _verify(path, arrays)
    model.params = {k: arrays[f"params/{k}"] for k in model.config.param_shapes()}
    if optimizer is not None:
        state = {k[len("optimizer/"):]: v for k, v in arrays.items()
                 if k.startswith("optimizer/")}
        optimizer.load_state_dict(state)
    return Checkpoint(model, optimizer, meta.get("trainer"), arrays, meta)


def load(path) -> Model:
    """Load the model (VAE or HierarchicalVAE) stored in a checkpoint (see
    `load_checkpoint`; like it, ``load("model")`` reads ``model.npz``, the
    file ``save(model, "model")`` wrote, when no file "model" exists).

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
