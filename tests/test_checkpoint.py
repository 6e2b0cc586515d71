"""Tests for numpyvae/checkpoint.py: exact round trips of every
configuration with and without optimizer and trainer state, a stable
save -> load -> save, atomic writes (a crash while saving leaves the old
checkpoint), and a table of corrupt files that must each be rejected with
a CheckpointError naming the file."""

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

import numpyvae
from numpyvae import SGD, Adam, CheckpointError, Trainer, load, load_checkpoint, save
from numpyvae.checkpoint import array_sha256
from numpyvae.train import trainer_from_checkpoint

D_X, D_Z = 6, 3

CONFIGS = {
    "bernoulli-diagonal-relu-f32": dict(hidden=(7, 5), activation="relu"),
    "bernoulli-fixed-delta0-linear-f32": dict(hidden=(), posterior="fixed", delta=0.0),
    "gaussian-fixed-tanh-f64": dict(hidden=(4,), activation="tanh", likelihood="gaussian",
                                    sigma=0.3, posterior="fixed", delta=0.5, dtype="float64"),
    "gaussian-diagonal-softplus-f64": dict(hidden=(5, 4), activation="softplus",
                                           likelihood="gaussian", dtype="float64"),
    "bernoulli-diagonal-sigmoid-f64": dict(hidden=(3,), activation="sigmoid", dtype="float64"),
    "gaussian-diagonal-identity-f32": dict(hidden=(2,), activation="identity",
                                           likelihood="gaussian", sigma=2.0),
}


def make_model(name="bernoulli-diagonal-relu-f32", seed=0):
    model = numpyvae.VAE(D_X, D_Z, rng=seed, **CONFIGS[name])
    rng = np.random.default_rng(seed + 1)
    for k, p in model.params.items():  # non-zero biases, so a lost bias shows
        model.params[k] = p + rng.standard_normal(p.shape).astype(p.dtype) * 0.1
    return model


def data(model, n=10, seed=0):
    return np.random.default_rng(seed).random((n, D_X)).astype(model.dtype)


def assert_same_model(a, b):
    assert a.config == b.config
    assert list(a.params) == list(b.params)
    for k in a.params:
        assert a.params[k].dtype == b.params[k].dtype, k
        np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=k)
    x = data(a)
    z = np.random.default_rng(1).standard_normal((4, D_Z)).astype(a.dtype)
    np.testing.assert_array_equal(a.encode(x)[0], b.encode(x)[0])
    np.testing.assert_array_equal(a.encode(x)[1], b.encode(x)[1])
    np.testing.assert_array_equal(a.decode(z), b.decode(z))
    np.testing.assert_array_equal(a.elbo_terms(x, rng=2)["log_lik"],
                                  b.elbo_terms(x, rng=2)["log_lik"])


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert a.config() == b.config()
    assert sorted(sa) == sorted(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype, k
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)


def read_raw(path):
    """Every array of the file (meta.json included), read without pickle."""
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def trained(model, optimizer, steps=3, batch_size=4, beta=1.0):
    """A trainer stopped after `steps` steps of its first epoch (a perm drawn)."""
    trainer = Trainer(model, optimizer, beta=beta, batch_size=batch_size, rng=5)
    x = data(model, n=4 * batch_size)

    def stop(t):
        if t.steps_done == steps:
            raise StopIteration

    with pytest.raises(StopIteration):
        trainer.run_epoch(x, on_step=stop)
    return trainer


# ------------------------------------------------------------ round trips

@pytest.mark.parametrize("name", list(CONFIGS))
def test_round_trip_every_configuration(tmp_path, name):
    model = make_model(name)
    path = save(model, tmp_path / "model.npz")
    assert path == tmp_path / "model.npz"
    assert_same_model(model, load(path))
    ckpt = load_checkpoint(path)
    assert ckpt.optimizer is None and ckpt.trainer_state is None


OPTIMIZERS = {
    "adam-fresh": lambda: Adam(lr=0.01),
    "adam": lambda: Adam(lr=0.01, beta1=0.8, beta2=0.99, epsilon=1e-7),
    "sgd": lambda: SGD(lr=0.05),
    "sgd-momentum": lambda: SGD(lr=0.05, momentum=0.9),
}


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("name", ["bernoulli-diagonal-relu-f32", "gaussian-fixed-tanh-f64"])
def test_round_trip_with_optimizer_state(tmp_path, name, opt_name):
    model, optimizer = make_model(name), OPTIMIZERS[opt_name]()
    if opt_name != "adam-fresh":
        trained(model, optimizer)
        assert optimizer.t == 3
    path = save(model, tmp_path / "ckpt.npz", optimizer=optimizer)
    ckpt = load_checkpoint(path)
    assert_same_model(model, ckpt.model)
    assert type(ckpt.optimizer) is type(optimizer)
    assert_same_state(optimizer, ckpt.optimizer)
    assert ckpt.trainer_state is None


@pytest.mark.parametrize("at_boundary", [False, True], ids=["mid-epoch", "epoch-end"])
def test_round_trip_with_trainer_state(tmp_path, at_boundary):
    model = make_model()
    trainer = trained(model, Adam(lr=0.01))
    if at_boundary:
        trainer.run_epoch(data(model, n=16))
        trainer.end_epoch(data(model, n=5, seed=9))
    path = save(model, tmp_path / "ckpt.npz", trainer=trainer)
    ckpt = load_checkpoint(path)
    assert_same_model(model, ckpt.model)
    assert_same_state(trainer.optimizer, ckpt.optimizer)
    resumed = trainer_from_checkpoint(ckpt)
    assert (resumed.epochs_done, resumed.steps_done) == (trainer.epochs_done, trainer.steps_done) == \
        ((1, 0) if at_boundary else (0, 3))
    assert resumed.beta == trainer.beta and resumed.batch_size == trainer.batch_size
    assert resumed.sums == trainer.sums
    assert resumed.history == trainer.history
    assert resumed.rng.bit_generator.state == trainer.rng.bit_generator.state
    if at_boundary:
        assert resumed.perm is None and "trainer/perm" not in ckpt.arrays
        assert len(resumed.history) == 1
    else:
        np.testing.assert_array_equal(resumed.perm, trainer.perm)


def test_infinite_terms_of_the_point_mass_posterior_round_trip(tmp_path):
    """delta = 0 with beta = 0: the KL, so the sums and history, hold inf."""
    model = make_model("bernoulli-fixed-delta0-linear-f32")
    trainer = trained(model, Adam(), beta=0.0)  # 3 of 4 steps of epoch 1
    assert trainer.sums[2] == np.inf
    ckpt = load_checkpoint(save(model, tmp_path / "a.npz", trainer=trainer))
    assert trainer_from_checkpoint(ckpt).sums == trainer.sums
    trainer.run_epoch(data(model, n=16))
    trainer.end_epoch(data(model, n=5, seed=9))
    assert trainer.history[0]["train_kl"] == np.inf
    assert trainer.history[0]["val_elbo"] == -np.inf
    first = save(model, tmp_path / "b.npz", trainer=trainer)
    resumed = trainer_from_checkpoint(load_checkpoint(first))
    assert resumed.history == trainer.history
    second = save(resumed.model, tmp_path / "c.npz", trainer=resumed)
    assert first.read_bytes() == second.read_bytes()


def test_extra_metadata_and_suffix(tmp_path):
    model = make_model()
    path = save(model, tmp_path / "sub" / "run", extra={"note": "digits", "n": 3})
    assert path == tmp_path / "sub" / "run.npz"
    assert load_checkpoint(path).meta["extra"] == {"note": "digits", "n": 3}


def test_a_loaded_model_keeps_training(tmp_path):
    model = make_model()
    loaded = load(save(model, tmp_path / "m.npz"))
    x = data(loaded)
    numpyvae.fit(loaded, x, epochs=1, batch_size=5)
    assert not np.array_equal(loaded.params["out.W"], model.params["out.W"])


# ------------------------------------------- save -> load -> save is stable

@pytest.mark.parametrize("with_trainer", [False, True])
def test_save_load_save_gives_the_same_content(tmp_path, with_trainer):
    model = make_model("gaussian-fixed-tanh-f64")
    trainer = trained(model, Adam(lr=0.01)) if with_trainer else None
    first = save(model, tmp_path / "a.npz", trainer=trainer)
    ckpt = load_checkpoint(first)
    again = trainer_from_checkpoint(ckpt) if with_trainer else None
    second = save(ckpt.model, tmp_path / "b.npz", trainer=again)
    a, b = read_raw(first), read_raw(second)
    assert list(a) == list(b)
    for k in a:  # meta.json included, byte for byte (the JSON is sorted)
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert a[k].tobytes() == b[k].tobytes(), k
    assert first.read_bytes() == second.read_bytes()  # the zip is written deterministically
    meta = json.loads(a["meta.json"].tobytes())
    assert meta["format"] == "numpyvae-checkpoint"
    assert meta["numpyvae_version"] == numpyvae.__version__
    assert meta["config"] == model.config.to_dict()


def test_saving_leaves_exactly_one_file(tmp_path):
    model = make_model()
    save(model, tmp_path / "ckpt.npz")
    save(model, tmp_path / "ckpt.npz", trainer=trained(model, Adam()))  # overwrite
    assert os.listdir(tmp_path) == ["ckpt.npz"]


# ---------------------------------------------------------------- atomicity

def crash_after_first_array(monkeypatch):
    """Make the writer fail after it has written one array of the archive."""
    real = np.lib.format.write_array
    calls = []

    def write_array(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise OSError("simulated crash: disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_array)
    return calls


def fail_os_replace(monkeypatch):
    def replace(*args, **kwargs):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize("crash", [crash_after_first_array, fail_os_replace],
                         ids=["mid-write", "rename"])
def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch, crash):
    old = make_model(seed=0)
    path = save(old, tmp_path / "ckpt.npz")
    before = path.read_bytes()
    new = make_model(seed=1)
    crash(monkeypatch)
    with pytest.raises(OSError, match="simulated crash"):
        save(new, path, trainer=trained(new, Adam()))
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ckpt.npz"]  # no temporary file left
    assert path.read_bytes() == before
    assert_same_model(old, load(path))


def test_an_interrupt_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    old = make_model(seed=0)
    path = save(old, tmp_path / "ckpt.npz")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np.lib.format, "write_array", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save(make_model(seed=1), path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    assert_same_model(old, load(path))


def test_a_killed_process_keeps_the_previous_checkpoint(tmp_path):
    """The process dies mid-write (no cleanup runs): the old file survives."""
    old = make_model(seed=0)
    path = save(old, tmp_path / "ckpt.npz")
    script = textwrap.dedent(f"""
        import os
        import numpy as np
        import numpyvae
        real = np.lib.format.write_array
        calls = []
        def write_array(*args, **kwargs):
            calls.append(1)
            if len(calls) == 3:
                os._exit(7)  # killed: no exception handler, no cleanup
            return real(*args, **kwargs)
        np.lib.format.write_array = write_array
        numpyvae.save(numpyvae.VAE({D_X}, {D_Z}, hidden=(7, 5), rng=1), {str(path)!r})
    """)
    root = os.path.dirname(os.path.dirname(numpyvae.__file__))
    env = dict(os.environ, PYTHONPATH=root)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True)
    assert result.returncode == 7, result.stderr.decode()
    assert_same_model(old, load(path))
    leftovers = sorted(set(os.listdir(tmp_path)) - {"ckpt.npz"})
    assert all(name.startswith(".ckpt.npz.") for name in leftovers), leftovers


# ------------------------------------------------------- corrupt files
#
# Each variant rewrites a good checkpoint (a model with Adam and trainer
# state, stopped mid-epoch) in place. `rewrite` keeps every checksum
# consistent except where a variant means to break one, so each variant
# reaches the check it targets. To add a variant: write a function
# `(path) -> None` and add a row to CORRUPTIONS with the message it must give.

def rewrite(path, change, rehash=True):
    """Apply change(arrays, meta) to the file; recompute checksums if `rehash`."""
    arrays = read_raw(path)
    meta = json.loads(arrays.pop("meta.json").tobytes())
    has_digest = arrays.pop("meta.sha256", None) is not None
    change(arrays, meta)
    if rehash:
        meta["sha256"] = {k: array_sha256(v) for k, v in arrays.items()}
    write_raw(path, arrays, json.dumps(meta, sort_keys=True).encode(), has_digest)


def write_raw(path, arrays, blob, digest=True):
    arrays = dict(arrays, **{"meta.json": np.frombuffer(blob, dtype=np.uint8)})
    if digest:  # the digest of meta.json, when the format has one
        arrays["meta.sha256"] = np.frombuffer(hashlib.sha256(blob).digest(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def truncated_half(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def truncated_tail(path):
    path.write_bytes(path.read_bytes()[:-20])


def empty_file(path):
    path.write_bytes(b"")


def random_bytes(path):
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def flipped_byte_in_array_data(path):
    """One byte of params/out.W's data inverted in the file (zip left as is)."""
    raw = bytearray(path.read_bytes())
    data_bytes = read_raw(path)["params/out.W"].tobytes()
    start = bytes(raw).find(data_bytes)
    assert start > 0 and bytes(raw).count(data_bytes) == 1
    raw[start + len(data_bytes) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def changed_value(path):
    """A weight changed in a well-formed archive; its old checksum kept."""
    def change(arrays, meta):
        arrays["params/mu.b"] = arrays["params/mu.b"] + np.float32(1e-3)
    rewrite(path, change, rehash=False)


def extra_array(path):
    rewrite(path, lambda arrays, meta: arrays.update(
        {"params/extra.W": np.zeros((2, 2), np.float32)}))


def missing_array(path):
    rewrite(path, lambda arrays, meta: arrays.pop("params/out.b"))


def missing_adam_moment(path):
    rewrite(path, lambda arrays, meta: arrays.pop("optimizer/v.mu.W"))


def misshapen_array(path):
    rewrite(path, lambda arrays, meta: arrays.update(
        {"params/out.W": np.ascontiguousarray(arrays["params/out.W"].T)}))


def mistyped_array(path):
    rewrite(path, lambda arrays, meta: arrays.update(
        {"params/out.W": arrays["params/out.W"].astype(np.float64)}))


def nan_weights(path):
    def change(arrays, meta):
        arrays["params/enc0.W"] = arrays["params/enc0.W"].copy()
        arrays["params/enc0.W"][1, 2] = np.nan
    rewrite(path, change)


def inf_adam_moment(path):
    rewrite(path, lambda arrays, meta: arrays.update(
        {"optimizer/m.out.b": np.full_like(arrays["optimizer/m.out.b"], np.inf)}))


def object_array(path):
    arrays = read_raw(path)
    arrays["params/out.b"] = np.array([{"a": 1}], dtype=object)
    with open(path, "wb") as f:
        np.savez(f, **arrays, allow_pickle=True)


def meta_not_json(path):
    arrays = read_raw(path)
    arrays.pop("meta.json")
    digest = arrays.pop("meta.sha256", None) is not None
    write_raw(path, arrays, b'{"format": "numpyvae-checkpoint", ', digest)


def meta_with_nan(path):
    arrays = read_raw(path)
    text = arrays.pop("meta.json").tobytes().decode()
    digest = arrays.pop("meta.sha256", None) is not None
    text, n = re.subn(r'"beta": [0-9.]+', '"beta": NaN', text)
    assert n == 1
    write_raw(path, arrays, text.encode(), digest)


def missing_meta(path):
    arrays = read_raw(path)
    arrays.pop("meta.json")
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def unknown_format_version(path):
    rewrite(path, lambda arrays, meta: meta.update(format_version=99))


def not_a_numpyvae_header(path):
    rewrite(path, lambda arrays, meta: meta.update(format="someone-elses-format"))


def invalid_config(path):
    rewrite(path, lambda arrays, meta: meta["config"].update(likelihood="poisson"))


def config_disagrees_with_arrays(path):
    rewrite(path, lambda arrays, meta: meta["config"].update(latent_dim=D_Z + 1))


def plain_npy_file(path):
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))


CORRUPTIONS = [
    pytest.param(truncated_half, "", id="truncated-half"),
    pytest.param(truncated_tail, "", id="truncated-tail"),
    pytest.param(empty_file, "", id="empty-file"),
    pytest.param(random_bytes, "", id="random-bytes"),
    pytest.param(plain_npy_file, "", id="plain-npy"),
    pytest.param(flipped_byte_in_array_data, "", id="flipped-byte"),
    pytest.param(changed_value, "params/mu.b.*checksum", id="checksum-mismatch"),
    pytest.param(extra_array, r"unexpected.*params/extra\.W", id="extra-array"),
    pytest.param(missing_array, r"missing.*params/out\.b", id="missing-array"),
    pytest.param(missing_adam_moment, r"missing.*optimizer/v\.mu\.W", id="missing-moment"),
    pytest.param(misshapen_array, r"params/out\.W.*shape", id="misshapen-array"),
    pytest.param(mistyped_array, r"params/out\.W.*dtype", id="mistyped-array"),
    pytest.param(nan_weights, r"params/enc0\.W.*NaN", id="nan-weights"),
    pytest.param(inf_adam_moment, r"optimizer/m\.out\.b.*inf", id="inf-moment"),
    pytest.param(object_array, "", id="object-array"),
    pytest.param(meta_not_json, "meta.json", id="meta-not-json"),
    pytest.param(meta_with_nan, "NaN", id="meta-with-nan"),
    pytest.param(missing_meta, "meta.json", id="missing-meta"),
    pytest.param(unknown_format_version, "format version 99", id="format-version"),
    pytest.param(not_a_numpyvae_header, "not a numpyvae checkpoint", id="foreign-header"),
    pytest.param(invalid_config, "config.*poisson", id="invalid-config"),
    pytest.param(config_disagrees_with_arrays, "shape", id="config-disagrees"),
]


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    """The bytes of a valid checkpoint with Adam moments and a drawn perm."""
    model = make_model()
    path = save(model, tmp_path_factory.mktemp("good") / "ckpt.npz",
                trainer=trained(model, Adam(lr=0.01)))
    assert load_checkpoint(path).trainer_state["step"] == 3
    return path.read_bytes()


@pytest.mark.parametrize("corrupt,pattern", CORRUPTIONS)
def test_a_corrupt_checkpoint_is_rejected_naming_the_file(tmp_path, good_checkpoint, corrupt,
                                                          pattern):
    path = tmp_path / "ckpt.npz"
    path.write_bytes(good_checkpoint)
    load_checkpoint(path)  # the starting point is fine
    corrupt(path)
    with pytest.raises(CheckpointError, match=re.escape(str(path))) as info:
        load_checkpoint(path)
    assert re.search(pattern, str(info.value)), str(info.value)
    with pytest.raises(CheckpointError):
        load(path)


def test_the_table_has_at_least_ten_distinct_variants():
    ids = [p.id for p in CORRUPTIONS]
    assert len(ids) == len(set(ids)) >= 10


def test_a_missing_file_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(CheckpointError, match=re.escape(str(path))):
        load(path)
    assert issubclass(CheckpointError, ValueError)


def test_a_folder_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match=re.escape(str(tmp_path))):
        load(tmp_path)


def test_a_model_checkpoint_cannot_be_resumed(tmp_path):
    path = save(make_model(), tmp_path / "m.npz")
    with pytest.raises(ValueError, match="no trainer state"):
        trainer_from_checkpoint(load_checkpoint(path))


def test_checkpoints_hold_no_pickles(tmp_path):
    model = make_model()
    path = save(model, tmp_path / "ckpt.npz", trainer=trained(model, Adam()))
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    assert all(name.endswith(".npy") for name in names)
    arrays = read_raw(path)  # allow_pickle=False would refuse an object array
    assert all(a.dtype != object for a in arrays.values())


# ------------------------------------------------------- zip bomb

BOMB_SCRIPT = """
import sys, tracemalloc
from numpyvae import CheckpointError, load
tracemalloc.start()
for path in sys.argv[1:]:
    tracemalloc.reset_peak()
    try:
        load(path)
        print("loaded", 0)
    except CheckpointError as e:
        print("refused:", e.args[0].replace(" ", "_"), tracemalloc.get_traced_memory()[1])
"""


def _bomb(path, good: Path, name: str, n_bytes: int) -> None:
    """`good`'s members, with `name` replaced (or joined) by n_bytes of
    zeros (a valid .npy of that size), deflated."""
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w", compresslevel=1) as dst:
        for info in src.infolist():
            if info.filename != f"{name}.npy":
                dst.writestr(info, src.read(info))
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "<f4", "fortran_order": False, "shape": (n_bytes // 4,)})
        member = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
        member.compress_type = zipfile.ZIP_DEFLATED
        with dst.open(member, "w", force_zip64=True) as f:
            f.write(header.getvalue())
            chunk = bytes(2**24)
            for _ in range(n_bytes // len(chunk)):
                f.write(chunk)


def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path):
    from numpyvae import VAE
    from numpyvae.reference.optim import Adam
    good = save(VAE(64, 2, hidden=(16,)), tmp_path / "good.npz", optimizer=Adam())
    names = ["params/enc0.W", "trainer/perm"]
    bombs = [tmp_path / f"bomb{i}.npz" for i in range(len(names))]
    for bomb, name in zip(bombs, names, strict=True):
        _bomb(bomb, good, name, 2**28)  # 256 MiB of zeros
        assert bomb.stat().st_size < 2**20
    env = dict(os.environ, PYTHONPATH=str(Path(numpyvae.__file__).parents[1]))
    done = subprocess.run([sys.executable, "-c", BOMB_SCRIPT, *map(str, bombs)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(names)
    for line, bomb, name in zip(lines, bombs, names, strict=True):
        refused, message, peak = line.split()
        assert refused == "refused:" and str(bomb) in message and name in message
        assert int(peak) < 32 * 2**20  # bytes allocated at most, traced


def test_an_array_reshaped_with_the_same_bytes_has_another_checksum():
    """The checksum covers dtype and shape too: a header edited to another
    shape over the same bytes (an array whose shape the config does not
    fix, such as trainer/perm) fails it."""
    a = np.arange(12, dtype=np.int64)
    assert array_sha256(a) != array_sha256(a.reshape(3, 4))
    assert array_sha256(a) != array_sha256(a.view(np.float64))
    assert array_sha256(a) == array_sha256(a.copy())


# ------------------------------------ save refuses what load would refuse
#
# Each variant spoils one part of a good state (a model with Adam moments
# and a trainer stopped mid-epoch) before `save`; save must refuse it with
# the message load would give, and leave the existing file as it was.

def _nan_weight(model, trainer):
    model.params["enc0.W"][0, 0] = np.nan


def _inf_weight(model, trainer):
    model.params["out.b"][1] = np.inf


def _float64_weight(model, trainer):
    model.params["out.W"] = model.params["out.W"].astype(np.float64)


def _transposed_weight(model, trainer):
    model.params["out.W"] = np.ascontiguousarray(model.params["out.W"].T)


def _extra_param(model, trainer):
    model.params["extra.W"] = np.zeros((2, 2), np.float32)


def _missing_param(model, trainer):
    del model.params["out.b"]


def _misshapen_moment(model, trainer):
    trainer.optimizer.m["mu.W"] = np.zeros((1, 1), np.float32)


def _nan_moment(model, trainer):
    trainer.optimizer.v["out.b"][:] = np.nan


def _negative_adam_step(model, trainer):
    trainer.optimizer.t = -1


def _huge_trainer_step(model, trainer):
    trainer.steps_done = 10**30


SAVE_REFUSALS = [
    pytest.param(_nan_weight, r"params/enc0\.W.*NaN", id="nan-weight"),
    pytest.param(_inf_weight, r"params/out\.b.*inf", id="inf-weight"),
    pytest.param(_float64_weight, r"params/out\.W.*dtype", id="mistyped-weight"),
    pytest.param(_transposed_weight, r"params/out\.W.*shape", id="misshapen-weight"),
    pytest.param(_extra_param, r"unexpected.*params/extra\.W", id="extra-param"),
    pytest.param(_missing_param, r"missing.*params/out\.b", id="missing-param"),
    pytest.param(_misshapen_moment, r"optimizer/m\.mu\.W.*shape", id="misshapen-moment"),
    pytest.param(_nan_moment, r"optimizer/v\.out\.b.*NaN", id="nan-moment"),
    pytest.param(_negative_adam_step, r"optimizer/t.*-1", id="negative-adam-step"),
    pytest.param(_huge_trainer_step, r"trainer\.step", id="huge-trainer-step"),
]


@pytest.mark.parametrize("spoil,pattern", SAVE_REFUSALS)
def test_save_refuses_what_load_refuses_and_keeps_the_old_file(tmp_path, spoil, pattern):
    model = make_model()
    trainer = trained(model, Adam(lr=0.01))
    path = save(model, tmp_path / "ckpt.npz", trainer=trainer)
    before = path.read_bytes()
    spoil(model, trainer)
    with pytest.raises(CheckpointError, match=re.escape(str(path))) as info:
        save(model, path, trainer=trainer)
    assert re.search(pattern, str(info.value)), str(info.value)
    assert os.listdir(tmp_path) == ["ckpt.npz"]  # no temporary file left
    assert path.read_bytes() == before


def test_save_refuses_extra_metadata_that_is_not_json(tmp_path):
    path = tmp_path / "ckpt.npz"
    with pytest.raises(CheckpointError, match=re.escape(str(path)) + ".*extra"):
        save(make_model(), path, extra={"score": float("nan")})
    assert os.listdir(tmp_path) == []


# ------------------------------------ trainer and optimizer state on load
#
# Each variant edits the trainer's state (meta.json) or the optimizer's
# arrays of a good checkpoint, checksums recomputed, so that only the
# state check can refuse it; the message names the key.

def _set_trainer(key, value):
    return lambda arrays, meta: meta["trainer"].update({key: value})


def _drop_perm(arrays, meta):
    arrays.pop("trainer/perm")


def _adam_step(t, drop_moments=False):
    def change(arrays, meta):
        arrays["optimizer/t"] = np.array(t, dtype=np.int64)
        if drop_moments:
            for name in [k for k in arrays if k.startswith(("optimizer/m.", "optimizer/v."))]:
                del arrays[name]
    return change


def _perm(make):
    return lambda arrays, meta: arrays.update({"trainer/perm": make(arrays["trainer/perm"])})


def _sums(index, value):
    def change(arrays, meta):
        meta["trainer"]["sums"][index] = value
    return change


def _no_optimizer(arrays, meta):
    meta["optimizer"] = None
    for name in [k for k in arrays if k.startswith("optimizer/")]:
        del arrays[name]


def _delete_trainer_key(key):
    return lambda arrays, meta: meta["trainer"].pop(key)


def _bad_generator_state(arrays, meta):
    meta["trainer"]["rng"]["state"]["state"] = "not a number"


STATE_REFUSALS = [
    pytest.param(_set_trainer("step", 10**30), r"trainer\.step", id="step-1e30"),
    pytest.param(_set_trainer("step", 2**64), r"trainer\.step", id="step-beyond-int64"),
    pytest.param(_set_trainer("step", -1), r"trainer\.step", id="step-negative"),
    pytest.param(_set_trainer("step", 2.0), r"trainer\.step.*integer", id="step-float"),
    pytest.param(_set_trainer("step", True), r"trainer\.step.*integer", id="step-bool"),
    pytest.param(_set_trainer("step", 5), r"trainer\.step", id="step-past-the-epoch"),
    pytest.param(_drop_perm, r"trainer\.step", id="step-without-perm"),
    pytest.param(_set_trainer("epoch", 10**30), r"trainer\.epoch", id="epoch-1e30"),
    pytest.param(_set_trainer("epoch", -1), r"trainer\.epoch", id="epoch-negative"),
    pytest.param(_set_trainer("epoch", "0"), r"trainer\.epoch.*integer", id="epoch-string"),
    pytest.param(_set_trainer("batch_size", 0), r"trainer\.batch_size", id="batch-size-0"),
    pytest.param(_set_trainer("history", {}), r"trainer\.history", id="history-not-a-list"),
    pytest.param(_set_trainer("sums", [0.0]), r"trainer\.sums", id="sums-too-short"),
    pytest.param(_sums(3, 0), r"trainer\.sums", id="sums-count-disagrees"),
    pytest.param(_sums(0, "lots"), r"trainer\.sums", id="sums-not-numbers"),
    pytest.param(_set_trainer("rng", {"bit_generator": "Nope"}), r"trainer\.rng",
                 id="rng-unknown"),
    pytest.param(_bad_generator_state, r"trainer\.rng", id="rng-state-broken"),
    pytest.param(_set_trainer("base_lr", -1.0), r"trainer\.base_lr", id="base-lr-negative"),
    pytest.param(_set_trainer("objective", "bogus"), r"objective", id="objective-unknown"),
    pytest.param(_delete_trainer_key("step"), r"trainer\.step.*missing", id="step-missing"),
    pytest.param(_no_optimizer, r"optimizer", id="trainer-without-optimizer"),
    pytest.param(_perm(lambda p: np.zeros_like(p)), r"trainer/perm.*permutation",
                 id="perm-repeats"),
    pytest.param(_perm(lambda p: p + 1), r"trainer/perm.*permutation", id="perm-off-by-one"),
    pytest.param(_perm(lambda p: p.reshape(2, -1)), r"trainer/perm.*1-d", id="perm-2d"),
    pytest.param(_perm(lambda p: p[:0]), r"trainer/perm", id="perm-empty"),
    pytest.param(_adam_step(-1), r"optimizer/t.*-1", id="adam-step-negative"),
    pytest.param(_adam_step(-1, drop_moments=True), r"optimizer/t.*-1",
                 id="adam-step-negative-no-moments"),
]


@pytest.mark.parametrize("change,pattern", STATE_REFUSALS)
def test_an_invalid_trainer_or_optimizer_state_is_refused_naming_the_key(
        tmp_path, good_checkpoint, change, pattern):
    path = tmp_path / "ckpt.npz"
    path.write_bytes(good_checkpoint)
    rewrite(path, change)
    with pytest.raises(CheckpointError, match=re.escape(str(path))) as info:
        load_checkpoint(path)
    assert re.search(pattern, str(info.value)), str(info.value)


def test_a_checkpoint_at_an_epoch_boundary_and_a_fresh_adam_load(tmp_path):
    """The state checks accept every state a run writes: between epochs (no
    perm, step 0), after the last step of an epoch, and Adam before a step."""
    model = make_model()
    trainer = trained(model, Adam(lr=0.01), steps=4)  # all 4 steps, epoch not closed
    resumed = trainer_from_checkpoint(load_checkpoint(save(model, tmp_path / "a", trainer=trainer)))
    assert resumed.steps_done == 4 and resumed.sums == trainer.sums
    trainer.end_epoch()
    assert load_checkpoint(save(model, tmp_path / "b", trainer=trainer)).trainer_state["epoch"] == 1
    fresh = Trainer(make_model(), Adam(), batch_size=4)
    assert load_checkpoint(save(fresh.model, tmp_path / "c", trainer=fresh)).optimizer.t == 0


# ---------------------------------------------- every array under its checksum

@pytest.mark.parametrize("name,value", [
    ("optimizer/t", lambda a: np.array(0, dtype=np.int64)),
    ("optimizer/t", lambda a: np.array(4, dtype=np.int64)),
    ("trainer/perm", lambda a: a[::-1].copy()),
    ("trainer/perm", lambda a: np.roll(a, 1)),
], ids=["adam-step-to-0", "adam-step-to-4", "perm-reversed", "perm-rolled"])
def test_a_changed_integer_array_fails_its_checksum(tmp_path, good_checkpoint, name, value):
    path = tmp_path / "ckpt.npz"
    path.write_bytes(good_checkpoint)
    rewrite(path, lambda arrays, meta: arrays.update({name: value(arrays[name])}),
            rehash=False)
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: {name}") + ".*checksum"):
        load_checkpoint(path)


def test_every_array_of_a_checkpoint_is_in_its_checksum_table(good_checkpoint, tmp_path):
    path = tmp_path / "ckpt.npz"
    path.write_bytes(good_checkpoint)
    arrays = read_raw(path)
    meta = json.loads(arrays.pop("meta.json").tobytes())
    arrays.pop("meta.sha256")
    assert {"optimizer/t", "trainer/perm"} <= set(arrays)
    assert meta["sha256"] == {k: array_sha256(v) for k, v in arrays.items()}


# ---------------------------------------------- a path without .npz

def test_load_finds_the_file_that_save_wrote_without_a_suffix(tmp_path):
    model = make_model()
    path = save(model, tmp_path / "model")
    assert path == tmp_path / "model.npz" and os.listdir(tmp_path) == ["model.npz"]
    assert_same_model(model, load(tmp_path / "model"))
    assert_same_model(model, load(str(tmp_path / "model")))
    assert_same_model(model, load_checkpoint(tmp_path / "model").model)


def test_load_reads_an_existing_file_by_its_exact_name(tmp_path):
    model = make_model()
    (tmp_path / "weights").write_bytes(save(model, tmp_path / "model.npz").read_bytes())
    assert_same_model(model, load(tmp_path / "weights"))


def test_load_of_a_missing_name_without_suffix_names_both_paths(tmp_path):
    with pytest.raises(CheckpointError, match=re.escape(str(tmp_path / "nope")) + ".*nope.npz"):
        load(tmp_path / "nope")


# ---------------------------------------------- only regular files

def test_a_device_is_not_a_checkpoint():
    if not os.path.exists(os.devnull) or os.name != "posix":
        pytest.skip("needs /dev/null")
    with pytest.raises(CheckpointError, match=re.escape(os.devnull) + ".*not a regular file"):
        load(os.devnull)


def test_a_folder_is_refused_as_not_a_regular_file(tmp_path):
    with pytest.raises(CheckpointError, match=re.escape(str(tmp_path)) + ".*not a regular file"):
        load(tmp_path)


FIFO_SCRIPT = """
import sys
from numpyvae import CheckpointError, load
try:
    load(sys.argv[1])
except CheckpointError as e:
    print(e)
"""


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_a_fifo_is_refused_without_hanging(tmp_path):
    """Run in a child with a timeout, so that a regression fails, not hangs;
    `numpyvae sample` on a run folder whose checkpoint.npz is a FIFO too."""
    run = tmp_path / "run"
    run.mkdir()
    fifo = run / "checkpoint.npz"
    os.mkfifo(fifo)
    env = dict(os.environ, PYTHONPATH=str(Path(numpyvae.__file__).parents[1]))
    done = subprocess.run([sys.executable, "-c", FIFO_SCRIPT, str(fifo)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert str(fifo) in done.stdout and "not a regular file" in done.stdout
    cli = subprocess.run([sys.executable, "-m", "numpyvae", "sample", str(run),
                          "--out", str(tmp_path / "s.npy")], env=env,
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode != 0
    assert str(fifo) in cli.stderr + cli.stdout and "not a regular file" in cli.stderr + cli.stdout
