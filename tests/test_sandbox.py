"""The sandbox contains hostile programs, scores them as failures, and leaves the harness intact.

Each hostile program is run twice where it matters: with every layer, and without the in-process
audit hook, so that the OS-level layers (bwrap's namespaces, rlimits, the `nobody` user) are
shown to hold on their own too. The wider attack suite is tests/test_sandbox_redteam.py.
"""

import os
import subprocess
import time

import pytest

from selfcorrect.tasks.humaneval import sandbox
from selfcorrect.tasks.humaneval.sandbox import Limits, SandboxUnavailable, isolation, run_python, sandbox_mode

FAST = Limits(cpu_s=1, wall_s=3.0, memory_mb=512)
OS_LAYERS = isolation().layers



def _intact(results) -> bool:
    return (results / "metrics.json").read_text() == '{"acc_t1": 0.5}' and sorted(os.listdir(results)) == ["metrics.json"]


def _no_leftover_processes() -> bool:
    """No sandboxed runner (recognisable by its command line) is still alive."""
    for _ in range(25):
        ps = subprocess.run(["ps", "-eo", "stat,args"], capture_output=True, text=True).stdout.splitlines()
        if not [ln for ln in ps if "_cpu_limit(signum, frame)" in ln and not ln.startswith("Z")]:
            return True
        time.sleep(0.2)
    return False


def test_a_correct_program_passes_and_its_output_is_returned():
    r = run_python("print(sum(range(10)))\nassert 2 + 2 == 4\n", FAST)
    assert r.passed and r.status == "ok" and r.stdout.strip() == "45"


@pytest.mark.parametrize("source", ["assert 1 == 2", "raise ValueError('x')", "def f(:\n  pass", "import sys; sys.exit(0)", "import os; os._exit(0)", "exit()"])
def test_failing_or_early_exiting_programs_do_not_pass(source):
    """Exiting with status 0 before the end is not a pass: only the runner's nonce is."""
    r = run_python(source, FAST)
    assert not r.passed and r.error


def test_the_nonce_cannot_be_printed_by_the_program():
    r = run_python("print('ok'); import sys; sys.stdout.flush()", FAST)
    assert r.passed and "ok" in r.stdout
    r2 = run_python("import os, sys; sys.stdout.write('\\n' + 'deadbeef' * 4 + '\\n'); sys.stdout.flush(); os._exit(0)", FAST)
    assert not r2.passed


@pytest.mark.parametrize("audit_hook", [True, False])
def test_infinite_loop_is_stopped_by_cpu_or_wall_limit(audit_hook):
    t0 = time.monotonic()
    r = run_python("while True:\n    pass\n", FAST, audit_hook=audit_hook)
    assert r.status == "timeout" and not r.passed
    assert time.monotonic() - t0 < FAST.wall_s + 3
    assert _no_leftover_processes()


@pytest.mark.parametrize("audit_hook", [True, False])
def test_fork_bomb_is_contained(audit_hook):
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    t0 = time.monotonic()
    r = run_python(bomb, FAST, audit_hook=audit_hook)
    assert not r.passed
    assert time.monotonic() - t0 < FAST.wall_s + 3
    assert _no_leftover_processes()  # every forked child is gone too


@pytest.mark.parametrize("audit_hook", [True, False])
def test_ten_gigabyte_allocation_fails_with_memory_error(audit_hook):
    r = run_python("x = bytearray(10 * 1024**3)\n", FAST, audit_hook=audit_hook)
    assert not r.passed and "MemoryError" in r.error


@pytest.mark.parametrize("audit_hook", [True, False])
def test_writing_and_deleting_files_outside_the_sandbox_fails(harness_files, audit_hook):
    if not audit_hook and "mountns" not in OS_LAYERS and "uid_nobody" not in OS_LAYERS:
        pytest.skip("without the audit hook, file protection needs bwrap's mount namespace or another user")
    target = harness_files / "metrics.json"
    for source in [
        f"open({str(target)!r}, 'w').write('{{}}')",
        f"import os; os.remove({str(target)!r})",
        f"import shutil; shutil.rmtree({str(harness_files)!r})",
        f"import os; os.rename({str(target)!r}, 'stolen.json')",
        f"open({str(harness_files / 'new.txt')!r}, 'x').write('x')",
        f"import os; os.chmod({str(target)!r}, 0o777)",
    ]:
        r = run_python(source, FAST, audit_hook=audit_hook)
        assert not r.passed, source
        assert any(w in r.error for w in ("Permission", "denied", "Read-only", "No such file")), (source, r.error)
        assert _intact(harness_files), source


@pytest.mark.parametrize("mode", ["bwrap", "unsafe-process"])
def test_files_inside_the_working_directory_are_allowed_and_gone_afterwards(mode):
    r = run_python("import os\nopen('scratch.txt', 'w').write('hi')\nprint(os.getcwd())\nassert open('scratch.txt').read() == 'hi'\n", FAST, mode=mode)
    assert r.passed
    workdir = r.stdout.strip()
    if mode == "bwrap":
        assert workdir == sandbox.WORKDIR and not os.path.exists(os.path.join(workdir, "scratch.txt"))  # a private tmpfs
    else:
        assert "selfcorrect-sandbox-" in workdir and not os.path.exists(workdir)


def test_the_program_reads_its_stdin_and_sees_only_its_own_processes_and_files():
    r = run_python("import os, sys\nprint(sys.stdin.read(), sorted(p for p in os.listdir('/proc') if p.isdigit()), sorted(os.listdir('/')))", FAST, "data in")
    assert r.passed
    assert r.stdout.startswith("data in ['1', '2'] ")   # bwrap's init and the program: nothing of the host
    assert "work" not in r.stdout and "root" not in r.stdout and "etc" not in r.stdout


def test_mode_is_chosen_by_name_and_an_unknown_name_is_refused(monkeypatch):
    assert sandbox_mode() == "bwrap"
    monkeypatch.setenv(sandbox.ENV_VAR, "unsafe-process")
    assert sandbox_mode() == "unsafe-process" and sandbox_mode("bwrap") == "bwrap"
    monkeypatch.setenv(sandbox.ENV_VAR, "none")
    with pytest.raises(ValueError, match="'none'.*SELFCORRECT_SANDBOX"):
        sandbox_mode()


def test_without_bwrap_model_code_is_refused_with_a_clear_error(monkeypatch):
    real_which = sandbox.shutil.which
    monkeypatch.setattr(sandbox.shutil, "which", lambda name, *a, **k: None if name == "bwrap" else real_which(name, *a, **k))
    sandbox._probe.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap.*SELFCORRECT_SANDBOX=unsafe-process"):
            run_python("print(1)", FAST)
        assert run_python("print(1)", FAST, mode="unsafe-process").passed   # the weaker mode, opted into by name
    finally:
        sandbox._probe.cache_clear()


def test_bwrap_that_cannot_create_namespaces_is_refused(monkeypatch):
    monkeypatch.setattr(sandbox, "_try", lambda iso: "bwrap: No permissions to create new namespace")
    sandbox._probe.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable, match="cannot create a sandbox here.*unsafe-process"):
            run_python("print(1)", FAST)
    finally:
        sandbox._probe.cache_clear()


def test_file_size_is_capped():
    r = run_python("open('big.bin', 'wb').write(b'x' * (1 << 26))\n", Limits(cpu_s=2, wall_s=5, max_file_bytes=1 << 20))
    assert not r.passed and r.status in ("file_limit", "error")


@pytest.mark.parametrize("audit_hook", [True, False])
def test_network_sockets_fail(audit_hook):
    """Neither the internet nor a port the harness listens on (the host's loopback) is reachable."""
    if not audit_hook and "netns" not in OS_LAYERS:
        pytest.skip("no network namespace on this machine")
    import socket

    host = socket.socket()
    host.bind(("127.0.0.1", 0))
    host.listen()
    port = host.getsockname()[1]
    for source in [
        "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)\n",
        f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n",
        "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=2)\n",
    ]:
        r = run_python(source, FAST, audit_hook=audit_hook)
        assert not r.passed, source
        assert any(w in r.error for w in ("not allowed", "unreachable", "Errno", "URLError")), r.error
    host.close()


@pytest.mark.parametrize("audit_hook", [True, False])
def test_printing_gigabytes_is_cut_off(audit_hook):
    limits = Limits(cpu_s=5, wall_s=10, max_output_bytes=1 << 16)
    t0 = time.monotonic()
    r = run_python("import sys\nfor _ in range(1 << 20):\n    sys.stdout.write('x' * 4096)\n", limits, audit_hook=audit_hook)
    assert r.status == "output_limit" and not r.passed
    assert len(r.stdout) + len(r.stderr) <= 2 * limits.max_output_bytes
    assert time.monotonic() - t0 < 5


def test_subprocess_and_ctypes_are_refused():
    for source in ["import os; os.fork()", "import subprocess; subprocess.run(['ls', '/'])", "import os; os.system('true')", "import ctypes; ctypes.CDLL(None)"]:
        r = run_python(source, FAST)
        assert not r.passed and "not allowed" in r.error, source


def test_limits_are_applied_in_the_child():
    r = run_python(
        "import resource\nfor k in ('RLIMIT_CPU', 'RLIMIT_AS', 'RLIMIT_FSIZE'):\n"
        "    print(k, *resource.getrlimit(getattr(resource, k)))\n"
        "print('oom_score_adj', open('/proc/self/oom_score_adj').read().strip())\n",
        Limits(cpu_s=3, memory_mb=256, max_file_bytes=4096, max_processes=8),
    )
    assert r.passed
    got = dict((ln.split()[0], tuple(map(int, ln.split()[1:]))) for ln in r.stdout.strip().splitlines())
    assert got["RLIMIT_CPU"] == (3, 4)
    assert got["RLIMIT_AS"] == (256 << 20, 256 << 20)
    assert got["RLIMIT_FSIZE"] == (4096, 4096)
    assert got["oom_score_adj"] == (1000,)   # the host's OOM killer takes the sandbox first


# Starts threads until one cannot be started; prints how many ran at once.
THREADS = """
import threading, time
n = 0
try:
    for _ in range(64):
        threading.Thread(target=time.sleep, args=(1,), daemon=True).start()
        n += 1
except RuntimeError:
    pass
print(n)
"""


def test_processes_and_threads_are_capped():
    """max_processes bounds the sandbox's tasks together (bwrap's two, the program, its threads):
    by its own pids cgroup where there is one, else by RLIMIT_NPROC of the sandbox's user."""
    r = run_python(THREADS, Limits(max_processes=8), audit_hook=False)
    assert r.passed and 0 < int(r.stdout) < 8, r.stdout


def _without_cgroups(monkeypatch) -> None:
    """The sandbox as on a machine where this process cannot create cgroups (no root, cgroup v2)."""
    monkeypatch.setattr(sandbox, "_cgroup_parents", lambda: ())
    sandbox._probe.cache_clear()


# Forks `n` children that each touch 64 MB and wait; prints each child's exit status.
FORKED_MEMORY = """
import os, time
kids = []
for _ in range({n}):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        block = bytearray(64 << 20)
        for j in range(0, len(block), 4096):
            block[j] = 1
        os.write(w, b"x")
        time.sleep(1)
        os._exit(0)
    os.close(w)
    os.read(r, 1)
    kids.append(pid)
print(*[os.waitstatus_to_exitcode(os.waitpid(k, 0)[1]) for k in kids])
"""


@pytest.mark.skipif("memory_cgroup" not in OS_LAYERS, reason="no memory cgroup per sandbox on this machine")
def test_memory_is_bounded_for_the_whole_sandbox_not_per_process():
    """RLIMIT_AS bounds each process; the sandbox's memory cgroup bounds them together, and the
    kernel kills inside the sandbox when it is full. Control: one 64 MB child fits in 160 MB."""
    limits = Limits(memory_mb=160, wall_s=10)
    one = run_python(FORKED_MEMORY.format(n=1), limits, audit_hook=False)
    assert one.passed and one.stdout.split() == ["0"]
    three = run_python(FORKED_MEMORY.format(n=3), limits, audit_hook=False)
    assert three.passed and "-9" in three.stdout.split(), three.stdout   # a child was OOM-killed in the sandbox


@pytest.mark.skipif(not isolation().cgroups, reason="no cgroups per sandbox on this machine")
def test_the_runs_cgroups_are_removed_afterwards():
    assert run_python("print(1)", FAST).passed
    assert not run_python("import os\nos.fork()\nimport time\ntime.sleep(30)", Limits(wall_s=1.5), audit_hook=False).passed
    for controller, parent in isolation().cgroups:
        ours = [n for n in os.listdir(parent) if n.startswith(f"selfcorrect-sandbox-{os.getpid()}-")]
        assert ours == [], (controller, ours)


def test_without_cgroups_the_sandbox_still_runs_and_says_what_it_lacks(monkeypatch):
    _without_cgroups(monkeypatch)
    try:
        iso = isolation()
        assert iso.cgroups == () and not {"memory_cgroup", "pids_cgroup"} & set(iso.layers)
        r = run_python("import resource; print(resource.getrlimit(resource.RLIMIT_NPROC)[0])", Limits(max_processes=8))
        assert r.passed and int(r.stdout) >= 8 and "pids_cgroup" not in r.isolation
        if "uid_nobody" in iso.layers:   # RLIMIT_NPROC binds for `nobody` (shared by concurrent sandboxes)
            r = run_python(THREADS, Limits(max_processes=8), audit_hook=False)
            assert r.passed and 0 < int(r.stdout) < 8, r.stdout
    finally:
        sandbox._probe.cache_clear()


def test_bad_limits_are_rejected_by_name():
    with pytest.raises(ValueError, match="wall_s"):
        Limits(wall_s=0)
