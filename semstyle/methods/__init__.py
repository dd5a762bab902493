"""Style-transfer methods. Each module composes shared parts (encoder, losses, engine) and offers:

- ``solve(cfg, engine) -> dict``: builds the problem from a resolved config and runs it on the engine; the dict
  holds ``"output"`` (the result image) and whatever ``save`` needs;
- ``save(result, cfg, run_dir)`` (optional): the method's extra files;
- a Python entry point such as ``stylize(...)``.

The registry that names them is :data:`semstyle.api.METHODS`; their configs are in :mod:`semstyle.conf`.
"""
