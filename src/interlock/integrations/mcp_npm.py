"""The reference MCP servers from npm, installed once into a cache directory (tests, bench, demos).

    npm install --prefix .interlock/npm @modelcontextprotocol/server-filesystem \\
        @modelcontextprotocol/server-everything

is all it does; `ensure_servers` runs that when a server is missing, under a file lock so parallel
test workers install once.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

PACKAGES = ("@modelcontextprotocol/server-filesystem", "@modelcontextprotocol/server-everything")
BINARIES = ("mcp-server-filesystem", "mcp-server-everything")
DEFAULT_DIR = Path(".interlock/npm")
INSTALL_TIMEOUT_SECONDS = 600


class NpmError(Exception):
    """npm is missing or the install failed; the message says which."""


def ensure_servers(prefix: Path = DEFAULT_DIR) -> Path:
    """The `node_modules/.bin` directory holding BINARIES, installing them first if needed."""
    prefix = prefix.resolve()
    bin_dir = prefix / "node_modules" / ".bin"
    if all((bin_dir / name).exists() for name in BINARIES):
        return bin_dir
    npm = shutil.which("npm")
    if npm is None:
        raise NpmError("npm is not installed: install Node.js 18+ (Debian: apt-get install nodejs npm)")
    prefix.mkdir(parents=True, exist_ok=True)
    with (prefix / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if all((bin_dir / name).exists() for name in BINARIES):
            return bin_dir  # another process installed them while we waited
        done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix), *PACKAGES],
                              capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS, check=False)
        if done.returncode != 0:
            raise NpmError(f"npm install {' '.join(PACKAGES)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return bin_dir
