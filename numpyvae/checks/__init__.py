"""Gradient checkers for anyone's code, the testing helpers, the bug zoo.

``gradcheck`` compares an analytic gradient with central differences entry
by entry, ``directional`` along random directions with Richardson
extrapolation (cheap at any size), ``fd_setup`` holds the step sizes and
the float64 rule they share, ``testing`` the hypothesis strategies and
``assert_*_close`` helpers, and ``bugzoo`` the planted wrong gradients the
checkers must catch. Users reach them as ``numpyvae.gradcheck`` and
``numpyvae.testing``; the checks take any function, and whole models only
through the model protocol. ``testing`` builds VAE models for its
strategies, so this folder stands above the models.

May import: numpy, scipy, hypothesis, numpyvae.reference, numpyvae.checks, numpyvae.vae, numpyvae.protocol.
"""
