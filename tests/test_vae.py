"""Tests for numpyvae/vae.py: the public VAE class -- parameter names,
order, shapes and dtypes; what each method returns; reproducibility from
a seed or a Generator; and the errors a user meets for bad arguments or
bad data."""

import math

import numpy as np
import pytest

import numpyvae
from numpyvae import VAE
from numpyvae.vae import as_generator

D_X, D_Z = 6, 3


def data(n=5, d=D_X, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).random((n, d)).astype(dtype)


# ------------------------------------------------------- parameters

def test_params_are_named_in_forward_order():
    model = VAE(D_X, D_Z, hidden=(7, 5), rng=0)
    assert list(model.params) == [
        "enc0.W", "enc0.b", "enc1.W", "enc1.b", "mu.W", "mu.b", "log_var.W", "log_var.b",
        "dec0.W", "dec0.b", "dec1.W", "dec1.b", "out.W", "out.b"]


def test_fixed_posterior_has_no_log_var_head():
    model = VAE(D_X, D_Z, hidden=(4,), posterior="fixed", rng=0)
    assert list(model.params) == ["enc0.W", "enc0.b", "mu.W", "mu.b",
                                  "dec0.W", "dec0.b", "out.W", "out.b"]


def test_linear_model_params():
    model = VAE(D_X, D_Z, hidden=(), rng=0)
    assert list(model.params) == ["mu.W", "mu.b", "log_var.W", "log_var.b", "out.W", "out.b"]
    assert model.params["out.W"].shape == (D_Z, D_X)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_param_shapes_are_in_out_and_the_decoder_mirrors(dtype):
    model = VAE(D_X, D_Z, hidden=(7, 5), dtype=dtype, rng=0)
    shapes = {k: v.shape for k, v in model.params.items()}
    assert shapes == {
        "enc0.W": (6, 7), "enc0.b": (7,), "enc1.W": (7, 5), "enc1.b": (5,),
        "mu.W": (5, 3), "mu.b": (3,), "log_var.W": (5, 3), "log_var.b": (3,),
        "dec0.W": (3, 5), "dec0.b": (5,), "dec1.W": (5, 7), "dec1.b": (7,),
        "out.W": (7, 6), "out.b": (6,)}
    assert all(p.dtype == np.dtype(dtype) for p in model.params.values())
    assert model.dtype == np.dtype(dtype)
    assert shapes == model.config.param_shapes()


def test_weights_are_random_and_biases_start_at_zero():
    model = VAE(D_X, D_Z, hidden=(7,), rng=0)
    for name, p in model.params.items():
        if name.endswith(".b"):
            np.testing.assert_array_equal(p, 0.0)
        else:
            assert np.unique(p).size == p.size, name


# ---------------------------------------------------------- methods

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("posterior", ["diagonal", "fixed"])
def test_methods_return_shapes_and_dtypes(dtype, likelihood, posterior):
    model = VAE(D_X, D_Z, hidden=(7,), likelihood=likelihood, posterior=posterior,
                dtype=dtype, rng=0)
    x = data(dtype=dtype)
    mu, log_var = model.encode(x)
    assert mu.shape == log_var.shape == (5, D_Z)
    z = np.zeros((4, D_Z), dtype=dtype)
    outputs = {"mu": mu, "log_var": log_var, "decode": model.decode(z),
               "reconstruct": model.reconstruct(x), "reconstruct_rng": model.reconstruct(x, rng=1),
               "sample": model.sample(4), "elbo": model.elbo(x)}
    for name, value in outputs.items():
        assert value.dtype == np.dtype(dtype), name
    assert outputs["decode"].shape == outputs["sample"].shape == (4, D_X)
    assert outputs["reconstruct"].shape == outputs["reconstruct_rng"].shape == (5, D_X)
    assert outputs["elbo"].shape == (5,)
    assert np.isfinite(outputs["elbo"]).all()
    terms = model.elbo_terms(x, rng=3)
    np.testing.assert_array_equal(model.elbo(x, rng=3), terms["log_lik"] - terms["kl"])


def test_decode_gives_probabilities_for_bernoulli():
    model = VAE(D_X, D_Z, hidden=(7,), rng=0)
    z = 5.0 * np.random.default_rng(0).standard_normal((50, D_Z)).astype(np.float32)
    p = model.decode(z)
    assert ((p >= 0) & (p <= 1)).all()
    assert p.min() < 0.5 < p.max()
    s = model.sample(20, rng=0)
    assert ((s >= 0) & (s <= 1)).all()


def test_decode_gives_the_raw_mean_for_gaussian():
    model = VAE(D_X, D_Z, hidden=(), likelihood="gaussian", rng=0)
    z = np.random.default_rng(0).standard_normal((5, D_Z)).astype(np.float32)
    np.testing.assert_allclose(model.decode(z), z @ model.params["out.W"] + model.params["out.b"],
                               rtol=1e-6)


def test_reconstruct_without_rng_decodes_the_mean():
    model = VAE(D_X, D_Z, hidden=(7,), rng=0)
    x = data()
    np.testing.assert_array_equal(model.reconstruct(x), model.decode(model.encode(x)[0]))
    np.testing.assert_array_equal(model.reconstruct(x), model.reconstruct(x))
    assert not np.array_equal(model.reconstruct(x, rng=1), model.reconstruct(x))


@pytest.mark.parametrize("delta,expected", [(0.5, 2 * math.log(0.5)), (0.0, -np.inf)])
def test_encode_reports_log_delta_squared_for_the_fixed_posterior(delta, expected):
    model = VAE(D_X, D_Z, hidden=(4,), posterior="fixed", delta=delta, rng=0)
    _, log_var = model.encode(data())
    np.testing.assert_allclose(log_var, expected)


def test_elbo_terms_sign_conventions():
    model = VAE(D_X, D_Z, hidden=(7,), rng=0)
    terms = model.elbo_terms(data(), rng=0)
    assert (terms["log_lik"] < 0).all()  # log of a probability mass below 1
    assert (terms["kl"] >= 0).all()


# ------------------------------------------------- the model protocol

def test_vae_follows_the_model_protocol():
    from numpyvae.protocol import Model
    model = VAE(D_X, D_Z, hidden=(4,), rng=0)
    assert isinstance(model, Model)
    assert model.config.noise_dim == model.config.latent_dim == D_Z


@pytest.mark.parametrize("posterior", ["diagonal", "fixed"])
def test_the_reference_methods_are_the_pure_functions(posterior):
    from numpyvae.reference import vae as reference
    model = VAE(D_X, D_Z, hidden=(4,), posterior=posterior,
                delta=0.7 if posterior == "fixed" else None, dtype="float64", rng=0)
    x = data(dtype=np.float64)
    eps = np.random.default_rng(1).standard_normal((3, 5, D_Z))
    log_w, terms, cache = model.log_weights(x, eps)
    expected = reference.log_weights_forward(model.params, x, eps, model.config)
    np.testing.assert_array_equal(log_w, expected[0])
    dlog_w = np.random.default_rng(2).standard_normal((3, 5))
    grads, grads2 = (model.log_weights_backward(dlog_w, cache),
                     reference.log_weights_backward(dlog_w, expected[2]))
    assert list(grads) == list(model.params)
    assert all(np.array_equal(grads[k], grads2[k]) for k in grads)
    np.testing.assert_array_equal(model.prior_log_weights(x, eps),
                                  reference.prior_log_weights(model.params, x, eps,
                                                              model.config))
    for objective, noise in (("elbo", eps[0]), ("iwae", eps)):
        loss, terms, grads = model.forward_backward(x, noise, 1.0, objective)
        loss2, grads2 = model.loss_and_grads(x, noise, objective=objective)
        assert loss == loss2 and all(np.array_equal(grads[k], grads2[k]) for k in grads)
    assert model.posterior_means(x)[0].shape == (5, D_Z)
    np.testing.assert_array_equal(model.posterior_means(x)[0], model.encode(x)[0])


def test_the_two_objectives_of_loss_and_grads():
    model = VAE(D_X, D_Z, hidden=(4,), likelihood="gaussian", dtype="float64", rng=0)
    x = data(dtype=np.float64)
    eps = np.random.default_rng(1).standard_normal((4, 5, D_Z))
    from numpyvae.reference.vae import bound_loss_forward, loss_forward
    assert model.loss_and_grads(x, eps, objective="iwae")[0] == bound_loss_forward(
        model.params, x, eps, model.config, "iwae")[0]
    assert model.loss_and_grads(x, eps[0], 2.0)[0] == loss_forward(
        model.params, x, eps[0], model.config, 2.0)[0]
    iwae = model.loss_and_grads(x, eps, objective="iwae")[0]
    elbo = bound_loss_forward(model.params, x, eps, model.config, "elbo")[0]
    assert iwae < elbo  # -L_k <= -sampled ELBO on the same samples


def test_as_noise_validates_and_converts():
    model = VAE(D_X, D_Z, hidden=(4,), rng=0)
    eps = np.random.default_rng(0).standard_normal((2, 5, D_Z))  # float64
    out = model.as_noise(eps)
    assert out.shape == (2, 5, D_Z) and out.dtype == np.float32
    np.testing.assert_array_equal(out, eps.astype(np.float32))
    assert model.as_noise(eps[0]).shape[-2:] == (5, D_Z)  # one sample
    with pytest.raises(ValueError, match=r"^eps: expected shape \(n, 3\) or \(k, n, 3\)"):
        model.as_noise(eps[..., :2])
    with pytest.raises(ValueError, match="^eps:"):
        model.as_noise(eps[0, 0])
    with pytest.raises(ValueError, match="^eps:"):
        model.as_noise(eps[None])
    bad = eps.copy()
    bad[1, 0, 2] = np.nan
    with pytest.raises(ValueError, match="^noise: expected finite values"):
        model.as_noise(bad, "noise")
    with pytest.raises(TypeError, match="^eps:"):
        model.as_noise(eps.astype(np.int32))
    with pytest.raises(TypeError, match="^eps:"):
        model.as_noise("eps")


def test_check_density_refuses_a_point_mass_naming_what_needs_it():
    point = VAE(D_X, D_Z, hidden=(4,), posterior="fixed", delta=0.0, rng=0)
    with pytest.raises(ValueError, match="^model: the IWAE bound needs the density.*delta=0"):
        point.check_density("the IWAE bound")
    VAE(D_X, D_Z, hidden=(4,), posterior="fixed", delta=0.5, rng=0).check_density("x")
    VAE(D_X, D_Z, hidden=(4,), rng=0).check_density("x")


# --------------------------------------------------- reproducibility

def test_int_seed_and_generator_give_the_same_model():
    a = VAE(D_X, D_Z, hidden=(7,), rng=3)
    b = VAE(D_X, D_Z, hidden=(7,), rng=np.random.default_rng(3))
    c = VAE(D_X, D_Z, hidden=(7,), rng=4)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert not np.array_equal(a.params["enc0.W"], c.params["enc0.W"])


def test_default_rng_is_seed_zero():
    a, b = VAE(D_X, D_Z, hidden=(7,)), VAE(D_X, D_Z, hidden=(7,), rng=0)
    np.testing.assert_array_equal(a.params["out.W"], b.params["out.W"])


def test_methods_that_draw_are_reproducible():
    model = VAE(D_X, D_Z, hidden=(7,), rng=0)
    x = data()
    np.testing.assert_array_equal(model.sample(4, rng=5), model.sample(4, rng=5))
    np.testing.assert_array_equal(model.sample(4, rng=5),
                                  model.sample(4, rng=np.random.default_rng(5)))
    np.testing.assert_array_equal(model.elbo(x, rng=7), model.elbo(x, rng=7))
    np.testing.assert_array_equal(model.reconstruct(x, rng=7), model.reconstruct(x, rng=7))
    assert not np.array_equal(model.sample(4, rng=5), model.sample(4, rng=6))
    # without rng the model's own generator advances: two draws differ,
    # but two identically built models draw the same sequence
    twin = VAE(D_X, D_Z, hidden=(7,), rng=0)
    first = model.sample(4)
    assert not np.array_equal(first, model.sample(4))
    np.testing.assert_array_equal(first, twin.sample(4))


def test_from_config_rebuilds_the_same_model():
    model = VAE(D_X, D_Z, hidden=(7, 5), likelihood="gaussian", sigma=0.3,
                posterior="fixed", delta=0.2, dtype="float64", rng=1)
    copy = VAE.from_config(model.config.to_dict(), model.params)
    assert copy.config == model.config
    x = data(dtype=np.float64)
    np.testing.assert_array_equal(copy.encode(x)[0], model.encode(x)[0])
    assert "gaussian" in repr(model) and "fixed" in repr(model)


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True])
def test_bad_rng_is_refused(bad):
    with pytest.raises(TypeError, match="rng"):
        as_generator(bad)
    with pytest.raises(TypeError, match="rng"):
        VAE(D_X, D_Z, rng=bad)


# ------------------------------------------------ constructor errors

@pytest.mark.parametrize("kwargs,error,pattern", [
    (dict(latent_dim=0), ValueError, "latent_dim.*>= 1.*0"),
    (dict(input_dim=0), ValueError, "input_dim"),
    (dict(latent_dim=2.5), TypeError, "latent_dim.*integer"),
    (dict(hidden=5), TypeError, "hidden"),
    (dict(hidden=(4, 0)), ValueError, "hidden"),
    (dict(likelihood="poisson"), ValueError, "likelihood.*bernoulli.*gaussian.*poisson"),
    (dict(posterior="full"), ValueError, "posterior.*diagonal.*fixed.*full"),
    (dict(activation="gelu"), ValueError, "activation.*relu.*gelu"),
    (dict(likelihood="gaussian", sigma=0.0), ValueError, "sigma.*> 0"),
    (dict(likelihood="gaussian", sigma=-1.0), ValueError, "sigma"),
    (dict(likelihood="gaussian", sigma=float("nan")), ValueError, "sigma"),
    (dict(sigma=1.0), ValueError, "sigma.*gaussian"),
    (dict(posterior="fixed", delta=-0.1), ValueError, "delta.*>= 0"),
    (dict(delta=0.5), ValueError, "delta.*fixed"),
    (dict(dtype="int32"), TypeError, "dtype.*float32.*int32"),
    (dict(dtype=int), TypeError, "dtype"),
    (dict(dtype="float16"), TypeError, "dtype"),
    (dict(dtype="banana"), TypeError, "dtype"),
], ids=lambda v: str(v) if isinstance(v, dict) else "")
def test_bad_constructor_arguments_name_the_argument(kwargs, error, pattern):
    args = dict(input_dim=D_X, latent_dim=D_Z, hidden=(4,))
    args.update(kwargs)
    with pytest.raises(error, match=pattern):
        VAE(**args)


# ------------------------------------------------------- data errors

def test_images_must_be_flattened():
    model = VAE(784, 2, hidden=(8,), rng=0)
    images = np.zeros((3, 28, 28), dtype=np.float32)
    with pytest.raises(ValueError, match=r"x: expected shape \(n, 784\).*flatten"):
        model.encode(images)
    assert model.encode(images.reshape(3, -1))[0].shape == (3, 2)


@pytest.mark.parametrize("dtype", [np.uint8, np.int64])
def test_integer_data_is_refused_with_a_hint(dtype):
    model = VAE(D_X, D_Z, hidden=(4,), rng=0)
    with pytest.raises(TypeError, match="x: expected floating-point data.*/ 255"):
        model.encode(np.zeros((2, D_X), dtype=dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_integer_latents_and_noise_get_a_hint_of_their_own(dtype):
    """The uint8-image hint is for data x; z and eps are told the float dtype."""
    model = VAE(D_X, D_Z, hidden=(4,), dtype=dtype, rng=0)
    calls = {"z": lambda a: model.decode(a), "eps": lambda a: model.elbo_terms(data(), eps=a)}
    for name, call in calls.items():
        with pytest.raises(TypeError) as info:
            call(np.zeros((5, D_Z), dtype=int))
        message = str(info.value)
        assert message.startswith(f"{name}: expected floating-point data"), message
        assert f"{name}.astype('{dtype}')" in message, message
        assert "255" not in message and "uint8" not in message and "image" not in message


@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_nonfinite_data_is_refused(value, likelihood):
    model = VAE(D_X, D_Z, hidden=(4,), likelihood=likelihood, rng=0)
    x = data()
    x[1, 2] = value
    with pytest.raises(ValueError, match=r"x: expected finite values.*\(1, 2\)"):
        model.encode(x)
    with pytest.raises(ValueError, match="x: expected finite"):
        model.elbo(x)


@pytest.mark.parametrize("value", [-0.01, 1.5])
def test_bernoulli_data_must_lie_in_the_unit_interval(value):
    model = VAE(D_X, D_Z, hidden=(4,), rng=0)
    x = data()
    x[0, 0] = value
    with pytest.raises(ValueError, match=r"x: expected values in \[0, 1\]"):
        model.encode(x)
    gaussian = VAE(D_X, D_Z, hidden=(4,), likelihood="gaussian", rng=0)
    assert gaussian.encode(x)[0].shape == (5, D_Z)


@pytest.mark.parametrize("bad,error,pattern", [
    (np.zeros((5, D_X + 1), np.float32), ValueError, r"x: expected shape \(n, 6\), got \(5, 7\)"),
    (np.zeros(D_X, np.float32), ValueError, r"x: expected shape \(n, 6\)"),
    (np.zeros((0, D_X), np.float32), ValueError, "x: expected at least one example"),
    (np.zeros((2, D_X), np.complex64), TypeError, "x: expected real floating-point"),
    (np.zeros((2, D_X), bool), TypeError, "x: expected floating-point"),
    ("not an array", TypeError, "x: expected a numpy array"),
], ids=["features", "1d", "empty", "complex", "bool", "str"])
def test_bad_data_is_refused(bad, error, pattern):
    model = VAE(D_X, D_Z, hidden=(4,), rng=0)
    with pytest.raises(error, match=pattern):
        model.encode(bad)


def test_bad_latents_and_counts():
    model = VAE(D_X, D_Z, hidden=(4,), rng=0)
    with pytest.raises(ValueError, match=r"z: expected shape \(n, 3\)"):
        model.decode(np.zeros((2, D_Z + 1), np.float32))
    with pytest.raises(ValueError, match="n: expected an integer >= 1"):
        model.sample(0)
    x = data()
    with pytest.raises(ValueError, match="eps"):
        model.loss_and_grads(x, np.zeros((4, D_Z), np.float32))
    with pytest.raises(ValueError, match="beta"):
        model.loss_and_grads(x, np.zeros((5, D_Z), np.float32), beta=-1.0)


def test_float64_data_into_a_float32_model_is_converted():
    model = VAE(D_X, D_Z, hidden=(4,), rng=0)
    x64 = data(dtype=np.float64)
    x32 = x64.astype(np.float32)
    mu, log_var = model.encode(x64)
    assert mu.dtype == log_var.dtype == np.float32
    np.testing.assert_array_equal(mu, model.encode(x32)[0])
    eps = np.random.default_rng(0).standard_normal((5, D_Z))  # float64 too
    loss, grads = model.loss_and_grads(x64, eps)
    assert loss == model.loss_and_grads(x32, eps.astype(np.float32))[0]
    assert all(g.dtype == np.float32 for g in grads.values())
    assert model.elbo(x64, rng=0).dtype == np.float32
    assert model.encode(x64.tolist())[0].dtype == np.float32  # a list of floats works too


def test_public_names():
    for name in numpyvae.__all__:
        assert hasattr(numpyvae, name), name
    assert issubclass(numpyvae.CheckpointError, ValueError)
    assert issubclass(numpyvae.TrainingDiverged, ValueError)
