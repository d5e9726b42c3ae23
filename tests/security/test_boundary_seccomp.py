"""Issue 21, defence in depth: every cell's script runs under a seccomp filter modelled on
Docker's default profile (sandbox/seccomp.py). Each call below is made with arguments the
kernel itself would refuse with another error than EPERM (EINVAL, EFAULT, EOPNOTSUPP...),
so EPERM is the filter's answer and nothing else's; through the i386 and x32 ABIs too,
and in a child the script forks. `%seccomp off` lifts it; a locked kernel refuses that."""

from __future__ import annotations

from pathlib import Path

CALLS_C = r"""%%c
HEADER
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
static void show(const char *who, const char *name, long rc) {
    printf("%s %s %s\n", who, name, rc < 0 ? strerrorname_np(errno) : "ok");
}
#if defined(__x86_64__)
static long int80(long nr, long a) {
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(0), "d"(0) : "memory");
    if (ret < 0 && ret > -4096) { errno = (int)-ret; return -1; }
    return ret;
}
#endif
static void calls(const char *who) {
    show(who, "bpf", syscall(SYS_bpf, 9999, NULL, 0));
    show(who, "keyctl", syscall(SYS_keyctl, 9999, 0, 0, 0, 0));
    show(who, "add_key", syscall(SYS_add_key, NULL, NULL, NULL, 0, 0));
    show(who, "request_key", syscall(SYS_request_key, NULL, NULL, NULL, 0));
    show(who, "perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    show(who, "userfaultfd", syscall(SYS_userfaultfd, 1 | 0x10));   /* a bad flag */
    show(who, "io_uring_setup", syscall(SYS_io_uring_setup, 1, NULL));
    show(who, "open_by_handle_at", syscall(SYS_open_by_handle_at, -1, NULL, 0));
    show(who, "clock_settime", syscall(SYS_clock_settime, 9999, NULL));
    show(who, "settimeofday", syscall(SYS_settimeofday, (void *)1, NULL));
#if defined(__x86_64__)
    show(who, "i386-keyctl", int80(288, 9999));                        /* int $0x80 */
    show(who, "x32-keyctl", syscall(0x40000000 | 250, 9999, 0, 0, 0, 0));
#endif
}
int main(void) {
    calls("script");
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) { calls("child"); return 0; }
    waitpid(child, NULL, 0);
    return 0;
}
"""
REFUSED = ("bpf", "keyctl", "add_key", "request_key", "perf_event_open", "userfaultfd",
           "io_uring_setup", "open_by_handle_at", "clock_settime", "settimeofday",
           "i386-keyctl", "x32-keyctl")


def _answers(res) -> dict[tuple[str, str], str]:
    assert res.ok, (res.stdout, res.stderr, res.reply)
    return {(who, name): answer for who, name, answer in
            (line.split() for line in res.stdout.splitlines())}


def _io_uring_disabled() -> bool:
    path = Path("/proc/sys/kernel/io_uring_disabled")
    return path.exists() and path.read_text().strip() == "2"


def test_every_cell_refuses_the_kernels_rarely_needed_calls_with_eperm(kernel):
    got = _answers(kernel.run(CALLS_C.replace("HEADER", ""), timeout=90))
    for who in ("script", "child"):
        for name in REFUSED:
            assert got[(who, name)] == "EPERM", (who, name, got)


def test_seccomp_off_lifts_the_filter(kernel):
    got = _answers(kernel.run(CALLS_C.replace("HEADER", "%seccomp off"), timeout=90))
    for name in REFUSED:
        if name == "io_uring_setup" and _io_uring_disabled():
            continue   # the host refuses it itself (kernel.io_uring_disabled=2)
        # What the kernel answers these arguments: never the filter's EPERM.
        assert got[("script", name)] != "EPERM", (name, got)
    if "x32-keyctl" in dict(got):   # EOPNOTSUPP where the host runs x32, else ENOSYS
        assert got[("script", "x32-keyctl")] in ("EOPNOTSUPP", "ENOSYS")


def test_the_experiments_calls_stay_open(kernel):
    """mount, unshare, pivot_root, chroot, sethostname: the cell's own namespaces."""
    res = kernel.ok(
        "unshare -m sh -c 'mount -t tmpfs none /mnt && touch /mnt/x && ls /mnt'\n"
        "unshare -u sh -c 'hostname inner && hostname'\n"
        "mkdir -p /new/old && mount -t tmpfs none /new && mkdir /new/old && "
        "unshare -m sh -c 'cd /new && pivot_root . old && echo pivoted'\n"
        "chroot / true && echo chrooted", timeout=60)
    assert res.stdout == "x\ninner\npivoted\nchrooted\n", (res.stdout, res.stderr)
