"""The fast path: the reference equations rearranged for speed, same contracts.

``fused_step`` is one training step of the one-layer model in
preallocated workspaces with a packed Adam, ``fused_layers`` its in-place
dense layers, ``fused_eval`` the blocked, threaded estimate of the IWAE
and ELBO bounds, ``threads`` the worker-thread helpers. Each is held
equal to numpyvae/reference/ by tests over every configuration it
supports, and falls back to the reference where it does not. Only the
training and evaluation code uses it; a learner can skip this folder.

May import: numpy, scipy, threadpoolctl, numpyvae.reference, numpyvae.fast.
Imported only by: numpyvae.trainer, numpyvae.estimators.
"""
