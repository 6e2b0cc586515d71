"""The reference: the equations of the VAE notes and the IWAE paper, line by line.

This is the folder a learner reads. The kernels (``activations``,
``layers``, ``likelihoods``, ``kl``, ``sampling``) each pair a
``*_forward`` with the ``*_backward`` right under it; ``vae`` and
``hierarchical_vae`` compose them into each model's ELBO and its
per-sample log-weights log p(x, z) - log q(z|x); ``bounds`` holds the
heads over log-weights (the sampled ELBO and the IWAE bound) and their
gradients, once; ``collapse`` the two objectives whose minimisers
collapse (the prior-sampled bound, the KL term alone);
``linear_gaussian`` the one closed-form log p(x); ``measures`` bits per
dimension and the active units; ``optim`` holds Adam and SGD (with the
IWAE paper's learning-rate schedule); ``config`` says what each
architecture is and how its weights start; ``arrays`` words the shape and
dtype checks. Nothing here is optimised: numpyvae/fast/ is the same
contract made fast, held equal to this folder by the tests.

May import: numpy, scipy, numpyvae.reference.
"""
