#!/usr/bin/env bash
# Installs everything capsa needs on a fresh Debian/Ubuntu machine (run as root):
# Debian packages for the runtime, tests and peers, then a virtual environment in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  busybox-static iproute2 nftables libseccomp2 tini procps psmisc util-linux curl
  runc podman conmon netavark aardvark-dns catatonit iptables skopeo umoci docker-registry
  qemu-system-x86 linux-image-amd64 cpio kmod debootstrap hyperfine python3-venv apache2-utils
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# podman as a peer (benchmarks, compat tests) needs this configuration on these machines.
if [ ! -f /etc/containers/containers.conf ] || ! grep -q cgroupfs /etc/containers/containers.conf; then
  mkdir -p /etc/containers
  cat > /etc/containers/containers.conf <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "netavark"
CONF
fi

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  # the distribution's interpreter first: Debian's is built with PGO and LTO and linked
  # statically, while a pyenv build is a shared library without them (interpreter start
  # 9.6 vs 11.2 ms here, capsa-runtime's run 34 vs 38 ms)
  for cand in /usr/bin/python3 python3.11 python3.12 python3.13 python3; do
    if command -v "$cand" >/dev/null \
      && "$cand" -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PY=$cand; break
    fi
  done
fi
[ -n "$PY" ] || { echo "setup: need Python >= 3.11" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
# nothing in the venv needs setuptools (the editable install builds in pip's isolated
# environment), and its distutils-precedence.pth costs every capsa process ~0.7 ms at start
.venv/bin/python -m pip uninstall -q -y setuptools
# capsa and capsa-runtime without site (python -S): about 2 ms of every cold command, a
# tenth of a cold `capsa ps` (capsa.launcher; `pip install` puts its own scripts back)
.venv/bin/python -m capsa.launcher .venv/bin/capsa capsa.cli.entry:main \
  || echo "setup: keeping pip's capsa script"
.venv/bin/python -m capsa.launcher .venv/bin/capsa-runtime capsa.runtime.cli:entry \
  || echo "setup: keeping pip's capsa-runtime script"
# bytecode up front: capsa-runtime and the monitors start faster, and PYTHONDONTWRITEBYTECODE
# environments would otherwise compile on every start
.venv/bin/python -m compileall -q src >/dev/null
echo "setup: done (.venv ready)"
