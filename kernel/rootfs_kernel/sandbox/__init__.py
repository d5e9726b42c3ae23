"""The sandbox: the only code that makes namespaces, mounts and containers.

Four processes run its code; each module says in its first lines which:

    kernel   client.py (starts the helper, talks to it, reads the init's report and
             record: report.py, recording.py), plan.py (spec -> Plan), wire.py (Plan +
             Launch -> rootfs-init's plan, in a memfd), cgroups.py (each container's
             cgroup), snapshots.py (reads the cell through /proc/PID), rundir.py (where
             the helper's directory goes, proved to be the user's own)
    helper   helper.py, one per kernel, single-threaded: posix_spawns rootfs-init for
             every cell with the plan the kernel made; an ordinary user's on cgroup v2
             starts in a scope systemd delegates (cgroups.delegating)
    init     init.c, rootfs-init: A joins the cell's cgroups and clones B, the cell's
             PID 1, which sets the container up and starts C, the script
    probes   probes.py, throwaway processes that try what the host allows (doctor)

ops.py defines what crosses to init.c (the operations, with linux.py's exit codes and
namespaces); initbin.py generates init.c's header from it and compiles it.
"""
