"""``python -m numpyvae``: the same command as the ``numpyvae`` script."""

from .app.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
