#!/bin/sh
# Reports what a container sees, one key=value line per fact (busybox sh).
# Parsed by tests/helpers/probe.py; keys that can repeat: mount, fd, env, ns_*.
# Usage: /probe [SECTION...]   (default: all sections)

kv() { printf '%s=%s\n' "$1" "$2"; }

ids() {
    kv pid "$$"
    kv hostname "$(hostname)"
    kv domainname "$(cat /proc/sys/kernel/domainname 2>/dev/null)"
    kv umask "$(umask)"
    kv cwd "$(pwd)"
    kv oom_score_adj "$(cat /proc/self/oom_score_adj 2>/dev/null)"
}

status() {
    # The redirection is opened by this shell, so /proc/self is the probe itself.
    while IFS= read -r line; do
        key=${line%%:*}
        set -- ${line#*:}
        case $key in
            Uid) kv uid "$1" ;;
            Gid) kv gid "$1" ;;
            Groups) kv groups "$*" ;;
            CapInh) kv cap_inh "$1" ;;
            CapPrm) kv cap_prm "$1" ;;
            CapEff) kv cap_eff "$1" ;;
            CapBnd) kv cap_bnd "$1" ;;
            CapAmb) kv cap_amb "$1" ;;
            Seccomp) kv seccomp "$1" ;;
            NoNewPrivs) kv nonewprivs "$1" ;;
        esac
    done < /proc/self/status
}

namespaces() {
    for t in cgroup ipc mnt net pid time user uts; do
        kv "ns_$t" "$(readlink /proc/self/ns/$t 2>/dev/null)"
    done
}

mounts() {
    while IFS= read -r line; do kv mount "$line"; done < /proc/self/mounts
}

first_file() {
    # Print the content of the first readable file among the arguments.
    for f in "$@"; do
        if [ -r "$f" ]; then
            cat "$f"
            return
        fi
    done
}

cgroups() {
    c=/sys/fs/cgroup
    kv mem_limit "$(first_file $c/memory/memory.limit_in_bytes $c/memory.max)"
    kv pids_max "$(first_file $c/pids/pids.max $c/pids.max)"
    kv cpu_quota "$(first_file $c/cpu/cpu.cfs_quota_us $c/cpu,cpuacct/cpu.cfs_quota_us)"
    kv cpu_period "$(first_file $c/cpu/cpu.cfs_period_us $c/cpu,cpuacct/cpu.cfs_period_us)"
    kv cpu_max "$(first_file $c/cpu.max)"
    kv cpuset_cpus "$(first_file $c/cpuset/cpuset.cpus $c/cpuset.cpus.effective)"
    while IFS= read -r line; do kv cgroup "$line"; done < /proc/self/cgroup
}

fds() {
    # ls lists its own directory fd too; it is closed (no target) or /proc/<pid>/fd.
    ls -l /proc/self/fd 2>/dev/null | while read -r _p _l _u _g _s _m _d _t name _a target; do
        case $target in
            "" | /proc/*/fd) ;;
            *) kv fd "$name $target" ;;
        esac
    done
}

rlimits() {
    kv rlimit_nofile "$(ulimit -Sn) $(ulimit -Hn)"
    kv rlimit_nproc "$(ulimit -Su) $(ulimit -Hu)"
    kv rlimit_core "$(ulimit -Sc) $(ulimit -Hc)"
    kv rlimit_stack "$(ulimit -Ss) $(ulimit -Hs)"
}

environment() {
    env | while IFS= read -r line; do kv env "$line"; done
}

[ $# -gt 0 ] || set -- ids status namespaces mounts cgroups fds rlimits environment
for section in "$@"; do
    "$section"
done
