"""What a plugin's code reaches for beyond computing: the network, files, other processes.

A plugin declares the capabilities it needs (:data:`models.registry.CAPABILITIES`);
:func:`capability_uses` reads its source with :mod:`ast` and finds the imports and calls
that need one, so that admission (:mod:`streams.plugins.admission`) refuses code that uses
a capability it did not declare. Imported names are followed through aliases
(``import os as o; o.system(...)``, ``from subprocess import run``), and
``__import__``/``importlib.import_module`` of a literal name count as imports.

It is a gate against the undeclared, not a sandbox: code determined to hide what it does
(``getattr`` on a computed name, ``ctypes``) gets past a static reading. A module imported
under a name computed at run time is reported as such, since nothing can be said of it.

Examples
--------
>>> source = "import os as o\\nfrom urllib.parse import quote\\nfrom socket import socket\\n"
>>> source += "o.path.join('a', 'b')\\no.system('ls')\\nopen('x')\\n"
>>> for use in capability_uses_in(source, "example.py"):
...     print(use)
example.py:3: network (imports socket.socket)
example.py:5: subprocess (calls os.system)
example.py:6: filesystem (calls open)
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CapabilityUse", "capability_uses", "capability_uses_in", "needs"]

# Dotted names; a name ending in "*" matches every name it begins, any other matches itself
# and what is under it ("socket" matches "socket.create_connection").
_NEEDS: dict[str, tuple[str, ...]] = {
    "network": (
        "socket", "ssl", "http", "urllib.request", "urllib.error", "urllib3", "requests",
        "httpx", "aiohttp", "smtplib", "ftplib", "poplib", "imaplib", "nntplib", "telnetlib",
        "xmlrpc", "socketserver", "websocket", "websockets", "grpc", "paramiko", "aiokafka",
        "kafka", "confluent_kafka", "boto3", "botocore", "asyncio.open_connection",
        "asyncio.open_unix_connection", "asyncio.start_server", "asyncio.start_unix_server",
    ),
    "filesystem": (
        "open", "builtins.open", "io.open", "io.FileIO", "codecs.open", "pathlib", "shutil",
        "tempfile", "glob", "fileinput", "sqlite3", "dbm", "shelve", "zipfile", "tarfile",
        "mmap", "os.open", "os.fdopen", "os.remove", "os.unlink", "os.rename", "os.renames",
        "os.replace", "os.mkdir", "os.makedirs", "os.rmdir", "os.removedirs", "os.listdir",
        "os.scandir", "os.walk", "os.fwalk", "os.chmod", "os.chown", "os.truncate",
        "os.symlink", "os.link", "os.stat", "os.lstat", "os.chdir", "os.path.exists",
        "os.path.lexists", "os.path.isfile", "os.path.isdir", "os.path.islink",
        "os.path.ismount", "os.path.getsize", "os.path.getmtime", "os.path.getatime",
        "os.path.getctime", "os.path.samefile", "os.path.realpath", "numpy.load",
        "numpy.save", "numpy.savez", "numpy.savez_compressed", "numpy.loadtxt",
        "numpy.savetxt", "numpy.genfromtxt", "numpy.fromfile", "numpy.memmap",
    ),
    "subprocess": (
        "subprocess", "multiprocessing", "concurrent.futures.ProcessPoolExecutor", "pty",
        "pexpect", "os.system", "os.popen", "os.exec*", "os.spawn*", "os.posix_spawn*",
        "os.fork", "os.forkpty", "os.kill", "asyncio.create_subprocess_exec",
        "asyncio.create_subprocess_shell",
    ),
}  # fmt: skip
_DYNAMIC_IMPORTS = ("__import__", "importlib.import_module")


@dataclass(frozen=True, slots=True)
class CapabilityUse:
    """One import or call that needs ``capability``, at ``path:line``."""

    capability: str
    what: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.capability} ({self.what})"


def needs(name: str) -> str | None:
    """The capability a dotted name needs, if any.

    >>> needs("socket.create_connection"), needs("urllib.parse.quote"), needs("os.execvp")
    ('network', None, 'subprocess')
    """
    for capability, patterns in _NEEDS.items():
        for pattern in patterns:
            if pattern.endswith("*"):
                if name.startswith(pattern[:-1]):
                    return capability
            elif name == pattern or name.startswith(pattern + "."):
                return capability
    return None


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for an attribute chain on a name, else ``None``."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def capability_uses_in(source: str, path: str) -> list[CapabilityUse]:
    """The uses of capabilities in ``source`` (the text of the file ``path``), in order.

    Raises
    ------
    SyntaxError
        If ``source`` is not Python.
    """
    tree = ast.parse(source, path)
    aliases: dict[str, str] = {}  # local name -> the dotted name it is bound to
    found: list[CapabilityUse] = []

    def note(name: str, verb: str, line: int) -> None:
        capability = needs(name)
        if capability is not None:
            found.append(CapabilityUse(capability, f"{verb} {name}", path, line))

    # Imports first, wherever they are: a call may precede its import in the text.
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                # "import a.b" binds "a"; "import a.b as c" binds "c" to "a.b".
                local = alias.asname or alias.name.split(".")[0]
                aliases[local] = alias.name if alias.asname else local
                note(alias.name, "imports", node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                aliases[alias.asname or alias.name] = name
                note(name, "imports", node.lineno)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        dotted = _dotted(node.func)
        if dotted is None:
            continue
        head, _, rest = dotted.partition(".")
        name = aliases.get(head, head) + (f".{rest}" if rest else "")
        if name in _DYNAMIC_IMPORTS:
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                note(first.value, "imports", node.lineno)
            else:
                found.append(
                    CapabilityUse("unknown", f"{name} of a computed name", path, node.lineno)
                )
            continue
        note(name, "calls", node.lineno)
    return sorted(found, key=lambda use: use.line)


def capability_uses(paths: list[Path], root: Path) -> list[CapabilityUse]:
    """The uses of capabilities in every file of ``paths``, named relative to ``root``."""
    found = []
    for path in paths:
        shown = path.relative_to(root) if path.is_relative_to(root) else path
        found += capability_uses_in(path.read_text(encoding="utf-8"), str(shown))
    return found
