/* rootfs-init: the first process of one cell's container.
 *
 * The helper (helper.py) starts this small program with posix_spawn for every cell, its
 * plan encoded as argv tokens by wire.py.  Why C: on the machines we measured, copying a
 * Python process (fork/clone) costs about 1.5 ms and the copy-on-write faults of running
 * Python in the child as much again; this process is a few pages.
 *
 *   helper ──posix_spawn──▶ A: joins the cell's cgroups, clone(namespaces) ─▶ B, forwards
 *                              the helper's signals to B, exits with B's status
 *   B (PID 1 of the cell):  runs the setup operations, then clone(CLONE_NEWUSER|NEWNS)
 *                           ─▶ C: the script, its mounts locked; exec /bin/sh -c SCRIPT
 *   B waits for C, kills what C left, enters C's mount namespace and reports; the kernel
 *   then reads the snapshots through /proc/<B> (its mountinfo, root and fds) and closes
 *   the release pipe, and B exits: the namespace and every mount in it go away.
 *
 * fds on entry: 0 /dev/null, 1 and 2 the cell's output pipes, 3 the result pipe (JSON
 * lines for the kernel), 4 the release pipe (read end; EOF = snapshots taken).
 *
 * Prepared ("warm") containers: the helper may start the next cell's container before
 * the cell exists, from the previous cell's plan without its script.  Then fds 1-4 are
 * /dev/null and fd 5 is a socket: A writes B's pid on it, and B, set up, waits there for
 * the cell: its four pipes (SCM_RIGHTS) and the script's tokens (cwd, env, argv).
 *
 * Errors are reported as numbers (operation index, errno); Python words them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
struct mount_attr { uint64_t attr_set, attr_clr, propagation, userns_fd; };
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

#define RESULT_FD 3
#define RELEASE_FD 4
#define GO_FD 5
#define SETUP_FAILED 125
#define MAX_OPS 256
#define MAX_LIST 64

struct op { const char *name; char **arg; };

static struct {
    unsigned long ns, lock;
    int pidns, rootless, host, profile, nsids, warm;
    unsigned uid, gid;
    unsigned long long hostmnt;
    long parent;
    const char *root, *cwd;
    const char *cgroups[MAX_LIST]; int ncgroups;
    const char *snap[MAX_LIST]; int nsnap;
    long long nproc, as;
    struct op ops[MAX_OPS]; int nops;
    struct op sops[MAX_OPS]; int nsops;
    char *env[4096]; int nenv;
    char **argv;
} P = { .nproc = -1, .as = -1 };

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

/* {"error": {"kind": K, "index": I, "errno": E, "depth": D}} and exit: Python words it. */
static _Noreturn void fail(const char *kind, int index, int err, int depth) {
    out("{\"error\": {\"kind\": \"%s\", \"index\": %d, \"errno\": %d, \"depth\": %d}}\n",
        kind, index, err, depth);
    flush();
    _exit(SETUP_FAILED);
}

static int current_op = -1;
#define CHECK(call) do { if ((call) < 0) fail("errno", current_op, errno, 0); } while (0)

/* -- the plan ------------------------------------------------------------------------- */
static int arity(const char *name) {
    static const struct { const char *name; int n; } table[] = {
        {"propagation", 2}, {"mkdir", 2}, {"mount", 8}, {"bind", 6}, {"mask", 1},
        {"readonly", 1}, {"symlink", 2}, {"pivot_root", 1}, {"chroot", 1}, {"hostname", 1},
    };
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (!strcmp(table[i].name, name)) return table[i].n;
    return -1;
}

static void parse(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "rootfs-init-1")) fail("plan", -1, EINVAL, 0);
    int i = 2;
    while (i < argc) {
        const char *key = argv[i++];
        if (!strcmp(key, "argv")) { P.argv = &argv[i]; return; }
        if (i >= argc) { i = -1; break; }
        const char *val = argv[i++];
        if (!strcmp(key, "op") || !strcmp(key, "sop")) {
            int n = arity(val);
            int script = key[0] == 's';
            int *count = script ? &P.nsops : &P.nops;
            if (n < 0 || i + n > argc || *count >= MAX_OPS) break;
            struct op *op = script ? &P.sops[*count] : &P.ops[*count];
            op->name = val;
            op->arg = &argv[i];
            (*count)++;
            i += n;
        }
        else if (!strcmp(key, "ns")) P.ns = strtoul(val, NULL, 10);
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
        else if (!strcmp(key, "cwd")) P.cwd = val;
        else if (!strcmp(key, "nproc")) P.nproc = atoll(val);
        else if (!strcmp(key, "as")) P.as = atoll(val);
        else if (!strcmp(key, "cgroup") && P.ncgroups < MAX_LIST) P.cgroups[P.ncgroups++] = val;
        else if (!strcmp(key, "snap") && P.nsnap < MAX_LIST) P.snap[P.nsnap++] = val;
        else if (!strcmp(key, "env") && P.nenv < 4095) P.env[P.nenv++] = (char *)val;
        else if (!strcmp(key, "warm")) P.warm = atoi(val);
        else { i = -1; break; }
    }
    if (i != argc || !P.warm) fail("plan", -1, EINVAL, 0);  /* only a prepared one waits */
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

static int root_fd = -1;

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

static void open_root(void) {
    if (root_fd < 0) CHECK(root_fd = open(P.root, O_PATH | O_DIRECTORY | O_CLOEXEC));
}

/* The %show changes layers are opened before the root switch hides them. */
static int snapfds[MAX_LIST], nsnapfds = -1;
static void before_switch(void) {
    if (nsnapfds >= 0) return;
    nsnapfds = 0;
    for (int i = 0; i < P.nsnap; i++)  /* -1: could not be opened (snapshots.py says so) */
        snapfds[nsnapfds++] = open(P.snap[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd >= 0) { close(root_fd); root_fd = -1; }
}

/* -- the operations (plan.py makes them) ----------------------------------------------- */
static void run_op(struct op *op) {
    char **a = op->arg, where[64];
    const char *n = op->name;
    if (!strcmp(n, "propagation")) {
        if (!strcmp(a[0], "private")) CHECK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));
        else if (!strcmp(a[0], "slave")) CHECK(mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL));
        else if (atoi(a[1])) CHECK(mount(NULL, "/", NULL, MS_PRIVATE, NULL));
    } else if (!strcmp(n, "mkdir")) {
        /* os.makedirs: create the parents too */
        char buf[4096];
        snprintf(buf, sizeof buf, "%s", a[0]);
        for (char *p = buf + 1; ; p++) {
            if (*p == '/' || !*p) {
                char c = *p;
                *p = 0;
                if (mkdir(buf, (mode_t)strtoul(a[1], NULL, 10)) < 0 && errno != EEXIST)
                    fail("errno", current_op, errno, 0);
                *p = c;
                if (!c) break;
            }
        }
    } else if (!strcmp(n, "mount")) {
        /* source target fstype flags data in_root create private_parent */
        unsigned long flags = strtoul(a[3], NULL, 10);
        const char *data = *a[4] ? a[4] : NULL;
        if (!atoi(a[5])) {
            if (*a[7]) CHECK(mount(NULL, a[7], NULL, MS_PRIVATE, NULL));
            CHECK(mount(a[0], a[1], a[2], flags, data));
            return;
        }
        open_root();
        int fd = resolve(a[1], a[6]);
        CHECK(fd);
        fdpath(where, fd);
        CHECK(mount(a[0], where, a[2], flags, data));
        close(fd);
    } else if (!strcmp(n, "bind")) {
        /* source target rec readonly create optional */
        struct stat st;
        if (stat(a[0], &st) < 0) {
            if (errno == ENOENT && atoi(a[5])) return;
            fail(errno == ENOENT ? "bind-source" : "errno", current_op, errno, 0);
        }
        const char *create = a[4];
        if (!strcmp(create, "like-source")) create = S_ISDIR(st.st_mode) ? "dir" : "file";
        open_root();
        int fd = resolve(a[1], create);
        CHECK(fd);
        fdpath(where, fd);
        CHECK(mount(a[0], where, NULL, MS_BIND | (atoi(a[2]) ? MS_REC : 0), NULL));
        close(fd);
        if (atoi(a[3])) make_readonly(a[1], atoi(a[2]));
    } else if (!strcmp(n, "mask") || !strcmp(n, "readonly")) {
        open_root();
        int fd = open_in_root(a[0], O_PATH);
        if (fd < 0 && (errno == ENOENT || errno == ENOTDIR)) return;  /* not in this image */
        CHECK(fd);
        fdpath(where, fd);
        if (n[1] == 'a') {  /* mask */
            struct stat st;
            CHECK(stat(where, &st));
            if (S_ISDIR(st.st_mode)) CHECK(mount("tmpfs", where, "tmpfs", MS_RDONLY, "size=0"));
            else CHECK(mount("/dev/null", where, NULL, MS_BIND, NULL));
            close(fd);
        } else {
            CHECK(mount(where, where, NULL, MS_BIND | MS_REC, NULL));
            close(fd);
            make_readonly(a[0], 1);
        }
    } else if (!strcmp(n, "symlink")) {
        open_root();
        char head[4096];
        snprintf(head, sizeof head, "%s", a[1]);
        size_t len = strlen(head);
        while (len > 1 && head[len - 1] == '/') head[--len] = 0;
        char *slash = strrchr(head, '/');
        const char *name = slash ? slash + 1 : head;
        if (slash) *slash = 0;
        int dir = open_in_root(slash && *head ? head : "/", O_PATH | O_DIRECTORY);
        CHECK(dir);
        if (symlinkat(a[0], dir, name) < 0 && errno != EEXIST) fail("errno", current_op, errno, 0);
        close(dir);
    } else if (!strcmp(n, "pivot_root")) {
        before_switch();
        CHECK(chdir(a[0]));
        CHECK(syscall(SYS_pivot_root, ".", "."));
        /* The old root sits on top of ".": with %propagation shared its mounts are still
         * peers of the host's, and detaching them would unmount the host's own (runc). */
        CHECK(mount(NULL, ".", NULL, MS_REC | MS_SLAVE, NULL));
        CHECK(umount2(".", MNT_DETACH));
        CHECK(chdir("/"));
    } else if (!strcmp(n, "chroot")) {
        before_switch();
        CHECK(chdir(a[0]));
        CHECK(chroot("."));
        CHECK(chdir("/"));
    } else if (!strcmp(n, "hostname")) {
        CHECK(sethostname(a[0], strlen(a[0])));
    }
}

/* The few steps the script's own namespaces take (plan.script_ops); errors go to the
 * cell's stderr, as the script's would. */
static int run_script_op(struct op *op) {
    char **a = op->arg;
    const char *n = op->name;
    if (!strcmp(n, "hostname")) return sethostname(a[0], strlen(a[0]));
    if (!strcmp(n, "chroot")) {
        if (chdir(a[0]) < 0 || chroot(".") < 0) return -1;
        return chdir("/");
    }
    if (!strcmp(n, "mask")) {
        struct stat st;
        if (stat(a[0], &st) == 0 && S_ISDIR(st.st_mode))
            return mount("tmpfs", a[0], "tmpfs", MS_RDONLY, "size=0");
        return 0;
    }
    if (!strcmp(n, "mount"))
        return mount(a[0], a[1], a[2], strtoul(a[3], NULL, 10), *a[4] ? a[4] : NULL);
    errno = EINVAL;
    return -1;
}

/* -- the script ----------------------------------------------------------------------- */
static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

static _Noreturn void exec_script(void) {
    sigset_t none;
    sigemptyset(&none);
    for (int s = 1; s < NSIG; s++) if (s != SIGKILL && s != SIGSTOP) signal(s, SIG_DFL);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setsid();  /* the kernel's SIGINT to its process group must miss the script */
    if (!P.cwd || chdir(P.cwd) < 0) (void)chdir("/");
    P.env[P.nenv] = NULL;
    execve(P.argv[0], P.argv, P.env);
    if (errno == E2BIG)
        dprintf(2, "rootfs-kernel: the cell is too long for `sh -c` (128 KiB at most)\n");
    else
        dprintf(2, "rootfs-kernel: cannot run %s: %s\n", P.argv[0], strerror(errno));
    _exit(127);
}

static void apply_rlimits(void) {
    struct rlimit r;
    if (P.nproc >= 0) { r.rlim_cur = r.rlim_max = P.nproc; CHECK(setrlimit(RLIMIT_NPROC, &r)); }
    if (P.as >= 0) { r.rlim_cur = r.rlim_max = P.as; CHECK(setrlimit(RLIMIT_AS, &r)); }
}

static char nsids[7][64];
static const char *ns_names[7] = {"mnt", "pid", "user", "uts", "ipc", "net", "cgroup"};

static void read_nsids(const char *proc) {
    char path[96];
    for (int i = 0; i < 7; i++) {
        snprintf(path, sizeof path, "%s/ns/%s", proc, ns_names[i]);
        ssize_t n = readlink(path, nsids[i], sizeof nsids[i] - 1);
        nsids[i][n > 0 ? n : 0] = 0;
    }
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
        for (int i = 0; i < P.nsops; i++)
            if (run_script_op(&P.sops[i]) < 0) {
                dprintf(2, "rootfs-kernel: %s: %s\n", P.sops[i].name, strerror(errno));
                _exit(SETUP_FAILED);
            }
        exec_script();
    }
    close(ready[0]);
    /* pid is a pid of the cell's PID namespace: look it up in the cell's own /proc (not
     * at /proc yet when the script is still to chroot). */
    int chrooting = 0;
    for (int i = 0; i < P.nsops; i++) chrooting |= !strcmp(P.sops[i].name, "chroot");
    char proc[4200], path[4300];
    snprintf(proc, sizeof proc, "%s/proc/%d", chrooting && strcmp(P.root, "/") ? P.root : "",
             (int)pid);
    snprintf(path, sizeof path, "%s/ns/mnt", proc);
    CHECK(*ns_fd = open(path, O_RDONLY | O_CLOEXEC));
    /* As root every id maps to itself; an ordinary user's cell has only its root. */
    const char *map = P.rootless ? "0 0 1" : "0 0 4294967295";
    snprintf(path, sizeof path, "%s/uid_map", proc);
    CHECK(write_file(path, map));
    snprintf(path, sizeof path, "%s/gid_map", proc);
    CHECK(write_file(path, map));
    if (P.nsids) read_nsids(proc);
    CHECK(write(ready[1], "1", 1));
    close(ready[1]);
    return pid;
}

/* -- a prepared container's cell arrives ------------------------------------------------ */
static int read_full(int fd, char *buf, size_t len) {
    while (len) {
        ssize_t n = read(fd, buf, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        buf += n;
        len -= n;
    }
    return 0;
}

/* Wait for the cell (or EOF: not needed after all), take its pipes as fds 1-4 and its
 * script's tokens into P. */
static void wait_for_cell(void) {
    uint32_t len;
    int fds[4];
    char control[CMSG_SPACE(sizeof fds)];
    struct iovec iov = { .iov_base = &len, .iov_len = sizeof len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                          .msg_controllen = sizeof control };
    ssize_t n;
    while ((n = recvmsg(GO_FD, &msg, MSG_CMSG_CLOEXEC | MSG_WAITALL)) < 0 && errno == EINTR) {}
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (n != sizeof len || !c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof fds))
        _exit(0);
    memcpy(fds, CMSG_DATA(c), sizeof fds);
    len = ntohl(len);
    char *buf = malloc(len + 1);
    if (!buf || read_full(GO_FD, buf, len) < 0) _exit(SETUP_FAILED);
    close(GO_FD);
    for (int i = 0; i < 4; i++) {
        dup2(fds[i], i + 1);
        close(fds[i]);
    }
    fcntl(RESULT_FD, F_SETFD, FD_CLOEXEC);
    fcntl(RELEASE_FD, F_SETFD, FD_CLOEXEC);
    /* NUL-separated tokens, parsed as argv[1:] would be */
    buf[len] = 0;
    int count = 1;
    for (uint32_t i = 0; i < len; i++) count += !buf[i];
    char **tokens = calloc(count + 2, sizeof *tokens);
    if (!tokens) _exit(SETUP_FAILED);
    int t = 0;
    tokens[t++] = "go";
    for (uint32_t i = 0; i <= len; i += strlen(buf + i) + 1) tokens[t++] = buf + i;
    P.warm = 0;
    parse(t, tokens);
    prctl(PR_SET_NAME, "rootfs-init");
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
    struct stat st;
    /* Never set up in the host's mount namespace: pivot_root there would move the root of
     * every process on the machine. */
    if (stat("/proc/self/ns/mnt", &st) < 0 || st.st_ino == P.hostmnt) fail("host-mnt-ns", -1, 0, 0);
    double started = now();
    for (current_op = 0; current_op < P.nops; current_op++) {
        double t = now();
        run_op(&P.ops[current_op]);
        times[current_op] = now() - t;
    }
    current_op = -1;
    double setup = now() - started;
    before_switch();  /* the script may do the root switch itself (chroot) */
    /* Points in time (CLOCK_MONOTONIC, as Python's time.monotonic), for profiles. */
    double stages[4];
    stages[0] = now();  /* setup done; for a prepared container, when its cell came */
    if (P.warm) {
        wait_for_cell();
        stages[0] = now();
    }
    apply_rlimits();
    int ns_fd = -1;
    if (P.lock) {
        script = start_locked(&ns_fd);
    } else {
        if (P.nsids) read_nsids("/proc/self");
        script = fork();
        CHECK(script);
        if (script == 0) exec_script();
    }
    stages[1] = now();  /* the script's process exists */
    /* Only the script holds the output pipes now: the kernel sees their end as soon as
     * the script's processes are gone. */
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null >= 0) { dup2(null, 1); dup2(null, 2); close(null); }
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
    /* Stop what the script left running (the snapshots are of files, not processes).
     * Orphans of the namespace become this process's children: none, nothing to stop
     * (kill(-1) would look at every process on the host). */
    if (P.pidns && !(waitpid(-1, &(int){0}, WNOHANG) < 0 && errno == ECHILD)) kill(-1, SIGKILL);
    signal(SIGUSR1, SIG_IGN);
    if (ns_fd >= 0) {
        /* The snapshots read the filesystem the script saw, its own mounts included. */
        CHECK(setns(ns_fd, CLONE_NEWNS));
        close(ns_fd);
        for (int i = 0; i < P.nsops; i++)
            if (!strcmp(P.sops[i].name, "chroot")) CHECK(chroot(P.root));
        CHECK(chdir("/"));
    }
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    int code = sig ? 128 + sig : WEXITSTATUS(status);
    char signame[16] = "null";
    if (sig) snprintf(signame, sizeof signame, "%d", sig);
    out("{\"status\": %d, \"signal\": %s, \"setup_seconds\": %.6f, \"snapfds\": [",
        code, signame, setup);
    for (int i = 0; i < nsnapfds; i++) out("%s%d", i ? ", " : "", snapfds[i]);
    out("], \"ns\": ");
    if (P.nsids) {
        out("{");
        for (int i = 0; i < 7; i++)
            out("%s\"%s\": \"%s\"", i ? ", " : "", ns_names[i], nsids[i]);
        out("}");
    } else out("null");
    out(", \"profile\": ");
    if (P.profile) {
        out("[");
        for (int i = 0; i < P.nops; i++) out("%s%.6f", i ? ", " : "", times[i]);
        stages[3] = now();
        out("], \"stages\": [%.6f, %.6f, %.6f, %.6f]", stages[0], stages[1], stages[2], stages[3]);
    } else out("null");
    out("}\n");
    flush();
    close(RESULT_FD);
    /* Stay, so the namespace stays, until the kernel has read the snapshots. */
    char c;
    while (read(RELEASE_FD, &c, 1) < 0 && errno == EINTR) {}
    _exit(code);
}

/* -- A: the helper's child ------------------------------------------------------------ */
static pid_t init_pid = -1;

static void relay(int sig) {
    if (init_pid > 0) kill(init_pid, sig);
}

static void join_cgroups(void) {
    for (int i = 0; i < P.ncgroups; i++) {
        char pid[24];
        snprintf(pid, sizeof pid, "%d", (int)getpid());
        if (write_file(P.cgroups[i], pid) < 0) fail("cgroup", i, errno, 0);
    }
}

int main(int argc, char **argv) {
    parse(argc, argv);
    fcntl(RESULT_FD, F_SETFD, FD_CLOEXEC);
    fcntl(RELEASE_FD, F_SETFD, FD_CLOEXEC);
    if (P.warm) fcntl(GO_FD, F_SETFD, FD_CLOEXEC);  /* never the script's */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (P.parent && getppid() != P.parent) _exit(SETUP_FAILED);
    join_cgroups();  /* before any child: all inherit the limits */
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
    pid_t pid = syscall(SYS_clone, P.ns | SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid < 0) fail("clone", -1, errno, 0);
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        P.parent = me;
        cell_init();
    }
    init_pid = pid;
    /* The cell's output must end when its processes do, not when this one does. */
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) { dup2(null, 1); dup2(null, 2); close(null); }
    if (P.warm) {  /* the helper tells the kernel, once the cell has come */
        int32_t host_pid = pid;
        (void)!write(GO_FD, &host_pid, sizeof host_pid);
        close(GO_FD);
    } else {
        out("{\"init\": %d}\n", (int)pid);
        flush();
    }
    close(RESULT_FD);
    close(RELEASE_FD);
    struct sigaction sa = { .sa_handler = relay, .sa_flags = SA_RESTART };
    for (size_t i = 0; i < sizeof forwarded / sizeof *forwarded; i++) sigaction(forwarded[i], &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (WIFSIGNALED(status)) {
        signal(WTERMSIG(status), SIG_DFL);
        kill(getpid(), WTERMSIG(status));
    }
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : SETUP_FAILED);
}
