"""Fingerprint of everything that determines a run's result, so that a resumed run can check its checkpoint.

A fingerprint is a flat ``{key: value}`` dict: every config key (dotted for nested ones) except the cosmetic
:data:`COSMETIC` keys, ``sha256(KEY)`` for every config value that names an existing file (its contents, so an
image edited in place is noticed too), what ``device``/``precision`` resolve to on this machine, and ``semstyle
version``. All values are JSON-serialisable, so a fingerprint travels in a checkpoint's metadata as one JSON string.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from typing import Any

from ..conf import COSMETIC_KEYS as COSMETIC  # progress, out_dir, resume, save_every: how a run reports, not what
from ..core.encoder import config_precision, resolve_device
from ..errors import SemstyleError
from ..version import __version__

VERSION_KEY = "semstyle version"


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            _flatten(sub, f"{prefix}{key}.", out)
    else:
        out[prefix[:-1]] = value


def _files(key: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _files(f"{key}[{i}]", item, out)
    elif isinstance(value, str) and value and os.path.isfile(value):
        digest = hashlib.sha256()
        with open(value, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        out[f"sha256({key})"] = digest.hexdigest()


def fingerprint(cfg_container: dict) -> dict[str, Any]:
    """The fingerprint of a resolved config given as a plain container (``OmegaConf.to_container(cfg, resolve=True)``).

    Relative file paths are read from the current directory, as the run reads them.
    """
    flat: dict[str, Any] = {}
    _flatten({k: v for k, v in cfg_container.items() if k not in COSMETIC}, "", flat)
    hashes: dict[str, str] = {}
    for key, value in flat.items():
        _files(key, value, hashes)
    # a JSON round trip, so a fresh fingerprint compares equal to one read back from a checkpoint (tuples -> lists)
    return json.loads(json.dumps({**flat, **hashes, **_resolved(flat), VERSION_KEY: __version__}))


def _resolved(flat: dict[str, Any]) -> dict[str, str]:
    """What ``device=auto`` and ``precision=auto`` mean on this machine: a checkpoint made in bf16 must not be
    finished in fp32 on another CPU."""
    if "device" not in flat or "precision" not in flat:
        return {}
    try:
        device = resolve_device(str(flat["device"]))
        with warnings.catch_warnings():  # the bf16 fallback warning is the encoder's to give, once
            warnings.simplefilter("ignore")
            precision = config_precision(flat, device)
        return {"device (resolved)": device.type, "precision (resolved)": precision}
    except SemstyleError:  # a bad value is reported where the run uses it
        return {}


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The keys whose values differ between two fingerprints (a key missing on one side differs): config keys in
    alphabetical order, then file hashes, then the version."""
    missing = object()
    keys = (k for k in set(old) | set(new) if old.get(k, missing) != new.get(k, missing))
    return sorted(keys, key=lambda k: (k == VERSION_KEY, k.startswith("sha256("), k))


def show(value: Any) -> str:
    """A value as a user would type it in a ``key=value`` override (lists as ``[a,b]``, ``None`` as null)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(show(v) for v in value) + "]"
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12]  # a SHA-256: its start is enough to tell two files apart
    return str(value)


def describe(fp: dict[str, Any], keys: list[str]) -> str:
    """``key=value, ...`` for ``keys`` of fingerprint ``fp``; a key it lacks is ``(unset)``, or ``(no such file)``
    for the hash of a file that is gone."""

    def one(k: str) -> str:
        if k in fp:
            return f"{k}={show(fp[k])}"
        return f"{k} (no such file)" if k.startswith("sha256(") else f"{k} (unset)"

    return ", ".join(one(k) for k in keys)


def dumps(fp: dict[str, Any]) -> str:
    return json.dumps(fp, sort_keys=True)
