"""Shared by the ops tests: deploy/dev-secrets.sh run for real, once, into a temporary folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEV_SECRETS = ROOT / "deploy" / "dev-secrets.sh"


def run_dev_secrets(directory: Path, *args: str) -> str:
    """`deploy/dev-secrets.sh --dir DIRECTORY ARGS`; its output, or a failure with all it said."""
    assert shutil.which("openssl"), "openssl is missing (Debian: apt-get install openssl)"
    # The hashers it may pick are those of this interpreter (bcrypt, else crypt).
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(DEV_SECRETS), "--dir", str(directory), *args],
                          capture_output=True, text=True, timeout=120, check=False, env=env)
    assert done.returncode == 0, f"dev-secrets.sh failed ({done.returncode}):\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="session")
def dev_secrets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder of development secrets, as `deploy/dev-secrets.sh` writes into secrets/."""
    directory = tmp_path_factory.mktemp("cover2-secrets") / "secrets"
    run_dev_secrets(directory)
    yield directory
