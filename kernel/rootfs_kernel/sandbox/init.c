/* rootfs-init: the first process of one cell's container.
 *
 * Runs in: A, the helper's child (posix_spawn); B, PID 1 of the cell; C, the script.
 * The helper (helper.py) starts this small program for every cell, its plan encoded as
 * NUL-terminated tokens by wire.py in a memfd (fd 6), never on the command line, which
 * any local user reads in /proc/PID/cmdline: argv is the program's name alone.  Why C: on the machines we measured, copying a Python process
 * (fork/clone) costs about 1.5 ms and the copy-on-write faults of running Python in the
 * child as much again; this process is a few pages.
 *
 *   helper ──posix_spawn──▶ A: joins the cell's cgroups, clone(namespaces) ─▶ B, forwards
 *                              the helper's signals to B, exits with B's status
 *   B (PID 1 of the cell):  runs the setup operations, then clone(CLONE_NEWUSER|NEWNS)
 *                           ─▶ C: the script, its mounts locked; exec /bin/sh, which
 *                              reads the cell from the script pipe (or `sh -c SCRIPT`)
 *   B waits for C, kills what C left, enters C's mount namespace and reports; the kernel
 *   then reads the snapshots through /proc/<B> (its mountinfo, root and fds) and closes
 *   the release pipe, and B exits: the namespace and every mount in it go away.
 *
 * The setup operations are defined once, in ops.py; rootfs-ops.h is generated from it
 * at build time (initbin.py): `struct op` with one member struct per kind, and the
 * field table parse_op() fills them from.  Each kind has one function below (op_mount,
 * op_bind, ...), dispatched by run_op()'s switch, as bubblewrap's setup_newroot and
 * runc's rootfs_linux.go do it.
 *
 * fds on entry: 0 /dev/null, 1 and 2 the cell's output pipes, 3 the result socket (JSON
 * lines for the kernel), 4 the release pipe (read end; EOF = snapshots taken), 5 the
 * script pipe (read end): with `script 1` the shell gets it as fd 3 and reads the cell
 * from it (plan.py), so no cell is too long and the shell can be started before its
 * cell exists; only the shell holds it.  6: the plan, read whole and closed first.
 *
 * Prepared ("warm") containers: the helper may start the next cell's container before
 * the cell exists, with the kernel's pipes for that cell and the previous cell's plan.
 * It is set up, its shell started, and the shell waits on the script pipe: the kernel
 * hands the cell over by writing it there, which only the shell reads (as a shell reads
 * a script file).  Nothing else crosses, and this program never reads the cell.  `warm`
 * names A and B rootfs-warm until the script has ended.
 *
 * The template (root mode): the helper keeps a mount namespace that holds only what a
 * container takes from the host (its root filesystem, /proc, /dev, /sys and the mounts on
 * the way to the helper's and the image store's directories), made by this program when
 * started with `template 1` (make_template) and refreshed when the host's mount table
 * changes (template.py).  A container whose plan allows it is cloned from that namespace
 * (fd 8, when the helper passes it): A enters it just for its clone, so B copies a table
 * of a few mounts, whatever the host holds (thousands of them on a busy host), and its
 * old root's detach has as few to tear down.
 *
 * Errors are reported as numbers (operation index, errno); Python words them.
 *
 * `rootfs-init --dump < PLAN` parses a plan (as the memfd holds it) and prints it (for
 * the tests).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/seccomp.h>

#include "rootfs-ops.h"
#include "seccomp-filter.h"   /* every cell's filter, made by libseccomp (seccomp.py) */

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
struct mount_attr { uint64_t attr_set, attr_clr, propagation, userns_fd; };
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif
#ifndef MOUNT_ATTR_NOEXEC
#define MOUNT_ATTR_NOEXEC 0x00000008
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef MOVE_MOUNT_T_EMPTY_PATH
#define MOVE_MOUNT_T_EMPTY_PATH 0x00000040
#endif
#ifndef STATX_ATTR_MOUNT_ROOT
#define STATX_ATTR_MOUNT_ROOT 0x00002000
#endif

#define RESULT_FD 3
#define RELEASE_FD 4
#define SCRIPT_FD 5          /* on entry; the shell's SCRIPT_SHELL_FD */
#define SCRIPT_SHELL_FD 3
#define PLAN_FD 6
#define IDMAP_FD 7           /* the user namespace of the id map the helper keeps, if given */
#define TEMPLATE_FD 8        /* the helper's template mount namespace, if given */
#define MAX_PLAN (64 << 20)  /* protocol.py's frame bound: no plan comes near it */
#define SETUP_FAILED RK_EXIT_SETUP_FAILED
#define MAX_OPS RK_MAX_OPS
#define MAX_LIST 64

static struct {
    unsigned long ns, lock;
    int pidns, rootless, host, profile, nsids, warm, script, look, steps, seccomp, template;
    int fromtemplate;   /* cloned from the helper's template, its fd 8 (template.py) */
    int fromidmap;      /* the helper's user namespace of the id map, its fd 7 */
    unsigned uid, gid;
    unsigned long long hostmnt;
    long parent;
    const char *root, *cwd;
    const char *idmap;   /* "0 FIRST COUNT": the script's ids on the host (and the layers') */
    const char *cgroups[MAX_LIST]; int ncgroups;
    const char *snap[MAX_LIST]; int nsnap;
    const char *keep[MAX_LIST]; int nkeep;     /* template 1: the host paths it holds */
    const char *rkeep[MAX_LIST]; int nrkeep;   /* ... with the mounts below them */
    const char *pasta[MAX_LIST]; int npasta;   /* %net user: pasta's argv (plan.py) */
    long long netuid;                          /* root mode: the id pasta runs as */
    const char *netmap;                        /* ... and its user namespace's map */
    long long nproc, as;
    struct op ops[MAX_OPS]; int nops;     /* the setup, run by B */
    struct op sops[MAX_OPS]; int nsops;   /* run by C in its own namespaces, before exec */
    char *env[4096]; int nenv;
    char **argv;
} P = { .nproc = -1, .as = -1, .netuid = -1 };

static long long cgroup_counter(const char *key);
static void report_usage(void);

/* -- reporting ------------------------------------------------------------------------ */
/* A line is collected here and written with one write(2): the kernel reads whole lines. */
static char line[16384];
static size_t line_len;

static void out(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + line_len, sizeof line - line_len, fmt, ap);
    va_end(ap);
    if (n > 0) line_len += (size_t)n < sizeof line - line_len ? (size_t)n : sizeof line - line_len - 1;
}

static void flush(void) {
    for (size_t off = 0; off < line_len;) {
        ssize_t w = write(RESULT_FD, line + off, line_len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;  /* the kernel went away; nobody to tell */
        off += w;
    }
    line_len = 0;
}

static int current_op = -1;
static int in_script;   /* C runs the script operations: errors go to the cell's stderr */

/* {"error": {"kind": K, "index": I, "errno": E, "depth": D}} and exit: Python words it.
 * In C (the script's operations), the cell's stderr says it, as the script's would. */
static _Noreturn void fail(const char *kind, int index, int err, int depth) {
    if (in_script) {
        const char *what = index >= 0 && index < P.nsops ? op_types[P.sops[index].kind].name
                                                         : kind;
        dprintf(2, "rootfs-kernel: %s: %s\n", what, strerror(err));
        _exit(SETUP_FAILED);
    }
    out("{\"error\": {\"kind\": \"%s\", \"index\": %d, \"errno\": %d, \"depth\": %d}}\n",
        kind, index, err, depth);
    flush();
    _exit(SETUP_FAILED);
}

#define CHECK(call) do { if ((call) < 0) fail("errno", current_op, errno, 0); } while (0)

/* -- the plan ------------------------------------------------------------------------- */
/* `KIND NFIELDS VALUE...` at argv[*i] into op, by rootfs-ops.h's field table; the count
 * catches a wire.py and a binary that disagree on a kind's fields.  No allocation: the
 * strings stay in argv. */
static int parse_op(int argc, char **argv, int *i, struct op *op) {
    if (*i + 2 > argc) return -1;
    const char *kind = argv[(*i)++], *count = argv[(*i)++];
    int k = 0;
    while (k < OP_KINDS && strcmp(op_types[k].name, kind)) k++;
    if (k == OP_KINDS) return -1;
    const struct op_type *t = &op_types[k];
    char *end;
    if (strtol(count, &end, 10) != t->nfields || *end || !*count || *i + t->nfields > argc)
        return -1;
    op->kind = (enum op_kind)k;
    for (int f = 0; f < t->nfields; f++) {
        char *value = argv[(*i)++], *at = (char *)op + t->fields[f].offset;
        switch (t->fields[f].kind) {
        case FIELD_STR:
            *(const char **)at = value;
            break;
        case FIELD_INT:
            errno = 0;
            *(long long *)at = strtoll(value, &end, 10);
            if (errno || *end || !*value) return -1;
            break;
        case FIELD_BOOL:
            if ((value[0] != '0' && value[0] != '1') || value[1]) return -1;
            *(int *)at = value[0] == '1';
            break;
        }
    }
    return 0;
}

/* The plan's tokens from fd (each NUL-terminated, wire.pack), as an argv-like array:
 * tokens[0] is `name`, the rest the plan's, NULL last; returns their count.  The strings
 * stay in one buffer for the process's life (the operations and the script's argv and
 * environment point into it). */
static int read_plan(int fd, char *name, char ***tokens) {
    size_t len = 0, cap = 1 << 14;
    char *buf = malloc(cap);
    if (!buf) fail("plan", -1, ENOMEM, 0);
    for (;;) {
        if (len == cap) {
            char *more = cap < MAX_PLAN ? realloc(buf, cap * 2) : NULL;
            if (!more) fail("plan", -1, E2BIG, 0);
            buf = more;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("plan", -1, errno, 0);
        if (n == 0) break;
        len += (size_t)n;
    }
    if (len && buf[len - 1]) fail("plan", -1, EINVAL, 0);   /* a torn last token */
    int n = 0;
    for (size_t i = 0; i < len; i++) n += !buf[i];
    char **out = malloc(sizeof *out * ((size_t)n + 2));
    if (!out) fail("plan", -1, ENOMEM, 0);
    out[0] = name;
    for (size_t i = 0, k = 1; i < len; i += strlen(buf + i) + 1) out[k++] = buf + i;
    out[n + 1] = NULL;
    *tokens = out;
    return n + 1;
}

static void parse(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], RK_VERSION)) fail("plan", -1, EINVAL, 0);
    int i = 2;
    while (i < argc) {
        const char *key = argv[i++];
        if (!strcmp(key, "argv")) { P.argv = &argv[i]; return; }
        if (!strcmp(key, "op") || !strcmp(key, "sop")) {
            int script = key[0] == 's';
            int *count = script ? &P.nsops : &P.nops;
            if (*count >= MAX_OPS) { i = -1; break; }
            if (parse_op(argc, argv, &i, script ? &P.sops[*count] : &P.ops[*count]) < 0) {
                i = -1;
                break;
            }
            (*count)++;
            continue;
        }
        if (i >= argc) { i = -1; break; }
        const char *val = argv[i++];
        if (!strcmp(key, "ns")) P.ns = strtoul(val, NULL, 10);
        else if (!strcmp(key, "lock")) P.lock = strtoul(val, NULL, 10);
        else if (!strcmp(key, "pidns")) P.pidns = atoi(val);
        else if (!strcmp(key, "rootless")) P.rootless = atoi(val);
        else if (!strcmp(key, "host")) P.host = atoi(val);
        else if (!strcmp(key, "profile")) P.profile = atoi(val);
        else if (!strcmp(key, "nsids")) P.nsids = atoi(val);
        else if (!strcmp(key, "uid")) P.uid = strtoul(val, NULL, 10);
        else if (!strcmp(key, "gid")) P.gid = strtoul(val, NULL, 10);
        else if (!strcmp(key, "hostmnt")) P.hostmnt = strtoull(val, NULL, 10);
        else if (!strcmp(key, "parent")) P.parent = atol(val);
        else if (!strcmp(key, "root")) P.root = val;
        else if (!strcmp(key, "idmap")) P.idmap = val;
        else if (!strcmp(key, "cwd")) P.cwd = val;
        else if (!strcmp(key, "nproc")) P.nproc = atoll(val);
        else if (!strcmp(key, "as")) P.as = atoll(val);
        else if (!strcmp(key, "cgroup") && P.ncgroups < MAX_LIST) P.cgroups[P.ncgroups++] = val;
        else if (!strcmp(key, "snap") && P.nsnap < MAX_LIST) P.snap[P.nsnap++] = val;
        else if (!strcmp(key, "pasta") && P.npasta < MAX_LIST - 8) P.pasta[P.npasta++] = val;
        else if (!strcmp(key, "netuid")) P.netuid = atoll(val);
        else if (!strcmp(key, "netmap")) P.netmap = val;
        else if (!strcmp(key, "env") && P.nenv < 4095) P.env[P.nenv++] = (char *)val;
        else if (!strcmp(key, "warm")) P.warm = atoi(val);
        else if (!strcmp(key, "script")) P.script = atoi(val);
        else if (!strcmp(key, "look")) P.look = atoi(val);
        else if (!strcmp(key, "steps")) P.steps = atoi(val);
        else if (!strcmp(key, "seccomp")) P.seccomp = atoi(val);
        else if (!strcmp(key, "template")) P.template = atoi(val);
        else if (!strcmp(key, "fromtemplate")) P.fromtemplate = atoi(val);
        else if (!strcmp(key, "fromidmap")) P.fromidmap = atoi(val);
        else if (!strcmp(key, "keep") && P.nkeep < MAX_LIST) P.keep[P.nkeep++] = val;
        else if (!strcmp(key, "rkeep") && P.nrkeep < MAX_LIST) P.rkeep[P.nrkeep++] = val;
        else break;
    }
    fail("plan", -1, EINVAL, 0);   /* an unknown key, or no argv */
}

/* -- small helpers -------------------------------------------------------------------- */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, strlen(text));
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* -- %show steps: the setup, recorded -------------------------------------------------- */
/* With `steps 1` in the plan (a setup key: a prepared container records too), every step
 * is timed and followed by a copy of the mount table as it then is, appended to a memfd:
 * A records the host's table, the cgroups it joins and the id map; B the clone that made
 * it and each operation; C its user namespace, its own operations and the exec.  One
 * record: `step KIND INDEX STARTED ENDED LEN DETAIL\n` (CLOCK_MONOTONIC seconds; DETAIL:
 * what only this process knows, e.g. the flags of a clone) and LEN bytes of mountinfo
 * (LEN -1: as in the record before; -2: could not be read; -3: past the budget), which
 * sandbox/recording.py reads and views/calls.py words.  B hands the memfd to the kernel
 * once C has its copy (hand_over_steps) and closes it; C's copy is close-on-exec, so no
 * process of the cell holds it while the script runs.  Without `steps`, record() returns at once. */
#define STEPS_BUDGET (16 << 20)
static int steps_fd = -1;
static char *steps_prev;          /* the last table written, to write -1 for an equal one */
static size_t steps_prev_len, steps_written;
static double step_started;       /* set before a clone, read by the child it makes */

static void write_all(int fd, const char *buf, size_t len) {
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        buf += n;
        len -= (size_t)n;
    }
}

/* Steps that cannot change the mount table: their record says "as before" unread. */
static int keeps_table(const char *kind, int index) {
    if (!strcmp(kind, "rlimit") || !strcmp(kind, "wait") || !strcmp(kind, "exec") ||
        !strcmp(kind, "seccomp") || !strcmp(kind, "netns") || !strcmp(kind, "pasta")) return 1;
    const struct op *op = !strcmp(kind, "op") && index < P.nops ? &P.ops[index]
                        : !strcmp(kind, "sop") && index < P.nsops ? &P.sops[index] : NULL;
    return op && (op->kind == OP_MKDIR || op->kind == OP_SYMLINK || op->kind == OP_HOSTNAME ||
                  op->kind == OP_LOOPBACK || op->kind == OP_UNREACHABLE);
}

static void record(const char *kind, int index, double started, const char *detail) {
    if (!P.steps) return;
    double ended = now();
    int saved = errno;
    if (steps_fd < 0 && (steps_fd = memfd_create("rootfs-steps", MFD_CLOEXEC)) < 0) {
        P.steps = 0;   /* no record: the kernel says the view could not be taken */
        errno = saved;
        return;
    }
    size_t len = 0, cap = 1 << 16;
    long long shown = -2;
    int same = steps_prev && keeps_table(kind, index);
    char *buf = same ? NULL : malloc(cap);
    int fd = buf ? open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC) : -1;
    if (same) shown = -1;
    while (fd >= 0) {
        if (len == cap) {
            char *more = cap < STEPS_BUDGET ? realloc(buf, cap * 2) : NULL;
            if (!more) { shown = -3; break; }
            buf = more;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        if (n == 0) { shown = (long long)len; break; }
        len += (size_t)n;
    }
    if (fd >= 0) close(fd);
    if (shown >= 0 && steps_prev && len == steps_prev_len && !memcmp(buf, steps_prev, len))
        shown = -1;
    else if (shown >= 0 && steps_written + len > STEPS_BUDGET)
        shown = -3;
    char head[4352];
    int h = snprintf(head, sizeof head, "step %s %d %.6f %.6f %lld %.4000s\n", kind, index,
                     started, ended, shown, detail && *detail ? detail : "-");
    write_all(steps_fd, head, (size_t)h < sizeof head ? (size_t)h : sizeof head - 1);
    steps_written += (size_t)h;
    if (shown >= 0) {
        write_all(steps_fd, buf, len);
        steps_written += len;
        free(steps_prev);
        steps_prev = buf;
        steps_prev_len = len;
    } else {
        free(buf);
    }
    errno = saved;
}

/* The steps whose words need what only this process knows. */
static void record_host(void) { record("host", -1, now(), NULL); }

static void record_cgroups(double started) {   /* A: the cgroup.procs files it wrote */
    if (!P.steps || !P.ncgroups) return;
    char detail[4000];
    size_t n = 0;
    detail[0] = 0;
    for (int i = 0; i < P.ncgroups && n < sizeof detail; i++)
        n += (size_t)snprintf(detail + n, sizeof detail - n, "%s%s", i ? " " : "", P.cgroups[i]);
    record("cgroup", -1, started, detail);
}

static int from_template;   /* A entered the helper's template for the clone (B knows too) */

static void record_clone(void) {   /* B: the clone A made it with, and its own id maps */
    char detail[64];
    snprintf(detail, sizeof detail, "%lu %u %u%s", P.ns, P.uid, P.gid,
             from_template ? " template" : "");
    record("clone", -1, step_started, detail);
}

static void record_rlimits(double started) {
    if (P.nproc < 0 && P.as < 0) return;
    char detail[64];
    snprintf(detail, sizeof detail, "nproc=%lld as=%lld", P.nproc, P.as);
    record("rlimit", -1, started, detail);
}

static void record_userns(void) {   /* C: the clone B made it with, and the map B wrote */
    char detail[160];
    snprintf(detail, sizeof detail, "%lu %s", P.lock,
             P.idmap ? P.idmap : P.rootless ? "0 0 1" : "0 0 4294967295");
    record("userns", -1, step_started, detail);
}

/* B, once the script's process exists (it records its own steps into the same memfd):
 * the record goes to the kernel with the report's socket, and B keeps nothing of it. */
static void hand_over_steps(void) {
    if (steps_fd < 0) return;
    char text[] = "{\"steps\": 1}\n";
    struct iovec iov = { .iov_base = text, .iov_len = sizeof text - 1 };
    char control[CMSG_SPACE(sizeof(int))];
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                          .msg_controllen = sizeof control };
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &steps_fd, sizeof(int));
    while (sendmsg(RESULT_FD, &msg, MSG_NOSIGNAL) < 0 && errno == EINTR) {}
    close(steps_fd);
    steps_fd = -1;
    free(steps_prev);
    steps_prev = NULL;
}

static int root_fd = -1;
static int host_root_fd = -1;   /* the host's tree, while B steps into the new root */

static int open_in_root(const char *path, int flags) {
    struct open_how how = { .flags = flags | O_CLOEXEC,
                            .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
    while (*path == '/') path++;
    return syscall(SYS_openat2, root_fd, *path ? path : ".", &how, sizeof how);
}

/* An O_PATH fd for path inside the new root, creating what is missing ("dir"/"file");
 * symlinks in the image cannot lead out of it (RESOLVE_IN_ROOT). */
static int resolve(const char *path, const char *create) {
    int fd = open_in_root(path, O_PATH);
    if (fd >= 0 || errno != ENOENT || !create || !*create) return fd;
    char buf[4096];
    if (strlen(path) >= sizeof buf) { errno = ENAMETOOLONG; return -1; }
    strcpy(buf, path);
    int depth = 0, parent = root_fd;
    char *p = buf;
    while (*p == '/') p++;
    while (*p) {
        char *end = strchr(p, '/');
        int last = 1;
        if (end) { *end = 0; char *q = end + 1; while (*q == '/') q++; last = !*q; }
        depth++;
        /* buf up to here is the prefix; open it in the root */
        fd = open_in_root(buf, O_PATH | (last ? 0 : O_DIRECTORY));
        if (fd < 0 && errno == ENOENT) {
            int made = (last && !strcmp(create, "file"))
                ? openat(parent, p, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644)
                : mkdirat(parent, p, 0755);
            if (made < 0 && errno == EEXIST) fail("dangling", current_op, EEXIST, depth);
            if (made < 0) { if (parent != root_fd) close(parent); return -1; }
            if (last && !strcmp(create, "file")) close(made);
            fd = open_in_root(buf, O_PATH | (last ? 0 : O_DIRECTORY));
        }
        if (parent != root_fd) close(parent);
        if (fd < 0) return -1;
        parent = fd;
        if (!end || last) break;
        *end = '/';
        p = end + 1;
        while (*p == '/') p++;
    }
    return parent;
}

static void fdpath(char *buf, int fd) { snprintf(buf, 64, "/proc/self/fd/%d", fd); }

static void make_readonly(const char *path, int recursive) {
    int fd = open_in_root(path, O_PATH);  /* reopened: now the root of the new mount */
    CHECK(fd);
    struct mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY };
    CHECK(syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0),
                  &attr, sizeof attr));
    close(fd);
}

/* Where paths "in the root" resolve: the new root until the switch, then "/" (which is
 * also where the script's operations, in C, resolve theirs). */
static const char *root_path;

static void open_root(void) {
    if (root_fd < 0)
        CHECK(root_fd = open(root_path ? root_path : P.root, O_PATH | O_DIRECTORY | O_CLOEXEC));
}

/* The %show changes layers are opened before the root switch hides them. */
static int snapfds[MAX_LIST], nsnapfds = -1;
static void before_switch(void) {
    if (nsnapfds >= 0) return;
    nsnapfds = 0;
    for (int i = 0; i < P.nsnap; i++)  /* -1: could not be opened (snapshots.py says so) */
        snapfds[nsnapfds++] = open(P.snap[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd >= 0) { close(root_fd); root_fd = -1; }
    if (host_root_fd >= 0) { close(host_root_fd); host_root_fd = -1; }
}

/* Things the setup did differently than asked, reported with the result (report.py
 * words them): {op index, what}. */
static struct { int index; const char *what; } notes[MAX_LIST];
static int nnotes;
static void note(const char *what) {
    if (nnotes < MAX_LIST) { notes[nnotes].index = current_op; notes[nnotes].what = what; nnotes++; }
}

/* A user namespace with the plan's idmap, for idmapped mounts (the image's layers, %bind).
 * A makes it, before B exists, through a child that only waits: B is PID 1 of a new PID
 * namespace whose pids the /proc it can see does not show.  B inherits the fd. */
static int idmap_fd = -1;
static void make_idmap_userns(void) {
    int ready[2];
    CHECK(pipe2(ready, O_CLOEXEC));
    pid_t pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid < 0) fail("clone", -1, errno, 0);   /* user namespaces refused: say so */
    if (pid == 0) {
        char c;
        close(ready[1]);
        (void)!read(ready[0], &c, 1);
        _exit(0);
    }
    close(ready[0]);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
    int ok = write_file(path, P.idmap) == 0;
    snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
    ok = ok && write_file(path, P.idmap) == 0;
    snprintf(path, sizeof path, "/proc/%d/ns/user", (int)pid);
    int saved = errno;
    if (ok) idmap_fd = open(path, O_RDONLY | O_CLOEXEC);
    else errno = saved;
    saved = errno;
    close(ready[1]);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    errno = saved;
    if (idmap_fd < 0) fail("idmap", -1, errno, 0);
}

/* A detached copy of `source` shown through the idmap (and read-only if asked), or -1
 * with errno (EINVAL/EOPNOTSUPP: this filesystem cannot be idmapped). */
static int idmapped_tree(const char *source, int recursive, int readonly) {
    int tree = syscall(SYS_open_tree, AT_FDCWD, source,
                       OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0));
    if (tree < 0) return -1;
    struct mount_attr attr = { .attr_set = MOUNT_ATTR_IDMAP | (readonly ? MOUNT_ATTR_RDONLY : 0),
                               .userns_fd = (uint64_t)idmap_fd };
    if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0),
                &attr, sizeof attr) < 0) {
        int saved = errno;
        close(tree);
        errno = saved;
        return -1;
    }
    return tree;
}

/* Before the root switch, a cell's own mounts are made from inside the new root, so the
 * paths among their options (overlay's lowerdir=...) resolve there, never on the host. */
static void enter_root(void) {
    if (host_root_fd < 0) CHECK(host_root_fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
    CHECK(fchdir(root_fd));
    CHECK(chroot("."));
}
static void leave_root(void) {
    CHECK(fchdir(host_root_fd));
    CHECK(chroot("."));
    CHECK(chdir("/"));
}

/* -- the cell's network (%net user) --------------------------------------------------- */
/* Every cell has a network namespace of its own; with `%net user` pasta gives it
 * outbound access (plan.py's PASTA_OPTIONS), as rootless podman does:
 *
 *   A lists the host's addresses (getifaddrs), for op_unreachable in the new namespace;
 *   root mode: A forks K, which becomes the unprivileged id netuid and makes a user and
 *     a network namespace (so the namespace's owner is that id, not root, and pasta runs
 *     as it); A writes K's id map and hands B the network namespace, which B joins first
 *     thing (setns); as an ordinary user, B's clone makes it, owned by B's user namespace;
 *   A starts pasta for that namespace (--userns/--netns of K or B) and waits until it says
 *     it is ready (its --pid file: a pipe that K or B holds, which pasta opens through
 *     /proc/K|B/fd/N once it has joined their user namespace), then tells B (net_ready: 0
 *     or an errno), which starts the script only then;
 *   when B has exited, A kills pasta; PR_SET_PDEATHSIG kills it if A is killed first.
 *
 * The script does not own this namespace: it cannot change its addresses and routes
 * (nor the routes op_unreachable made), and pasta forwards no port either way. */
#define MAX_ADDRS 4096   /* more: refused (E2BIG), never a host address left reachable */
static struct { int family; unsigned char addr[16]; } host_addrs[MAX_ADDRS];
static int nhost_addrs;
static int net_ready[2] = {-1, -1};   /* A -> B: an int, 0 or an errno (pasta failed) */
static int netns_fd = -1;             /* root mode: K's network namespace, for B's setns */
static pid_t pasta_pid = -1, netns_keeper = -1;
static int keeper_go = -1;            /* EOF tells K that pasta has its namespaces */
static int pidfile[2] = {-1, -1};     /* pasta's --pid file */

static void list_host_addresses(void) {
    struct ifaddrs *all, *a;
    if (getifaddrs(&all) < 0) fail("net", -1, errno, 0);
    for (a = all; a; a = a->ifa_next) {
        int family = a->ifa_addr ? a->ifa_addr->sa_family : AF_UNSPEC;
        const unsigned char *at =
            family == AF_INET ? (const unsigned char *)&((struct sockaddr_in *)a->ifa_addr)->sin_addr
            : family == AF_INET6 ? ((struct sockaddr_in6 *)a->ifa_addr)->sin6_addr.s6_addr : NULL;
        /* 127/8 and ::1 are the cell's own loopback in its namespace; any other address,
         * on lo or not, is the host's. */
        if (!at || (family == AF_INET && at[0] == 127) ||
            (family == AF_INET6 && IN6_IS_ADDR_LOOPBACK((const struct in6_addr *)at)))
            continue;
        if (nhost_addrs == MAX_ADDRS) fail("net", -1, E2BIG, 0);
        host_addrs[nhost_addrs].family = family;
        memcpy(host_addrs[nhost_addrs++].addr, at, family == AF_INET ? 4 : 16);
    }
    freeifaddrs(all);
}

/* Close every fd but the `n` in keep: close_range(2) over the gaps, lowest first. */
static void close_except(const int *keep, int n) {
    int from = 0;
    for (;;) {
        int next = INT_MAX;
        for (int i = 0; i < n; i++) if (keep[i] >= from && keep[i] < next) next = keep[i];
        if (next == INT_MAX) break;
        if (next > from) syscall(SYS_close_range, (unsigned)from, (unsigned)next - 1, 0);
        from = next + 1;
    }
    syscall(SYS_close_range, (unsigned)from, ~0U, 0);
}

static void become_net_user(void) {   /* root mode: K and pasta are the id netuid */
    uid_t id = (uid_t)P.netuid;
    if (setgroups(0, NULL) < 0 || setresgid(id, id, id) < 0 || setresuid(id, id, id) < 0)
        _exit(SETUP_FAILED);
}

/* Root mode, before B exists: K, the unprivileged owner of the cell's network namespace.
 * It holds the --pid file's pipe (pasta opens it through /proc/K/fd, as the same id)
 * until pasta is ready. */
static void make_user_netns(void) {
    int ready[2], go[2];
    CHECK(pipe2(ready, O_CLOEXEC));
    CHECK(pipe2(go, O_CLOEXEC));
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) fail("net", -1, errno, 0);
    if (pid == 0) {
        int keep[] = {ready[1], go[0], pidfile[1]}, err = 0;
        close_except(keep, 3);   /* none of the cell's channels */
        become_net_user();
        prctl(PR_SET_PDEATHSIG, SIGKILL);   /* after the id change, which clears it */
        if (getppid() != parent) _exit(SETUP_FAILED);
        prctl(PR_SET_DUMPABLE, 1);          /* pasta, the same id, may open our /proc */
        if (unshare(CLONE_NEWUSER | CLONE_NEWNET) < 0) err = errno;
        (void)!write(ready[1], &err, sizeof err);
        char c;
        (void)!read(go[0], &c, 1);
        _exit(0);
    }
    netns_keeper = pid;
    close(ready[1]);
    close(go[0]);
    keeper_go = go[1];
    int err = EPIPE;
    if (read(ready[0], &err, sizeof err) != sizeof err) err = EPIPE;
    close(ready[0]);
    if (err) fail("net", -1, err, 0);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
    if (write_file(path, P.netmap) < 0) fail("net", -1, errno, 0);
    snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
    if (write_file(path, P.netmap) < 0) fail("net", -1, errno, 0);
    snprintf(path, sizeof path, "/proc/%d/ns/net", (int)pid);
    if ((netns_fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) fail("net", -1, errno, 0);
}

/* A, before its clone: what B needs for its network, made now. */
static void prepare_net(void) {
    if (!P.npasta) return;
    list_host_addresses();
    CHECK(pipe2(net_ready, O_CLOEXEC));
    CHECK(pipe2(pidfile, O_CLOEXEC));
    if (P.netuid >= 0) {
        /* pasta, as netuid, opens it through /proc/K/fd: the pipe must be its to write. */
        CHECK(fchown(pidfile[1], (uid_t)P.netuid, (gid_t)P.netuid));
        make_user_netns();
    }
}

/* A, once B exists: start pasta for the cell's namespace (K's, or B's own) and wait
 * until it is ready; its words go to the cell's stderr (`err_out`) if it fails. Returns
 * 0 or an errno for B. */
#define PASTA_SECONDS 10
static int start_pasta(pid_t init, int err_out) {
    pid_t target = netns_keeper > 0 ? netns_keeper : init;   /* and the pid file's holder */
    char user[64], net[64], pid_path[64];
    snprintf(user, sizeof user, "/proc/%d/ns/user", (int)target);
    snprintf(net, sizeof net, "/proc/%d/ns/net", (int)target);
    snprintf(pid_path, sizeof pid_path, "/proc/%d/fd/%d", (int)target, pidfile[1]);
    const char *argv[MAX_LIST + 1];
    int n = 0;
    for (int i = 0; i < P.npasta; i++) argv[n++] = P.pasta[i];
    argv[n++] = "--userns"; argv[n++] = user;
    argv[n++] = "--netns"; argv[n++] = net;
    argv[n++] = "--pid"; argv[n++] = pid_path;
    argv[n] = NULL;
    int words[2];
    if (pipe2(words, O_CLOEXEC) < 0) return errno;
    pid_t me = getpid();
    pid_t pid = fork();
    if (pid < 0) { int e = errno; close(words[0]); close(words[1]); return e; }
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        if (null < 0 || dup2(null, 0) < 0 || dup2(words[1], 1) < 0 || dup2(words[1], 2) < 0)
            _exit(RK_EXIT_CANNOT_RUN);
        syscall(SYS_close_range, 3U, ~0U, 0);
        if (P.netuid >= 0) become_net_user();
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != me) _exit(SETUP_FAILED);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        execve(argv[0], (char *const *)argv, (char *[]){NULL});
        dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(RK_EXIT_CANNOT_RUN);
    }
    pasta_pid = pid;
    close(words[1]);
    /* Ready: it wrote its pid. Gone: its output ended (it exited). */
    char said[2048];
    size_t len = 0;
    int result = ETIMEDOUT;
    double deadline = now() + PASTA_SECONDS;
    for (;;) {
        struct pollfd fds[2] = {{pidfile[0], POLLIN, 0}, {words[0], POLLIN, 0}};
        int wait = (int)((deadline - now()) * 1000);
        if (wait <= 0) break;
        int ready = poll(fds, 2, wait);
        if (ready < 0 && errno == EINTR) continue;
        if (ready < 0) { result = errno; break; }
        if (fds[0].revents & POLLIN) { result = 0; break; }
        if (fds[1].revents) {
            ssize_t got = read(words[0], said + len, sizeof said - 1 - len);
            if (got > 0) { len += (size_t)got; if (len < sizeof said - 1) continue; }
            if (got < 0 && errno == EINTR) continue;
            result = ECHILD;   /* pasta exited without being ready */
            break;
        }
    }
    close(words[0]);
    said[len] = 0;
    char *save, *line;
    for (line = strtok_r(said, "\n", &save); result && line; line = strtok_r(NULL, "\n", &save))
        if (strncmp(line, "Failed to send", 14))   /* no syslog here: not its point */
            dprintf(err_out, "pasta: %s\n", line);
    return result;
}

/* B, before its script starts: A's word that pasta is ready. */
static void wait_for_net(void) {
    if (!P.npasta) return;
    double started = now();
    int err = EPIPE;
    while (read(net_ready[0], &err, sizeof err) < 0 && errno == EINTR) {}
    close(net_ready[0]);
    if (pidfile[1] >= 0) close(pidfile[1]);
    if (err) fail("net", -1, err, 0);
    record("pasta", -1, started, NULL);
}

/* -- the operations (ops.py defines them, plan.py makes the list) --------------------- */
static void op_propagation(const struct op_propagation *o) {
    /* First, before anything is mounted: no mount of ours may reach the host, and
     * pivot_root refuses a shared parent. */
    if (!strcmp(o->mode, "private")) CHECK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));
    else if (!strcmp(o->mode, "slave")) CHECK(mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL));
    else if (o->root_switch) CHECK(mount(NULL, "/", NULL, MS_PRIVATE, NULL));
}

static void op_private_parent(const struct op_private_parent *o) {
    /* %propagation shared keeps the host's peer groups: the mount that holds the scratch
     * directory goes private, or the setup's own mounts below it would reach the host.
     * Its mount point: the first mount root walking up from the real path. */
    char buf[PATH_MAX];
    if (!realpath(o->path, buf)) fail("errno", current_op, errno, 0);
    for (;;) {
        struct statx stx;
        CHECK(statx(AT_FDCWD, buf, AT_SYMLINK_NOFOLLOW, 0, &stx));
        if (!(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)) fail("errno", current_op, ENOSYS, 0);
        if ((stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) || !strcmp(buf, "/")) break;
        char *slash = strrchr(buf, '/');
        slash[slash == buf] = 0;  /* "/a" -> "/", "/a/b" -> "/a" */
    }
    CHECK(mount(NULL, buf, NULL, MS_PRIVATE, NULL));
}

static void op_private_tree(const struct op_private_tree *o) {
    /* %propagation shared: the standard binds joined the host's peer groups; nothing of
     * ours below the new root may propagate (a mask would land on the host's /sys). */
    char where[64];
    open_root();
    int fd = *o->path ? open_in_root(o->path, O_PATH) : dup(root_fd);
    CHECK(fd);
    fdpath(where, fd);
    CHECK(mount(NULL, where, NULL, MS_REC | MS_PRIVATE, NULL));
    close(fd);
}

static void op_unbindable(const struct op_unbindable *o) {
    /* The cell's scratch tmpfs: a recursive bind of a host directory above it (%bind /tmp)
     * must not copy the cell's own root and layers into the cell. */
    CHECK(mount(NULL, o->path, NULL, MS_UNBINDABLE, NULL));
}

static void op_mkdir(const struct op_mkdir *o) {
    /* mkdir -p of the helper's directories, one component at a time from "/" through
     * O_NOFOLLOW fds: a symlink anywhere on the way is refused, not followed. Parents it
     * makes are 0700 (the kept layers are nobody else's), the last one gets its mode and,
     * when asked, the cell's root as owner (fchownat on its fd). What was there already
     * must be no one else's to change: not writable by others unless sticky (/tmp), and
     * the last one owned by whom it is made for. The kernel proved the runtime directory
     * its own (rundir.py); this refuses what it did not make (kind "not-ours"). */
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", o->path) >= (int)sizeof buf)
        fail("errno", current_op, ENAMETOOLONG, 0);
    int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC), depth = 0, made = 0;
    CHECK(fd);
    char *save = NULL;
    for (char *part = strtok_r(buf, "/", &save); part; ) {
        char *next = strtok_r(NULL, "/", &save);
        depth++;
        made = mkdirat(fd, part, next ? 0700 : (mode_t)o->mode) == 0;
        if (!made && errno != EEXIST) fail("errno", current_op, errno, depth);
        int sub = openat(fd, part, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {   /* a symlink is ENOTDIR here: say which it is */
            struct stat link;
            int err = errno;
            if (fstatat(fd, part, &link, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(link.st_mode))
                err = ELOOP;
            fail("not-ours", current_op, err, depth);
        }
        close(fd);
        fd = sub;
        struct stat st;
        CHECK(fstat(fd, &st));
        uid_t owner = o->uid >= 0 ? (uid_t)o->uid : geteuid();
        if (!made && (((st.st_mode & 022) && !(st.st_mode & S_ISVTX))
                      || (!next && st.st_uid != owner)))
            fail("not-ours", current_op, EPERM, depth);
        part = next;
    }
    if (o->uid >= 0) CHECK(fchownat(fd, "", (uid_t)o->uid, (gid_t)o->gid, AT_EMPTY_PATH));
    close(fd);
}

static void op_layer(const struct op_layer *o) {
    /* An image layer, idmapped: its files (owned by the image's ids, 0 for root) show as
     * the cell's ids, which are an unprivileged range on the host. */
    if (mkdir(o->target, 0755) < 0 && errno != EEXIST) fail("errno", current_op, errno, 0);
    int tree = idmapped_tree(o->source, 0, 1);
    CHECK(tree);
    CHECK(syscall(SYS_move_mount, tree, "", AT_FDCWD, o->target, MOVE_MOUNT_F_EMPTY_PATH));
    close(tree);
}

static void op_mount(const struct op_mount *o) {
    const char *data = *o->data ? o->data : NULL;
    if (!o->in_root) {  /* a host path: the scratch tmpfs, the overlay, the script's sysfs */
        CHECK(mount(o->source, o->target, o->fstype, (unsigned long)o->flags, data));
        return;
    }
    /* In the new root: through an fd opened there, so the image's symlinks cannot lead
     * the mount out of it. */
    char where[64];
    open_root();
    int fd = resolve(o->target, o->create);
    CHECK(fd);
    if (!root_path) {  /* before the switch: from inside the new root (enter_root) */
        enter_root();
        CHECK(fchdir(fd));
        CHECK(mount(o->source, ".", o->fstype, (unsigned long)o->flags, data));
        leave_root();
    } else {
        fdpath(where, fd);
        CHECK(mount(o->source, where, o->fstype, (unsigned long)o->flags, data));
    }
    close(fd);
}

static void op_bind(const struct op_bind *o) {
    /* A host path into the new root: its target made like the source (dir or file). */
    struct stat st;
    char where[64];
    if (stat(o->source, &st) < 0) {
        if (errno == ENOENT && o->optional) return;
        fail(errno == ENOENT ? "bind-source" : "errno", current_op, errno, 0);
    }
    const char *create = o->create;
    if (!strcmp(create, "like-source")) create = S_ISDIR(st.st_mode) ? "dir" : "file";
    int fd;
    if (o->in_root) {
        open_root();
        fd = resolve(o->target, create);
    } else {
        fd = open(o->target, O_PATH | O_CLOEXEC);
    }
    CHECK(fd);
    if (o->idmap && idmap_fd >= 0) {
        /* %bind in a cell whose root is unprivileged: there, and only there, the cell
         * acts as the files' host owners (what the line grants). */
        int tree = idmapped_tree(o->source, o->rec, o->readonly);
        if (tree >= 0) {
            CHECK(syscall(SYS_move_mount, tree, "", fd, "",
                          MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH));
            close(tree);
            close(fd);
            return;
        }
        if (errno != EINVAL && errno != EOPNOTSUPP && errno != EPERM)
            fail("errno", current_op, errno, 0);
        note("no-idmap");  /* its files show as nobody's; a plain bind */
    }
    fdpath(where, fd);
    CHECK(mount(o->source, where, NULL, MS_BIND | (o->rec ? MS_REC : 0), NULL));
    close(fd);
    if (o->readonly) {
        if (o->in_root) make_readonly(o->target, o->rec);
        else {
            int top = open(o->target, O_PATH | O_CLOEXEC);
            CHECK(top);
            struct mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY };
            CHECK(syscall(SYS_mount_setattr, top, "",
                          AT_EMPTY_PATH | (o->rec ? AT_RECURSIVE : 0), &attr, sizeof attr));
            close(top);
        }
    }
    if (o->program) {
        /* The %%c program runs even from a noexec mount (Debian's /run): this bind is
         * only that file, made by the kernel.  A flag locked by a user namespace (an
         * ordinary user's cell) stays, and the exec says why. */
        int top = o->in_root ? open_in_root(o->target, O_PATH)
                             : open(o->target, O_PATH | O_CLOEXEC);
        CHECK(top);
        struct mount_attr attr = { .attr_clr = MOUNT_ATTR_NOEXEC };
        if (syscall(SYS_mount_setattr, top, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0 &&
            errno != EPERM)
            fail("errno", current_op, errno, 0);
        close(top);
    }
}

static void op_mask(const struct op_mask *o) {
    /* runc's masked paths: an empty read-only tmpfs over a directory, /dev/null over a
     * file, so what the host's /proc and /sys show there stays hidden. */
    char where[64];
    struct stat st;
    open_root();
    int fd = open_in_root(o->path, O_PATH);
    if (fd < 0 && (errno == ENOENT || errno == ENOTDIR)) return;  /* not in this image */
    CHECK(fd);
    fdpath(where, fd);
    CHECK(stat(where, &st));
    if (S_ISDIR(st.st_mode)) CHECK(mount("tmpfs", where, "tmpfs", MS_RDONLY, "size=0"));
    else CHECK(mount("/dev/null", where, NULL, MS_BIND, NULL));
    close(fd);
}

static void op_readonly(const struct op_readonly *o) {
    /* runc's read-only paths: readable, but no sysctl or sysrq write reaches the host. */
    char where[64];
    open_root();
    int fd = open_in_root(o->path, O_PATH);
    if (fd < 0 && (errno == ENOENT || errno == ENOTDIR)) return;  /* not in this image */
    CHECK(fd);
    fdpath(where, fd);
    CHECK(mount(where, where, NULL, MS_BIND | MS_REC, NULL));
    close(fd);
    make_readonly(o->path, 1);
}

static void op_symlink(const struct op_symlink *o) {
    /* The /dev links (fd, stdin, ptmx, ...) and the script's name (plan.py's SCRIPT_NAME),
     * made in the root's own /dev, its directories made when missing. */
    char head[4096];
    open_root();
    snprintf(head, sizeof head, "%s", o->path);
    size_t len = strlen(head);
    while (len > 1 && head[len - 1] == '/') head[--len] = 0;
    char *slash = strrchr(head, '/');
    const char *name = slash ? slash + 1 : head;
    if (slash) *slash = 0;
    int dir = slash && *head ? resolve(head, "dir") : open_in_root("/", O_PATH | O_DIRECTORY);
    CHECK(dir);
    if (symlinkat(o->target, dir, name) < 0 && errno != EEXIST) fail("errno", current_op, errno, 0);
    close(dir);
}

static void op_pivot_root(const struct op_pivot_root *o) {
    /* The documented sequence: the old root is stacked under the new one at "." and
     * detached, so nothing of the host's tree stays reachable. */
    before_switch();
    CHECK(chdir(o->root));
    if (syscall(SYS_pivot_root, ".", ".") < 0) {
        if (errno != EINVAL) fail("errno", current_op, errno, 0);
        /* A root on the initial ramfs cannot be pivoted away from: move the new root
         * over it and chroot, as runc's no-pivot does (a chroot escape then ends in the
         * new root: ".." cannot climb above a mount on the absolute root). */
        CHECK(mount(".", "/", NULL, MS_MOVE, NULL));
        CHECK(chroot("."));
        CHECK(chdir("/"));
        note("no-pivot");
        root_path = "/";
        return;
    }
    /* The old root sits on top of ".": with %propagation shared its mounts are still
     * peers of the host's, and detaching them would unmount the host's own (runc). */
    CHECK(mount(NULL, ".", NULL, MS_REC | MS_SLAVE, NULL));
    CHECK(umount2(".", MNT_DETACH));
    CHECK(chdir("/"));
    root_path = "/";
}

static void op_chroot(const struct op_chroot *o) {
    /* %root chroot: the old root stays reachable (the seed's escape works, on purpose;
     * in a locked kernel B has pivoted into the container first, and the escape ends
     * there).  A chrooted process may not create a user namespace, so when the script is
     * locked C does this one (plan.py puts it among the script's operations). */
    before_switch();
    CHECK(chdir(o->root));
    CHECK(chroot("."));
    CHECK(chdir("/"));
    root_path = "/";
}

static void op_hostname(const struct op_hostname *o) {
    /* The cell's own names (its UTS namespace started as a copy of the host's), so
     * `hostname` shows it is not the host and the host's domain name does not show. */
    /* A container runtime's seccomp profile may refuse both (podman's and Docker's do
     * without CAP_SYS_ADMIN): the namespace is still the cell's own, its names a copy. */
    if (sethostname(o->name, strlen(o->name)) < 0 && errno != EPERM)
        fail("errno", current_op, errno, 0);
    if (setdomainname(o->domain, strlen(o->domain)) < 0 && errno != EPERM)
        fail("errno", current_op, errno, 0);
}

static void op_loopback(const struct op_loopback *o) {
    /* A new network namespace's lo is down: up, as `ip link set lo up` does it. */
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", o->name);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(fd);
    CHECK(ioctl(fd, SIOCGIFFLAGS, &ifr));
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) {
        /* An unlocked cell (%propagation shared) keeps the kernel's own user namespace,
         * whose capabilities a container runtime may give without CAP_NET_ADMIN: its
         * network stays its own, only lo stays down (said once). */
        if (errno != EPERM) fail("errno", current_op, errno, 0);
        note("no-loopback");
    }
    close(fd);
}

static void unreachable_route(int fd4, int fd6, int family, const void *addr) {
    int r;
    if (family == AF_INET) {
        struct rtentry rt;
        memset(&rt, 0, sizeof rt);
        struct sockaddr_in *dst = (struct sockaddr_in *)&rt.rt_dst;
        struct sockaddr_in *mask = (struct sockaddr_in *)&rt.rt_genmask;
        dst->sin_family = mask->sin_family = AF_INET;
        memcpy(&dst->sin_addr, addr, 4);
        mask->sin_addr.s_addr = 0xffffffff;
        rt.rt_flags = RTF_UP | RTF_HOST | RTF_REJECT;
        r = ioctl(fd4, SIOCADDRT, &rt);
    } else {
        struct in6_rtmsg rt;
        memset(&rt, 0, sizeof rt);
        memcpy(&rt.rtmsg_dst, addr, 16);
        rt.rtmsg_dst_len = 128;
        rt.rtmsg_flags = RTF_UP | RTF_REJECT;
        rt.rtmsg_type = 7;   /* RTN_UNREACHABLE */
        rt.rtmsg_metric = 1;
        r = ioctl(fd6, SIOCADDRT, &rt);
    }
    if (r < 0 && errno != EEXIST) fail("errno", current_op, errno, 0);
}

static void op_unreachable(const struct op_unreachable *o) {
    /* %net user: the host's own addresses (and the extra ones) lead nowhere from the
     * cell's namespace, as SIOCADDRT's reject routes (`ip route add unreachable ADDR`). */
    int fd4 = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int fd6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(fd4);
    for (int i = 0; i < nhost_addrs; i++)
        if (host_addrs[i].family == AF_INET || fd6 >= 0)
            unreachable_route(fd4, fd6, host_addrs[i].family, host_addrs[i].addr);
    char buf[1024], *word, *rest;
    snprintf(buf, sizeof buf, "%s", o->extra);
    for (word = strtok_r(buf, " ", &rest); word; word = strtok_r(NULL, " ", &rest)) {
        unsigned char addr[16];
        if (inet_pton(AF_INET, word, addr) == 1) unreachable_route(fd4, fd6, AF_INET, addr);
        else if (fd6 >= 0 && inet_pton(AF_INET6, word, addr) == 1)
            unreachable_route(fd4, fd6, AF_INET6, addr);
    }
    close(fd4);
    if (fd6 >= 0) close(fd6);
}

static void run_op(const struct op *op) {
    switch (op->kind) {
    case OP_PROPAGATION: op_propagation(&op->propagation); break;
    case OP_PRIVATE_PARENT: op_private_parent(&op->private_parent); break;
    case OP_PRIVATE_TREE: op_private_tree(&op->private_tree); break;
    case OP_UNBINDABLE: op_unbindable(&op->unbindable); break;
    case OP_MKDIR: op_mkdir(&op->mkdir); break;
    case OP_LAYER: op_layer(&op->layer); break;
    case OP_MOUNT: op_mount(&op->mount); break;
    case OP_BIND: op_bind(&op->bind); break;
    case OP_MASK: op_mask(&op->mask); break;
    case OP_READONLY: op_readonly(&op->readonly); break;
    case OP_SYMLINK: op_symlink(&op->symlink); break;
    case OP_PIVOT_ROOT: op_pivot_root(&op->pivot_root); break;
    case OP_CHROOT: op_chroot(&op->chroot); break;
    case OP_HOSTNAME: op_hostname(&op->hostname); break;
    case OP_LOOPBACK: op_loopback(&op->loopback); break;
    case OP_UNREACHABLE: op_unreachable(&op->unreachable); break;
    case OP_KINDS: fail("plan", current_op, EINVAL, 0);
    }
}

/* -- the script ----------------------------------------------------------------------- */
static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

/* The cell's seccomp filter (seccomp.py: Docker's default profile, adapted; refused
 * calls answer EPERM), installed last before the exec so that nothing of the setup meets
 * it.  Without no_new_privs: the script's process is root of its own user namespace, and
 * CAP_SYS_ADMIN there is what the kernel asks for (set-uid programs keep working). */
static void install_seccomp(void) {
#ifndef RK_SECCOMP_NONE
    if (!P.seccomp) return;
    double t = now();
    struct sock_fprog prog = { .len = sizeof rk_seccomp_filter / sizeof *rk_seccomp_filter,
                               .filter = (struct sock_filter *)rk_seccomp_filter };
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) {
        dprintf(2, "rootfs-kernel: the cell's seccomp filter could not be installed (%s); "
                "`%%seccomp off` runs a cell without it\n", strerror(errno));
        _exit(SETUP_FAILED);
    }
    char detail[24];
    snprintf(detail, sizeof detail, "%u", (unsigned)prog.len);
    record("seccomp", -1, t, detail);
#endif
}

static _Noreturn void exec_script(void) {
    install_seccomp();
    record("exec", -1, now(), P.argv[0]);   /* the last step; its copy of the record closes */
    sigset_t none;
    sigemptyset(&none);
    for (int s = 1; s < NSIG; s++) if (s != SIGKILL && s != SIGSTOP) signal(s, SIG_DFL);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setsid();  /* the kernel's SIGINT to its process group must miss the script */
    if (!P.cwd || chdir(P.cwd) < 0) (void)chdir("/");
    if (P.script && dup2(SCRIPT_FD, SCRIPT_SHELL_FD) < 0) fail("errno", -1, errno, 0);
    close(SCRIPT_FD);
    P.env[P.nenv] = NULL;
    execve(P.argv[0], P.argv, P.env);
    if (errno == E2BIG)   /* plan.py: only a cell whose mounts hide the pipe uses -c */
        dprintf(2, "rootfs-kernel: the cell is too long for `%s -c` (128 KiB at most): a "
                "cell whose own mounts hide /proc or /dev is handed to -c; any other "
                "takes any length\n", P.argv[0]);
    else
        dprintf(2, "rootfs-kernel: cannot run %s: %s\n", P.argv[0], strerror(errno));
    _exit(RK_EXIT_CANNOT_RUN);
}

/* The setrlimit fallback: lower a limit, never raise it (that needs CAP_SYS_RESOURCE of
 * the host, which a cell's init may not have; a host's own lower limit still holds). */
static void lower_rlimit(int resource, long long value) {
    struct rlimit r;
    CHECK(getrlimit(resource, &r));
    if (r.rlim_max != RLIM_INFINITY && (rlim_t)value > r.rlim_max) value = (long long)r.rlim_max;
    r.rlim_cur = r.rlim_max = (rlim_t)value;
    CHECK(setrlimit(resource, &r));
}

static void apply_rlimits(void) {
    if (P.nproc >= 0) lower_rlimit(RLIMIT_NPROC, P.nproc);
    if (P.as >= 0) lower_rlimit(RLIMIT_AS, P.as);
}

static char nsids[RK_NAMESPACES][64];

static void read_nsids(const char *proc) {
    char path[96];
    for (int i = 0; i < RK_NAMESPACES; i++) {
        snprintf(path, sizeof path, "%s/ns/%s", proc, rk_namespace_names[i]);
        ssize_t n = readlink(path, nsids[i], sizeof nsids[i] - 1);
        nsids[i][n > 0 ? n : 0] = 0;
    }
}

/* The script's namespaces, held open by the init until it exits: their teardown (a
 * mount namespace's costs a grace period of the kernel's RCU) is then the init's exit's
 * work, after the report, not the script's.  Returns the mount namespace's fd, which
 * the init enters for the snapshots (P.look). */
static int hold_namespaces(const char *proc) {
    static const struct { unsigned long flag; const char *name; } held[] = {
        {CLONE_NEWUTS, "uts"}, {CLONE_NEWIPC, "ipc"}, {CLONE_NEWNET, "net"}};
    char path[4300];
    for (size_t i = 0; i < sizeof held / sizeof *held; i++) {
        if (!(P.lock & held[i].flag)) continue;
        snprintf(path, sizeof path, "%s/ns/%s", proc, held[i].name);
        (void)open(path, O_RDONLY | O_CLOEXEC);   /* best effort: only a matter of time */
    }
    snprintf(path, sizeof path, "%s/ns/mnt", proc);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(fd);
    return fd;
}

/* Where the script chroots (plan.py: first of its operations), or NULL: a locked kernel's
 * %root chroot has pivoted already and chroots within "/". */
static const char *chroot_of_script(void) {
    for (int i = 0; i < P.nsops; i++)
        if (P.sops[i].kind == OP_CHROOT) return P.sops[i].chroot.root;
    return NULL;
}

/* Start the script one user + mount namespace below this one: copying the mount
 * namespace into a less privileged user namespace locks every mount made so far. */
static pid_t start_locked(int *ns_fd) {
    int ready[2];
    CHECK(pipe2(ready, O_CLOEXEC));
    pid_t pid = syscall(SYS_clone, P.lock | SIGCHLD, NULL, NULL, NULL, NULL);
    CHECK(pid);
    if (pid == 0) {
        char c;
        close(ready[1]);
        if (read(ready[0], &c, 1) != 1) _exit(SETUP_FAILED);  /* the parent could not map us */
        in_script = 1;
        /* Writing the maps does not change who we are: until these calls the script's
         * process is still the host's root (shown as 65534) for every file it opens. */
        if (P.idmap && (setresgid(0, 0, 0) < 0 || setgroups(0, NULL) < 0 ||
                        setresuid(0, 0, 0) < 0))
            fail("errno", -1, errno, 0);
        record_userns();
        root_path = "/";
        for (current_op = 0; current_op < P.nsops; current_op++) {
            double t = now();
            run_op(&P.sops[current_op]);
            record("sop", current_op, t, NULL);
        }
        exec_script();
    }
    close(ready[0]);
    /* pid is a pid of the cell's PID namespace: look it up in the cell's own /proc (not
     * at /proc yet when the script is still to chroot). */
    const char *into = chroot_of_script();
    char proc[4200], path[4300];
    snprintf(proc, sizeof proc, "%s/proc/%d", into && strcmp(into, "/") ? into : "", (int)pid);
    *ns_fd = hold_namespaces(proc);
    /* Root mode: the plan's unprivileged range (or, for the host-access lines, every id
     * to itself); an ordinary user's cell has only its root. */
    const char *map = P.idmap ? P.idmap : P.rootless ? "0 0 1" : "0 0 4294967295";
    snprintf(path, sizeof path, "%s/uid_map", proc);
    CHECK(write_file(path, map));
    snprintf(path, sizeof path, "%s/gid_map", proc);
    CHECK(write_file(path, map));
    if (P.nsids) read_nsids(proc);
    CHECK(write(ready[1], "1", 1));
    close(ready[1]);
    return pid;
}

/* The overlay's layers (opened before the root switch, for %show changes and ls) go to
 * the kernel now, over the result socket: the init holds no host fd while the script runs
 * (an ordinary user's script could reach it through /proc/1/fd). */
static void hand_over_snapfds(void) {
    int ok = nsnapfds > 0;
    for (int i = 0; i < nsnapfds; i++) ok = ok && snapfds[i] >= 0;
    char text[32];
    int len = snprintf(text, sizeof text, "{\"snaps\": %d}\n", ok ? nsnapfds : nsnapfds > 0 ? -1 : 0);
    struct iovec iov = { .iov_base = text, .iov_len = (size_t)len };
    char control[CMSG_SPACE(sizeof(int) * MAX_LIST)];
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (ok) {
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * nsnapfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nsnapfds);
        memcpy(CMSG_DATA(c), snapfds, sizeof(int) * nsnapfds);
    }
    if (nsnapfds > 0)
        while (sendmsg(RESULT_FD, &msg, MSG_NOSIGNAL) < 0 && errno == EINTR) {}
    for (int i = 0; i < nsnapfds; i++) if (snapfds[i] >= 0) close(snapfds[i]);
    nsnapfds = 0;
}

/* -- B: PID 1 of the cell ------------------------------------------------------------- */
static pid_t script = -1;

static void forward(int sig) {
    if (script <= 0) return;
    if (P.pidns) kill(-1, sig);
    else killpg(script, sig);
}

static void kill_script(int sig) { (void)sig; forward(SIGKILL); }

static void map_ids(void) {
    char map[64];
    CHECK(write_file("/proc/self/setgroups", "deny"));
    snprintf(map, sizeof map, "0 %u 1", P.uid);
    CHECK(write_file("/proc/self/uid_map", map));
    snprintf(map, sizeof map, "0 %u 1", P.gid);
    CHECK(write_file("/proc/self/gid_map", map));
}

static _Noreturn void cell_init(void) {
    static double times[MAX_OPS];
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != (P.pidns ? 0 : P.parent)) _exit(SETUP_FAILED);  /* A already gone */
    if (P.ns & CLONE_NEWUSER) map_ids();
    if (P.npasta) {   /* %net user: A's ends are not ours; root mode: K's namespace */
        close(net_ready[1]);
        close(pidfile[0]);
        if (netns_keeper > 0) {   /* K holds pasta's pid file; else B, until ready */
            close(pidfile[1]);
            pidfile[1] = -1;
        }
        if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) < 0) fail("net", -1, errno, 0);
        if (netns_fd >= 0) close(netns_fd);
    }
    record_clone();
    struct stat st;
    /* Never set up in the host's mount namespace: pivot_root there would move the root of
     * every process on the machine. */
    if (stat("/proc/self/ns/mnt", &st) < 0 || st.st_ino == P.hostmnt) fail("host-mnt-ns", -1, 0, 0);
    double started = now();
    for (current_op = 0; current_op < P.nops; current_op++) {
        double t = now();
        run_op(&P.ops[current_op]);
        times[current_op] = now() - t;
        record("op", current_op, t, NULL);
    }
    current_op = -1;
    double setup = now() - started;
    before_switch();  /* the script may do the root switch itself (chroot) */
    /* Points in time (CLOCK_MONOTONIC, as Python's time.monotonic), for profiles. */
    double stages[4];
    stages[0] = now();  /* setup done (for a prepared container, before its cell came) */
    double limited = now();
    apply_rlimits();
    record_rlimits(limited);
    hand_over_snapfds();
    if (idmap_fd >= 0) { close(idmap_fd); idmap_fd = -1; }
    int ns_fd = -1;
    wait_for_net();   /* %net user: pasta is ready before the script starts */
    step_started = now();
    if (P.lock) {
        script = start_locked(&ns_fd);
        /* The script chroots itself (locked); the init follows, so that nothing of the
         * host's tree is reachable through /proc/1/root either. */
        if (chroot_of_script()) {
            CHECK(chdir(chroot_of_script()));
            CHECK(chroot("."));
            CHECK(chdir("/"));
        }
    } else {
        if (P.nsids) read_nsids("/proc/self");
        script = fork();
        CHECK(script);
        if (script == 0) exec_script();
    }
    hand_over_steps();  /* the script's process has its copy: B needs none */
    stages[1] = now();  /* the script's process exists */
    /* Only the script holds the output and script pipes now: the kernel sees their end as
     * soon as the script's processes are gone. */
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null >= 0) { dup2(null, 1); dup2(null, 2); close(null); }
    close(SCRIPT_FD);
    struct sigaction sa = { .sa_flags = SA_RESTART };
    sa.sa_handler = forward;
    for (size_t i = 0; i < sizeof forwarded / sizeof *forwarded; i++) sigaction(forwarded[i], &sa, NULL);
    sa.sa_handler = kill_script;
    sigaction(SIGUSR1, &sa, NULL);
    int status = 0;
    for (;;) {
        pid_t done = waitpid(-1, &status, 0);
        if (done == script) break;
        if (done < 0 && errno == ECHILD) { status = 0; break; }
    }
    stages[2] = now();  /* the script has ended */
    if (P.warm) prctl(PR_SET_NAME, "rootfs-init");   /* no longer waiting for a cell */
    /* Stop what the script left running (the snapshots are of files, not processes).
     * Orphans of the namespace become this process's children: none, nothing to stop
     * (kill(-1) would look at every process on the host). */
    if (P.pidns && !(waitpid(-1, &(int){0}, WNOHANG) < 0 && errno == ECHILD)) {
        kill(-1, SIGKILL);
        /* ... and wait until they are gone (orphans become this init's children): when
         * the kernel has the report, no process of the cell is left. */
        while (waitpid(-1, NULL, 0) > 0 || errno == EINTR) {}
    }
    signal(SIGUSR1, SIG_IGN);
    if (ns_fd >= 0 && P.look) {
        /* The snapshots read the filesystem the script saw, its own mounts included. */
        CHECK(setns(ns_fd, CLONE_NEWNS));
        close(ns_fd);
        if (chroot_of_script()) CHECK(chroot(chroot_of_script()));
        CHECK(chdir("/"));
    }
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    int code = sig ? 128 + sig : WEXITSTATUS(status);
    char signame[16] = "null";
    if (sig) snprintf(signame, sizeof signame, "%d", sig);
    out("{\"status\": %d, \"signal\": %s, \"setup_seconds\": %.6f, \"notes\": [",
        code, signame, setup);
    for (int i = 0; i < nnotes; i++)
        out("%s[%d, \"%s\"]", i ? ", " : "", notes[i].index, notes[i].what);
    out("], \"cgroup\": [%lld, %lld]", cgroup_counter("max"), cgroup_counter("oom_kill"));
    report_usage();
    out(", \"ns\": ");
    if (P.nsids) {
        out("{");
        for (int i = 0; i < RK_NAMESPACES; i++)
            out("%s\"%s\": \"%s\"", i ? ", " : "", rk_namespace_names[i], nsids[i]);
        out("}");
    } else out("null");
    out(", \"profile\": ");
    if (P.profile) {
        out("[");
        for (int i = 0; i < P.nops; i++) out("%s%.6f", i ? ", " : "", times[i]);
        stages[3] = now();
        out("], \"stages\": [%.6f, %.6f, %.6f, %.6f]", stages[0], stages[1], stages[2], stages[3]);
    } else out("null");
    if (P.steps) out(", \"steps_ended\": %.6f", stages[2]);
    out("}\n");
    flush();
    close(RESULT_FD);
    /* Stay, so the namespace stays, until the kernel has read the snapshots. */
    char c;
    while (read(RELEASE_FD, &c, 1) < 0 && errno == EINTR) {}
    _exit(code);
}

/* -- the template (template 1) ------------------------------------------------------ */
/* Bind, under the template's root (P.root), every mount on the way to `path` at its own
 * place, "/" excepted (bound first): each alone, without what is mounted below it, but
 * the last one's with its submounts when `recursive`.  A path that is not there holds
 * nothing to keep.  `done`: the mount points bound so far. */
static char (*tdone)[PATH_MAX];
static int ntdone, tdone_rec[MAX_LIST * 4];

static void template_bind(const char *path, int recursive) {
    char real[PATH_MAX], prefix[PATH_MAX], target[PATH_MAX + 4096];
    if (!realpath(path, real)) {
        if (errno == ENOENT) return;
        fail("template", -1, errno, 0);
    }
    size_t len = strlen(real);
    for (size_t i = 1; i <= len; i++) {
        if (i < len && real[i] != '/') continue;
        memcpy(prefix, real, i);
        prefix[i] = 0;
        int whole = recursive && i == len, skip = 0;
        for (int d = 0; d < ntdone && !skip; d++) {   /* bound, or below a recursive one */
            size_t n = strlen(tdone[d]);
            skip = !strcmp(tdone[d], prefix) ||
                   (tdone_rec[d] && !strncmp(tdone[d], prefix, n) && prefix[n] == '/');
        }
        if (skip) continue;
        struct statx stx;
        if (statx(AT_FDCWD, prefix, AT_SYMLINK_NOFOLLOW, 0, &stx) < 0) fail("template", -1, errno, 0);
        if (!(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)) fail("template", -1, ENOSYS, 0);
        if (!(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT)) continue;
        if (ntdone == MAX_LIST * 4) fail("template", -1, E2BIG, 0);
        snprintf(target, sizeof target, "%s%s", P.root, prefix);
        if (mount(prefix, target, NULL, MS_BIND | (whole ? MS_REC : 0), NULL) < 0)
            fail("template", -1, errno, 0);
        snprintf(tdone[ntdone], PATH_MAX, "%s", prefix);
        tdone_rec[ntdone++] = whole;
    }
}

/* A mount namespace of the host's root filesystem and the mounts that hold P.keep (and
 * P.rkeep with theirs), nothing else, and the user namespace of P.idmap: their fds go to
 * the helper over the result socket, which keeps both for the containers it starts. */
static _Noreturn void make_template(void) {
    tdone = calloc(MAX_LIST * 4, PATH_MAX);
    if (!tdone) fail("template", -1, ENOMEM, 0);
    if (P.idmap) make_idmap_userns();   /* every container's, with the template: fd 8 */
    if (unshare(CLONE_NEWNS) < 0) fail("template", -1, errno, 0);
    /* Private first: nothing of the template's may reach the host, nor the host's it. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
        mount("/", P.root, NULL, MS_BIND, NULL) < 0) fail("template", -1, errno, 0);
    for (int i = 0; i < P.nrkeep; i++) template_bind(P.rkeep[i], 1);
    for (int i = 0; i < P.nkeep; i++) template_bind(P.keep[i], 0);
    if (chdir(P.root) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 ||
        umount2(".", MNT_DETACH) < 0 || chdir("/") < 0) fail("template", -1, errno, 0);
    int fds[2] = {open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC), idmap_fd}, n = 1 + (idmap_fd >= 0);
    if (fds[0] < 0) fail("template", -1, errno, 0);
    char text[64];
    int len = snprintf(text, sizeof text, "{\"template\": %d}\n", ntdone + 1);
    struct iovec iov = { .iov_base = text, .iov_len = (size_t)len };
    char control[CMSG_SPACE(sizeof fds)];
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                          .msg_controllen = CMSG_SPACE(sizeof(int) * n) };
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
    while (sendmsg(RESULT_FD, &msg, MSG_NOSIGNAL) < 0 && errno == EINTR) {}
    _exit(0);
}

/* -- A: the helper's child ------------------------------------------------------------ */
static pid_t init_pid = -1;

static void relay(int sig) {
    if (init_pid > 0) kill(init_pid, sig);
}

/* The cell's cgroup counters, opened by A next to the cgroup.procs files it joins and
 * read by B when the script has ended: how many forks pids.max refused, how many
 * processes the memory limit killed (cgroups.py words them). */
static int counter_fds[MAX_LIST * 3], counter_kinds[MAX_LIST * 3], ncounters;
/* What the cell used at most (%show limits): its cgroup's memory and pids peaks (v2's
 * memory.peak, v1's memory.max_usage_in_bytes; pids.peak) and CPU time (v2's cpu.stat). */
enum { USE_MEMORY, USE_PIDS, USE_CPU, NUSAGE };
static int usage_fds[NUSAGE] = {-1, -1, -1};
static const char *const usage_files[][2] = {
    [USE_MEMORY] = {"memory.peak", "memory.max_usage_in_bytes"},
    [USE_PIDS] = {"pids.peak", NULL}, [USE_CPU] = {"cpu.stat", NULL}};

static void join_cgroups(void) {
    for (int i = 0; i < P.ncgroups; i++) {
        char pid[24], path[4200];
        snprintf(pid, sizeof pid, "%d", (int)getpid());
        if (write_file(P.cgroups[i], pid) < 0) fail("cgroup", i, errno, 0);
        const char *slash = strrchr(P.cgroups[i], '/');
        int dir = slash ? (int)(slash - P.cgroups[i]) : 0;
        static const char *const names[] = {"pids.events", "memory.events", "memory.oom_control"};
        for (size_t n = 0; n < sizeof names / sizeof *names; n++) {
            snprintf(path, sizeof path, "%.*s/%s", dir, P.cgroups[i], names[n]);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                counter_kinds[ncounters] = (int)n;
                counter_fds[ncounters++] = fd;
            }
        }
        for (int u = 0; u < NUSAGE; u++)
            for (int k = 0; k < 2 && usage_fds[u] < 0 && usage_files[u][k]; k++) {
                snprintf(path, sizeof path, "%.*s/%s", dir, P.cgroups[i], usage_files[u][k]);
                usage_fds[u] = open(path, O_RDONLY | O_CLOEXEC);
            }
    }
}

/* The number in a cgroup file: its first (a peak) or the one after `key` (cpu.stat's
 * usage_usec); -1 when there is no such file. */
static long long cgroup_number(int fd, const char *key) {
    char buf[1024];
    ssize_t n = fd < 0 ? -1 : pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return -1;
    buf[n] = 0;
    if (!key) return atoll(buf);
    char *at = strstr(buf, key);
    return at ? atoll(at + strlen(key) + 1) : -1;
}

/* "usage": [memory peak, pids peak, cgroup CPU usec, CPU usec and largest RSS (KiB) of
 * every process this init reaped]: all of the cell's, once the script has ended. */
static void report_usage(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_CHILDREN, &ru) < 0) memset(&ru, 0, sizeof ru);
    long long cpu = (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
                    ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
    out(", \"usage\": [%lld, %lld, %lld, %lld, %ld]", cgroup_number(usage_fds[USE_MEMORY], NULL),
        cgroup_number(usage_fds[USE_PIDS], NULL), cgroup_number(usage_fds[USE_CPU], "usage_usec"),
        cpu, ru.ru_maxrss);
}

/* Sum of the counter named `key` over the cell's cgroup files: "max" of pids.events (v2's
 * memory.events has a "max" too: how often memory.max was reached, not a refused fork),
 * "oom_kill" of memory.events or memory.oom_control. */
static long long cgroup_counter(const char *key) {
    long long sum = 0;
    size_t len = strlen(key);
    int pids = !strcmp(key, "max");
    for (int i = 0; i < ncounters; i++) {
        if (pids != (counter_kinds[i] == 0)) continue;
        char buf[4096];
        ssize_t n = pread(counter_fds[i], buf, sizeof buf - 1, 0);
        if (n <= 0) continue;
        buf[n] = 0;
        for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
            if (!strncmp(line, key, len) && line[len] == ' ') sum += atoll(line + len + 1);
    }
    return sum;
}

/* -- rootfs-init --dump: the plan as parsed, for the tests ------------------------------- */
static void dump_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static int dump_first;
static void dump_field(const char *name, enum field_kind kind, const void *value) {
    printf("%s", dump_first ? "" : ", ");
    dump_first = 0;
    dump_string(name);
    printf(": ");
    if (kind == FIELD_STR) dump_string(*(const char *const *)value);
    else if (kind == FIELD_INT) printf("%lld", *(const long long *)value);
    else printf("%s", *(const int *)value ? "true" : "false");
}

/* One JSON line per operation: {"list": "op"|"sop", "kind": K, "fields": {NAME: VALUE}}. */
static int dump(char *name) {
    char **tokens;
    int n = read_plan(0, name, &tokens);
    parse(n, tokens);
    for (int i = 0; i < P.nops + P.nsops; i++) {
        const struct op *op = i < P.nops ? &P.ops[i] : &P.sops[i - P.nops];
        printf("{\"list\": \"%s\", \"kind\": \"%s\", \"fields\": {", i < P.nops ? "op" : "sop",
               op_types[op->kind].name);
        dump_first = 1;
        dump_op(op);
        printf("}}\n");
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--dump")) return dump(argv[0]);
    if (fcntl(RESULT_FD, F_GETFD) < 0 || fcntl(PLAN_FD, F_GETFD) < 0) {
        /* not started by the helper: nobody reads fd 3, no plan on fd 6 */
        dprintf(2, "rootfs-kernel: %s is the kernel's container init, not a program to run "
                "in a cell (did %%shell name it? name a shell that exists in the image)\n",
                argv[0]);
        return RK_EXIT_CANNOT_RUN;
    }
    char **tokens;
    int ntokens = read_plan(PLAN_FD, argv[0], &tokens);
    close(PLAN_FD);
    parse(ntokens, tokens);
    fcntl(RESULT_FD, F_SETFD, FD_CLOEXEC);
    fcntl(RELEASE_FD, F_SETFD, FD_CLOEXEC);
    fcntl(SCRIPT_FD, F_SETFD, FD_CLOEXEC);   /* the shell's only as its SCRIPT_SHELL_FD */
    /* Looked at before this program opens anything, which could take their numbers; only
     * when the plan says so (the helper passes them then): any other fd 7 or 8 is not
     * ours.  The user namespace of the id map, made once with the helper's template (of
     * P.idmap's map), and the template itself. */
    if (P.fromidmap && P.idmap && fcntl(IDMAP_FD, F_SETFD, FD_CLOEXEC) == 0) idmap_fd = IDMAP_FD;
    int template_fd = P.fromtemplate && idmap_fd >= 0 &&
                      fcntl(TEMPLATE_FD, F_SETFD, FD_CLOEXEC) == 0 ? TEMPLATE_FD : -1;
    /* A kernel that closed its end (a prepared container it did not need) must not kill
     * the init with SIGPIPE before it has reaped its script (exec_script restores it). */
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (P.parent && getppid() != P.parent) _exit(SETUP_FAILED);
    if (P.template) make_template();
    record_host();   /* %show steps: the host's table, then the cgroups joined */
    double joined = now();
    join_cgroups();  /* before any child: all inherit the limits */
    record_cgroups(joined);
    if (P.host) {   /* a %%host cell: no namespaces, the script is this process */
        close(RESULT_FD);
        close(RELEASE_FD);
        apply_rlimits();
        exec_script();
    }
    /* Block the relayed signals until the handler knows whom to relay them to. */
    sigset_t relayed, old;
    sigemptyset(&relayed);
    for (size_t i = 0; i < sizeof forwarded / sizeof *forwarded; i++) sigaddset(&relayed, forwarded[i]);
    sigaddset(&relayed, SIGUSR1);
    sigprocmask(SIG_BLOCK, &relayed, &old);
    pid_t me = getpid();
    if (P.warm) prctl(PR_SET_NAME, "rootfs-warm");
    if (P.idmap && idmap_fd < 0) {
        double made = now();
        make_idmap_userns();
        record("idmap", -1, made, P.idmap);
    } else if (P.idmap) {
        char detail[128];
        snprintf(detail, sizeof detail, "%s template", P.idmap);
        record("idmap", -1, now(), detail);
    }
    if (P.npasta) {
        double made = now();
        prepare_net();
        if (netns_keeper > 0) record("netns", -1, made, P.netmap);
    }
    /* The helper's template (fd 8, only for a plan that may use it): A enters it for the
     * clone alone, so that B copies its few mounts, then goes back to the host's. */
    int host_ns = -1;
    if (template_fd >= 0) {
        double entered = now();
        if ((host_ns = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC)) < 0 ||
            setns(template_fd, CLONE_NEWNS) < 0) fail("template", -1, errno, 0);
        close(template_fd);
        from_template = 1;
        record("template", -1, entered, NULL);
    }
    step_started = now();
    pid_t pid = syscall(SYS_clone, P.ns | SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid < 0) fail("clone", -1, errno, 0);
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        if (host_ns >= 0) close(host_ns);   /* nothing of the cell's holds the host's */
        P.parent = me;
        cell_init();
    }
    init_pid = pid;
    if (host_ns >= 0) {
        if (setns(host_ns, CLONE_NEWNS) < 0) fail("template", -1, errno, 0);
        close(host_ns);
    }
    /* pasta's words, if it fails, are the cell's (until then: see start_pasta). */
    int err_out = P.npasta ? fcntl(2, F_DUPFD_CLOEXEC, 10) : -1;
    if (P.npasta) {
        close(net_ready[0]);
        if (netns_fd >= 0) close(netns_fd);
    }
    /* The cell's output must end when its processes do, not when this one does. */
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) { dup2(null, 1); dup2(null, 2); close(null); }
    out("{\"init\": %d}\n", (int)pid);
    flush();
    close(RESULT_FD);
    close(RELEASE_FD);
    close(SCRIPT_FD);
    if (steps_fd >= 0) close(steps_fd);   /* B has its copy */
    struct sigaction sa = { .sa_handler = relay, .sa_flags = SA_RESTART };
    for (size_t i = 0; i < sizeof forwarded / sizeof *forwarded; i++) sigaction(forwarded[i], &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (P.npasta) {
        int err = start_pasta(pid, err_out);
        (void)!write(net_ready[1], &err, sizeof err);
        close(net_ready[1]);
        close(err_out);
        close(pidfile[0]);
        close(pidfile[1]);
        if (netns_keeper > 0) {   /* pasta has joined its namespaces: K may go */
            close(keeper_go);
            while (waitpid(netns_keeper, NULL, 0) < 0 && errno == EINTR) {}
        }
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (pasta_pid > 0) {   /* the cell's network ends with it */
        kill(pasta_pid, SIGKILL);
        while (waitpid(pasta_pid, NULL, 0) < 0 && errno == EINTR) {}
    }
    if (WIFSIGNALED(status)) {
        signal(WTERMSIG(status), SIG_DFL);
        kill(getpid(), WTERMSIG(status));
    }
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : SETUP_FAILED);
}
