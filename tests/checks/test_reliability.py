"""Corrupt checkpoints, single-bit flips and the public-boundary fuzz.

Every corrupt file must be rejected with numpyvae.CheckpointError (a
ValueError) naming the file; every bad argument must raise ValueError or
TypeError and nothing else.
"""

import hashlib
import io
import json
import os
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import numpyvae
from numpyvae import estimators
from numpyvae.checkpoint import CheckpointError, array_sha256, load_checkpoint, save
from numpyvae.train import Trainer, train

CI = bool(os.environ.get("CI"))


def _small_run(tmp_path, optimizer=True):
    model = numpyvae.VAE(5, 2, hidden=(3,), rng=0)
    trainer = Trainer(model, rng=1, batch_size=4)
    x = np.random.default_rng(0).random((10, 5)).astype(np.float32)
    train(trainer, x, 1)
    return save(model, tmp_path / "good.npz", trainer=trainer if optimizer else None)


def _read(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _write_raw(path, arrays, meta=None, meta_digest=True):
    """Write an .npz the way `save` does, optionally with a replaced meta."""
    arrays = dict(arrays)
    if meta is not None:
        blob = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
        arrays["meta.json"] = np.frombuffer(blob, dtype=np.uint8)
        if meta_digest:
            arrays["meta.sha256"] = np.frombuffer(hashlib.sha256(blob).digest(), np.uint8)
    np.savez(path, **arrays)


def _meta(arrays):
    return json.loads(arrays["meta.json"].tobytes())


def _resum(meta, arrays):
    """Recompute per-array checksums so only the intended defect remains."""
    meta["sha256"] = {k: array_sha256(v) for k, v in arrays.items()
                      if k not in ("meta.json", "meta.sha256")}
    return meta


# Each variant takes (good_path, target_path) and writes a corrupt file.
def truncate_half(src, dst):
    dst.write_bytes(src.read_bytes()[: src.stat().st_size // 2])


def truncate_tail(src, dst):
    dst.write_bytes(src.read_bytes()[:-10])


def empty_file(src, dst):
    dst.write_bytes(b"")


def random_bytes(src, dst):
    dst.write_bytes(np.random.default_rng(0).bytes(src.stat().st_size))


def flipped_array_byte(src, dst):
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as zf:
        info = zf.getinfo("params/out.W.npy")
    offset = info.header_offset + 30 + len(info.filename) + len(info.extra) + 140
    data[offset] ^= 0xFF
    dst.write_bytes(bytes(data))


def not_a_zip_npy(src, dst):
    np.save(dst.with_suffix(""), np.zeros(3))  # writes dst as .npy content
    os.replace(dst.with_suffix(".npy"), dst)


def object_array(src, dst):
    arrays = _read(src)
    arrays["params/out.b"] = np.array([{"evil": 1}], dtype=object)
    np.savez(dst, **arrays, allow_pickle=True)


def missing_array(src, dst):
    arrays = _read(src)
    del arrays["params/out.b"]
    _write_raw(dst, arrays, _resum(_meta(arrays), arrays))


def extra_array(src, dst):
    arrays = _read(src)
    arrays["params/extra.W"] = np.zeros((2, 2), np.float32)
    _write_raw(dst, arrays, _resum(_meta(arrays), arrays))


def misshapen_array(src, dst):
    arrays = _read(src)
    arrays["params/out.W"] = np.zeros((4, 5), np.float32)
    _write_raw(dst, arrays, _resum(_meta(arrays), arrays))


def mistyped_array(src, dst):
    arrays = _read(src)
    arrays["params/out.W"] = arrays["params/out.W"].astype(np.float64)
    _write_raw(dst, arrays, _resum(_meta(arrays), arrays))


def nan_weights(src, dst):
    arrays = _read(src)
    arrays["params/enc0.W"] = arrays["params/enc0.W"].copy()
    arrays["params/enc0.W"][0, 0] = np.nan
    _write_raw(dst, arrays, _resum(_meta(arrays), arrays))


def inf_adam_moment(src, dst):
    arrays = _read(src)
    arrays["optimizer/v.mu.W"] = np.full_like(arrays["optimizer/v.mu.W"], np.inf)
    _write_raw(dst, arrays, _resum(_meta(arrays), arrays))


def checksum_mismatch(src, dst):
    arrays = _read(src)
    arrays["params/mu.b"] = arrays["params/mu.b"] + np.float32(1e-3)
    _write_raw(dst, arrays, _meta(arrays))  # old checksums kept


def unknown_format_version(src, dst):
    arrays = _read(src)
    meta = _meta(arrays)
    meta["format_version"] = 99
    _write_raw(dst, arrays, meta)


def future_format_version(src, dst):
    arrays = _read(src)
    meta = _meta(arrays)
    meta["format_version"] = 2
    _write_raw(dst, arrays, meta)


def wrong_format_name(src, dst):
    arrays = _read(src)
    meta = _meta(arrays)
    meta["format"] = "something-else"
    _write_raw(dst, arrays, meta)


def json_does_not_parse(src, dst):
    _write_raw(dst, _read(src), b"{not json")


def json_with_nan(src, dst):
    arrays = _read(src)
    text = arrays["meta.json"].tobytes().decode().replace('"beta": 1.0', '"beta": NaN')
    assert "NaN" in text
    _write_raw(dst, arrays, text.encode())


def json_not_utf8(src, dst):
    _write_raw(dst, _read(src), b"\xff\xfe{}")


def meta_digest_mismatch(src, dst):
    arrays = _read(src)
    text = arrays["meta.json"].tobytes().decode().replace('"beta": 1.0', '"beta": 2.0')
    _write_raw(dst, arrays, text.encode(), meta_digest=False)  # digest of the old JSON


def missing_meta(src, dst):
    arrays = _read(src)
    del arrays["meta.json"]
    np.savez(dst, **arrays)


def config_disagrees(src, dst):
    arrays = _read(src)
    meta = _meta(arrays)
    meta["config"]["latent_dim"] = 3
    _write_raw(dst, arrays, meta)


def config_invalid(src, dst):
    arrays = _read(src)
    meta = _meta(arrays)
    meta["config"]["likelihood"] = "poisson"
    _write_raw(dst, arrays, meta)


def config_unknown_key(src, dst):
    arrays = _read(src)
    meta = _meta(arrays)
    meta["config"]["unknown"] = 1
    _write_raw(dst, arrays, meta)


def meta_not_object(src, dst):
    _write_raw(dst, _read(src), b"[1, 2, 3]")


def sha_table_missing(src, dst):
    arrays = _read(src)
    meta = _meta(arrays)
    del meta["sha256"]
    _write_raw(dst, arrays, meta)


VARIANTS = [truncate_half, truncate_tail, empty_file, random_bytes, flipped_array_byte,
            not_a_zip_npy, object_array, missing_array, extra_array, misshapen_array,
            mistyped_array, nan_weights, inf_adam_moment, checksum_mismatch,
            unknown_format_version, future_format_version, wrong_format_name,
            json_does_not_parse, json_with_nan, json_not_utf8, meta_digest_mismatch,
            missing_meta, config_disagrees, config_invalid, config_unknown_key,
            meta_not_object, sha_table_missing]


@pytest.mark.parametrize("corrupt", VARIANTS, ids=[v.__name__ for v in VARIANTS])
def test_corrupt_checkpoint_is_rejected_with_a_named_error(tmp_path, corrupt):
    good = _small_run(tmp_path)
    bad = tmp_path / "bad.npz"
    corrupt(good, bad)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(bad)
    assert str(bad) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_file_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "absent.npz")


def test_every_single_bit_flip_is_detected_or_harmless(tmp_path):
    """Flip each bit of a small checkpoint: either it loads the identical
    state, or it is rejected with CheckpointError -- never a different model."""
    model = numpyvae.VAE(2, 1, hidden=(), rng=0)
    good = save(model, tmp_path / "tiny.npz")
    data = good.read_bytes()
    reference = load_checkpoint(good)
    flipped = tmp_path / "flipped.npz"
    stride = 5 if CI else 1
    outcomes = {"identical": 0, "rejected": 0}
    for bit in range(0, len(data) * 8, stride):
        buf = bytearray(data)
        buf[bit // 8] ^= 1 << (bit % 8)
        flipped.write_bytes(bytes(buf))
        try:
            ckpt = load_checkpoint(flipped)
        except CheckpointError:
            outcomes["rejected"] += 1
            continue
        assert ckpt.meta == reference.meta, f"bit {bit} changed the metadata silently"
        for k, a in reference.arrays.items():
            b = ckpt.arrays[k]
            assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), \
                f"bit {bit} changed {k} silently"
        outcomes["identical"] += 1
    assert outcomes["rejected"] > 0.5 * sum(outcomes.values())


def test_crash_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    good = _small_run(tmp_path)
    before = good.read_bytes()
    model = numpyvae.VAE(5, 2, hidden=(3,), rng=7)

    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        save(model, good)
    monkeypatch.undo()
    assert good.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.npz"]
    load_checkpoint(good)


configs = st.fixed_dictionaries({
    "hidden": st.sampled_from([(), (3,), (4, 3)]),
    "likelihood": st.sampled_from(["bernoulli", "gaussian"]),
    "posterior": st.sampled_from(["diagonal", "fixed"]),
    "dtype": st.sampled_from(["float32", "float64"]),
    "latent_dim": st.integers(1, 3),
    "seed": st.integers(0, 2**16),
})


@settings(max_examples=10 if CI else 50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cfg=configs)
def test_save_load_save_is_bit_identical(tmp_path, cfg):
    seed = cfg.pop("seed")
    model = numpyvae.VAE(4, rng=seed, **cfg)
    x = np.random.default_rng(seed).random((6, 4)).astype(cfg["dtype"])
    trainer = Trainer(model, rng=seed, batch_size=4)
    train(trainer, x, 1)
    first = save(model, tmp_path / "a.npz", trainer=trainer)
    from numpyvae.train import trainer_from_checkpoint
    ckpt = load_checkpoint(first)
    second = save(ckpt.model, tmp_path / "b.npz", trainer=trainer_from_checkpoint(ckpt))
    assert first.read_bytes() == second.read_bytes()
    np.testing.assert_array_equal(model.encode(x)[0], ckpt.model.encode(x)[0])
    np.testing.assert_array_equal(model.decode(x[:, :cfg["latent_dim"]] - 0.5),
                                  ckpt.model.decode(x[:, :cfg["latent_dim"]] - 0.5))


# ---- the public boundary: only ValueError / TypeError, never anything else

DTYPES = [np.int8, np.uint8, np.int64, np.bool_, np.float16, np.float32, np.float64,
          np.complex64, object]


@st.composite
def wild_arrays(draw):
    dtype = draw(st.sampled_from(DTYPES))
    ndim = draw(st.integers(0, 3))
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=ndim, max_size=ndim)))
    size = int(np.prod(shape)) if shape else 1
    values = draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, -1.0, 2.0, np.nan, np.inf, -np.inf,
                                            1e30]), min_size=size, max_size=size))
    a = np.array(values, dtype=np.float64).reshape(shape)
    if dtype is object:
        return a.astype(object)
    with np.errstate(all="ignore"):
        return a.astype(dtype)


MODEL = numpyvae.VAE(4, 2, hidden=(3,), rng=0)
GAUSSIAN = numpyvae.VAE(4, 2, hidden=(), likelihood="gaussian", rng=0)


def _call(target, a):
    if target == "encode":
        return MODEL.encode(a)
    if target == "decode":
        return MODEL.decode(a)
    if target == "gaussian_encode":
        return GAUSSIAN.encode(a)
    if target == "elbo":
        return MODEL.elbo(a, rng=0)
    if target == "loss_and_grads":
        return MODEL.loss_and_grads(a, np.zeros((len(a) if np.ndim(a) else 1, 2), np.float32))
    if target == "fit":
        return numpyvae.fit(numpyvae.VAE(4, 2, hidden=(), rng=0), a, epochs=1, batch_size=1)
    if target == "VAE":
        return numpyvae.VAE(a, 2)
    if target == "iwae_bound":
        return estimators.iwae_bound(MODEL, a, 3, rng=0)
    if target == "naive_log_likelihood":
        return estimators.naive_log_likelihood(MODEL, a, 3, rng=0)
    if target == "estimators.elbo":
        return estimators.elbo(MODEL, a, rng=0)
    if target == "exact_log_likelihood":
        return estimators.exact_log_likelihood(GAUSSIAN, a)
    raise AssertionError(target)


TARGETS = ["encode", "decode", "gaussian_encode", "elbo", "loss_and_grads", "fit", "VAE",
           "iwae_bound", "naive_log_likelihood", "estimators.elbo", "exact_log_likelihood"]


@settings(max_examples=150 if CI else 1200)
@given(target=st.sampled_from(TARGETS), a=wild_arrays())
def test_public_api_raises_only_value_or_type_errors(target, a):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            out = _call(target, a)
        except (ValueError, TypeError) as e:
            assert str(e), "an error must say what went wrong"
            return
    # success must be a correct, finite result
    arrays = out if isinstance(out, tuple) else (out,)
    for r in arrays:
        if isinstance(r, np.ndarray) and r.dtype.kind == "f":
            assert np.isfinite(r).all() or target == "encode"


@settings(max_examples=40 if CI else 300)
@given(blob=st.binary(min_size=0, max_size=400))
def test_load_of_arbitrary_bytes_raises_checkpoint_error(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("fuzz") / "x.npz"
    path.write_bytes(blob)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_zip_with_arbitrary_member_is_rejected(tmp_path):
    path = tmp_path / "z.npz"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("params/out.W.npy", b"\x93NUMPY garbage")
    path.write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
