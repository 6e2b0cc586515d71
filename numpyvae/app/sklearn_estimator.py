"""`VAEEstimator`: a VAE (one or two stochastic layers) behind
scikit-learn's estimator conventions.

The conventions are written out by hand, so numpyvae never imports
scikit-learn: `__init__` stores its arguments unchanged, `get_params` /
`set_params` read and write them, `fit` validates the data, trains and
returns ``self``, fitted state ends in ``_``, and `score` is higher-is-
better (the mean ELBO, a lower bound on log p(x) in nats). `transform`
gives the posterior means mu = lambda_phi(x), `inverse_transform` the
decoder means mu_theta(z). The model is reached through the model
protocol (protocol.py) only, so ``latent_dims=(d1, d2)`` (a
`HierarchicalVAE`) works everywhere the one-layer `VAE` does. `clone`,
`Pipeline`, `GridSearchCV` and `check_estimator` of scikit-learn accept
it (docs/sklearn.md). Reading the data the scikit-learn way, the
Gaussian likelihood's feature scaling and the random streams behind
``random_state`` live in sklearn_input.py.
"""

from __future__ import annotations

import hashlib
import inspect

import numpy as np
from numpy.typing import NDArray

from .._validation import as_data, check_int
from ..checkpoint import load_checkpoint, save
from ..hierarchical_vae import HierarchicalVAE, make_hierarchy_config
from ..reference.bounds import iwae_bound_forward
from ..reference.optim import Adam
from ..train import train
from ..trainer import Trainer, trainer_from_checkpoint
from ..vae import VAE
from .sklearn_input import (
    INIT_STREAM,
    SAMPLE_STREAM,
    SCORE_STREAM,
    TRAIN_STREAM,
    as_real_array,
    check_features,
    check_fits_dtype,
    feature_scaling,
    seed_entropy,
    standardize,
    stream,
)

Array = NDArray[np.floating]


class NotFittedError(ValueError, AttributeError):
    """A method that needs a fitted estimator was called before `fit`.

    A ValueError and an AttributeError, like scikit-learn's NotFittedError.

    Examples
    --------
    >>> try:
    ...     VAEEstimator().transform(np.zeros((1, 4)))
    ... except NotFittedError as e:
    ...     print(isinstance(e, ValueError), isinstance(e, AttributeError))
    True True
    """


class VAEEstimator:
    """A variational autoencoder as a scikit-learn transformer.

    Parameters
    ----------
    latent_dim, hidden, activation, likelihood, sigma, posterior, delta, dtype
        The architecture, as for `numpyvae.VAE` (``input_dim`` is taken
        from the data at `fit`).
    beta : float
        KL weight of the training loss (1 trains on the ELBO).
    epochs : int
        Passes over the data made by `fit`.
    batch_size : int
        Examples per Adam step; ``min(batch_size, n)`` is used.
    learning_rate : float
        Adam's step size.
    random_state : None, int or numpy.random.Generator
        Seeds the initial weights, the training noise, `score_samples`
        and `sample`, each from its own stream. None is seed 0, as
        everywhere in numpyvae; a Generator is copied, never advanced.
    score_k : int
        Samples per example of `score_samples`: 1 is the ELBO, K > 1 the
        importance-weighted bound (tighter, K times the work).
    latent_dims : None or (int, int)
        None: one stochastic layer of `latent_dim` units (`numpyvae.VAE`).
        A pair (d1, d2): two stochastic layers z1 (next to x; what
        `transform` returns) and z2 (`numpyvae.HierarchicalVAE`), which
        then replace `latent_dim`; that model has a Bernoulli decoder,
        diagonal posteriors (`sigma`, `posterior` and `delta` keep their
        defaults) and trains with beta = 1.
    hidden2 : None or sequence of int
        With `latent_dims`: the hidden widths between z1 and z2 (None: two
        layers of d2 units, as in the IWAE paper and ``numpyvae train``).

    Attributes
    ----------
    model_ : numpyvae.VAE or numpyvae.HierarchicalVAE
    trainer_ : numpyvae.Trainer
        Its optimizer, generator and epoch count; `partial_fit` goes on.
    history_ : list of dict
        One row per epoch trained (see `numpyvae.fit`).
    n_features_in_ : int
    mean_, scale_ : ndarray, one entry per feature
        For likelihood="gaussian": each feature's mean and standard
        deviation at the first `fit` (a constant feature gets scale 1).
        The VAE sees (X - mean_) / scale_; None for "bernoulli".

    Notes
    -----
    Data follow scikit-learn's conventions, not `numpyvae.VAE`'s: lists,
    DataFrames and int/bool arrays are converted to float (VAE refuses
    integer arrays, so that uint8 images are not fed unscaled), then to
    `dtype`, so outputs are `dtype` whatever the input's float type.
    Values too large for `dtype` (above 3.4e38 for float32) are refused,
    by `fit` and by `score` alike. For likelihood="bernoulli", X must lie
    in [0, 1].

    With likelihood="gaussian" the features are standardized before they
    reach the VAE, as a user of scikit-learn's regressors expects raw
    features to work: `sigma` is then in units of each feature's
    standard deviation, `inverse_transform` and `sample` return data in
    the original units, and `score_samples` is log p(x) of the original
    units: the bound for the standardized row minus sum_j log scale_j
    (the change of variables x = mean_ + scale_ * u). `fit` standardizes
    X, converted to `dtype`, exactly as `score` does, so whatever `fit`
    accepts, `score` accepts; rows that standardize beyond `dtype` (far
    from the data at `fit`) are refused.

    `score_samples` draws each example's noise from a generator seeded
    by `random_state` and the example's own values, so an example's
    score does not depend on the other rows of X or on its position.

    Examples
    --------
    >>> X = np.random.default_rng(0).random((32, 6))
    >>> vae = VAEEstimator(hidden=(8,), epochs=2, random_state=0).fit(X)
    >>> vae.transform(X).shape, vae.inverse_transform(np.zeros((1, 2))).shape
    ((32, 2), (1, 6))
    """

    def __init__(self, latent_dim=2, hidden=(128,), activation="relu",
                 likelihood="bernoulli", sigma=None, posterior="diagonal", delta=None,
                 beta=1.0, epochs=20, batch_size=128, learning_rate=1e-3,
                 random_state=None, dtype="float32", score_k=1, latent_dims=None,
                 hidden2=None):
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.activation = activation
        self.likelihood = likelihood
        self.sigma = sigma
        self.posterior = posterior
        self.delta = delta
        self.beta = beta
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.random_state = random_state
        self.dtype = dtype
        self.score_k = score_k
        self.latent_dims = latent_dims
        self.hidden2 = hidden2

    @classmethod
    def _get_param_names(cls) -> list[str]:
        """The names of `__init__`'s arguments, which are the parameters."""
        signature = inspect.signature(cls.__init__)
        return [p.name for p in signature.parameters.values() if p.name != "self"]

    def get_params(self, deep: bool = True) -> dict:
        """The parameters as a dict (no parameter is an estimator, so
        `deep` changes nothing)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params) -> "VAEEstimator":
        """Set parameters by name; they take effect at the next `fit`."""
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"Invalid parameter {name!r} for estimator VAEEstimator. "
                                 f"Valid parameters are: {valid!r}.")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        default = inspect.signature(type(self).__init__).parameters
        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if not (type(v) is type(default[k].default) and v == default[k].default)]
        return f"VAEEstimator({', '.join(changed)})"

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    def __sklearn_tags__(self):
        """scikit-learn's tags. Only scikit-learn calls this method, so the
        import below runs only where scikit-learn is installed."""
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags
        try:
            out_dtype = np.dtype(self.dtype).name
        except TypeError:
            out_dtype = "float32"
        return Tags(estimator_type="density_estimator", target_tags=TargetTags(required=False),
                    transformer_tags=TransformerTags(preserves_dtype=[out_dtype]),
                    input_tags=InputTags(positive_only=self.likelihood == "bernoulli"))

    def _check_is_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise NotFittedError("This VAEEstimator instance is not fitted yet. Call 'fit' "
                                 "with appropriate arguments before using this estimator.")

    def _validate_X(self, X, dtype, n_features: int | None) -> Array:
        """X as `dtype`, refused (ValueError naming X) if its values do not
        fit in `dtype`: what fit accepts, the fitted model can score."""
        a = as_real_array(X, "X")
        bernoulli = self.likelihood == "bernoulli"
        check_features(a, "X", n_features, bernoulli)
        check_fits_dtype(a, "X", dtype)
        return as_data(a, "X", dtype, n_features, unit_interval=bernoulli)

    def _X(self, X) -> Array:
        """Validated X for a fitted model, in the model's units."""
        self._check_is_fitted()
        return self._to_model(self._validate_X(X, self.model_.dtype, self.n_features_in_))

    def _to_model(self, x: Array) -> Array:
        """(x - mean_) / scale_ for the Gaussian likelihood, else x;
        `fit` trains on exactly what this gives for its X."""
        if self.mean_ is None or self.scale_ is None:  # set together
            return x
        return standardize(x, self.mean_, self.scale_, "X")

    def _from_model(self, u: Array) -> Array:
        """mean_ + scale_ * u for the Gaussian likelihood, else u."""
        if self.mean_ is None or self.scale_ is None:  # set together
            return u
        return (self.mean_ + self.scale_ * u).astype(u.dtype, copy=False)

    def _start(self, X) -> Array:
        """Validate X, build a new model and trainer; returns X in the
        model's units and dtype, computed as `_X` computes it for scoring
        (X in the model's dtype, then standardized), so that whatever fit
        accepts, score accepts."""
        x = self._validate_X(X, np.float64, None)  # the dtype is checked by the model below
        model = self._new_model(x.shape[1])
        check_fits_dtype(x, "X", model.dtype)
        x = x.astype(model.dtype, copy=False)
        mean = scale = None
        if self.likelihood == "gaussian":
            mean, scale = feature_scaling(x)
            x = standardize(x, mean, scale, "X")
        batch_size = check_int(self.batch_size, "batch_size", 1)
        trainer = Trainer(model, Adam(lr=self.learning_rate), beta=self.beta,
                          batch_size=batch_size, rng=stream(self.random_state, TRAIN_STREAM))
        self.model_, self.trainer_, self.n_features_in_ = model, trainer, x.shape[1]
        self.mean_, self.scale_ = mean, scale
        self.history_: list[dict] = []
        return x

    def _new_model(self, input_dim: int):
        """A `VAE`, or with `latent_dims` a `HierarchicalVAE`, its weights
        from the init stream; the model validates its own arguments."""
        rng = stream(self.random_state, INIT_STREAM)
        if self.latent_dims is None:
            if self.hidden2 is not None:
                raise ValueError(f"hidden2: only used with latent_dims (two stochastic "
                                 f"layers); leave it None, got {self.hidden2!r}")
            return VAE(input_dim, self.latent_dim, self.hidden, self.activation,
                       self.likelihood, self.sigma, self.posterior, self.delta, self.dtype,
                       rng=rng)
        one_layer_only = {"sigma": (self.sigma, None), "posterior": (self.posterior, "diagonal"),
                          "delta": (self.delta, None)}
        for name, (value, default) in one_layer_only.items():
            if value != default:
                raise ValueError(f"{name}: the two-layer model (latent_dims) has diagonal "
                                 f"Gaussian posteriors and a Bernoulli decoder; leave {name}="
                                 f"{default!r}, got {value!r}")
        d2 = make_hierarchy_config(input_dim, self.latent_dims).latent_dims[1]  # validated
        hidden2 = (d2, d2) if self.hidden2 is None else self.hidden2
        return HierarchicalVAE(input_dim, self.latent_dims, self.hidden, hidden2,
                               self.activation, self.likelihood, self.dtype, rng=rng)

    def _train(self, x: Array, epochs: int) -> None:
        """Train until `trainer_` has completed `epochs` epochs."""
        self.trainer_.batch_size = min(check_int(self.batch_size, "batch_size", 1), x.shape[0])
        train(self.trainer_, x, epochs)
        self.history_ = list(self.trainer_.history)

    def fit(self, X, y=None) -> "VAEEstimator":
        """Train a new VAE on X, shape (n, d), for `epochs` epochs.

        y is ignored (present for Pipeline). Returns self.
        """
        epochs = check_int(self.epochs, "epochs", 1)
        x = self._start(X)
        self._train(x, epochs)
        return self

    def partial_fit(self, X, y=None) -> "VAEEstimator":
        """One more epoch on X, continuing the optimizer and generator
        (a first call starts a new model). The architecture, beta and
        learning_rate stay those of the model being continued. Returns self."""
        if self.__sklearn_is_fitted__():
            x = self._X(X)
        else:
            x = self._start(X)
        self._train(x, self.trainer_.epochs_done + 1)
        return self

    def transform(self, X) -> Array:
        """Posterior means mu(x) of the latent the decoder reads, shape
        (n, latent_dim) (z1's, (n, d1), with `latent_dims`)."""
        x = self._X(X)
        return self.model_.encode(x)[0]

    def fit_transform(self, X, y=None) -> Array:
        """`fit` then `transform` of the same X."""
        return self.fit(X).transform(X)

    def inverse_transform(self, Z) -> Array:
        """Decoder means mu_theta(z), shape (n, n_features_in_);
        probabilities for the Bernoulli likelihood."""
        self._check_is_fitted()
        z = as_real_array(Z, "Z")
        check_features(z, "Z", None, False)
        z = as_data(z, "Z", self.model_.dtype, self.model_.config.latent_dim)
        return self._from_model(self.model_.decode(z))

    def score_samples(self, X) -> Array:
        """Per-example lower bound on log p(x) in nats, shape (n,).

        The model's ELBO with one z ~ q(z|x) (score_k = 1; the one-layer
        model's KL is analytic, the two-layer model's sampled), or the
        importance-weighted bound with score_k samples. Each example's
        noise comes from random_state and the example itself, so
        repeated calls agree and a row scores the same alone as inside
        any X.

        Notes
        -----
        Through the model protocol: score_k = 1 is log_lik - kl of
        ``model_.elbo_terms(x, eps=eps)``; score_k = K > 1 is the IWAE
        head (`numpyvae.reference.bounds.iwae_bound_forward`) over the K log-weights
        of ``model_.log_weights(x, eps)``,
        L_K = log (1/K) sum_i w_i, eps of shape (K, n, noise_dim).
        """
        x = self._X(X)
        k = check_int(self.score_k, "score_k", 1)
        model = self.model_
        if k > 1:
            model.check_density("score_samples with score_k > 1")
        eps = self._example_noise(x, k)  # (k, n, noise_dim)
        scores = np.empty(x.shape[0], dtype=x.dtype)
        rows = max(1, 2**16 // k)  # examples per block: k * rows decoder rows
        for lo in range(0, x.shape[0], rows):
            xb, eb = x[lo:lo + rows], eps[:, lo:lo + rows]
            if k == 1:
                terms = model.elbo_terms(xb, eps=eb[0])
                scores[lo:lo + rows] = terms["log_lik"] - terms["kl"]
            else:
                scores[lo:lo + rows] = iwae_bound_forward(model.log_weights(xb, eb)[0])[0]
        if self.scale_ is not None:  # log p(x) = log p(u) - sum_j log scale_j
            scores -= x.dtype.type(np.sum(np.log(self.scale_)))
        return scores

    def _example_noise(self, x: Array, k: int) -> Array:
        """eps, shape (k, n, noise_dim): row i from a generator seeded by
        random_state, the score stream and the SHA-256 of x[i]'s bytes."""
        seed, d_z = seed_entropy(self.random_state), self.model_.config.noise_dim
        eps = np.empty((k, x.shape[0], d_z), dtype=x.dtype)
        for i, row in enumerate(x):
            words = np.frombuffer(hashlib.sha256(row.tobytes()).digest()[:16], np.uint32)
            rng = np.random.default_rng([seed, SCORE_STREAM, *words.tolist()])
            eps[:, i] = rng.standard_normal((k, d_z), dtype=x.dtype)
        return eps

    def score(self, X, y=None) -> float:
        """Mean of `score_samples` (nats per example; higher is better)."""
        return float(np.mean(self.score_samples(X), dtype=np.float64))

    def sample(self, n_samples: int = 1) -> Array:
        """Decoded means of n_samples draws of the generative model (z ~
        N(0, I); for two layers z2 ~ N(0, I), z1 ~ p(z1|z2)), shape (n, d)."""
        self._check_is_fitted()
        n = check_int(n_samples, "n_samples", 1)
        return self._from_model(self.model_.sample(n, rng=stream(self.random_state,
                                                                  SAMPLE_STREAM)))

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the latent features: vaeestimator0, vaeestimator1, ..."""
        self._check_is_fitted()
        return np.array([f"vaeestimator{j}" for j in range(self.model_.config.latent_dim)],
                        dtype=object)

    def save(self, path):
        """Write a numpyvae checkpoint (.npz + JSON) with the parameters;
        `VAEEstimator.load` restores it, ready for `partial_fit`."""
        self._check_is_fitted()
        params = self.get_params()
        if isinstance(params["random_state"], np.random.Generator):
            raise TypeError("random_state: a Generator cannot be saved; use an int seed")
        params["hidden"] = list(params["hidden"])
        for name in ("latent_dims", "hidden2"):
            params[name] = None if params[name] is None else list(params[name])
        params["dtype"] = np.dtype(params["dtype"]).name
        scaling = None if self.mean_ is None else {"mean": self.mean_.tolist(),
                                                   "scale": self.scale_.tolist()}
        return save(self.model_, path, trainer=self.trainer_,
                    extra={"VAEEstimator": params, "scaling": scaling})

    @classmethod
    def load(cls, path) -> "VAEEstimator":
        """The fitted estimator stored by `save` at `path`."""
        ckpt = load_checkpoint(path)
        params = ckpt.meta["extra"].get("VAEEstimator")
        if params is None:
            raise ValueError(f"{path}: this checkpoint was not written by VAEEstimator.save")
        tuples = {name: None if params.get(name) is None else tuple(params[name])
                  for name in ("hidden", "latent_dims", "hidden2")}
        est = cls(**dict(params, **tuples))
        est.model_, est.trainer_ = ckpt.model, trainer_from_checkpoint(ckpt)
        est.n_features_in_ = ckpt.model.config.input_dim
        est.mean_ = est.scale_ = None
        scaling = ckpt.meta["extra"].get("scaling")
        if (scaling is None) != (est.likelihood == "bernoulli"):
            raise ValueError(f"{path}: expected feature scaling exactly for the Gaussian "
                             "likelihood; this checkpoint's extra does not match")
        if scaling is not None:
            est.mean_, est.scale_ = np.array(scaling["mean"]), np.array(scaling["scale"])
        est.history_ = list(est.trainer_.history)
        return est
