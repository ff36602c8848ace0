#!/usr/bin/env bash
# Prepare a machine (CI) for the real Docker sandbox tests:
#   1. install docker.io, bubblewrap, debootstrap (and openssh-server, for the ssh:// test) when missing;
#   2. start dockerd when no daemon answers, and wait for it;
#   3. build the offline base image and the agent image unless the hash-tagged images exist
#      (`expagent sandbox build --offline` skips what is present: that is the cache).
# Idempotent: a second run in the same CI job costs a second or two.
# Usage: sandbox/ci_setup.sh   (needs root for apt and dockerd; run from the repository root)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v bwrap >/dev/null || missing+=(bubblewrap)
command -v debootstrap >/dev/null || missing+=(debootstrap)
# sshd only for the test that reaches the daemon over DOCKER_HOST=ssh:// (it starts a private sshd)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> apt-get install ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

daemon_up() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }
if ! daemon_up; then
  echo "==> starting dockerd (log: ${DOCKERD_LOG:-/tmp/dockerd.log})"
  $sudo sh -c "nohup dockerd > '${DOCKERD_LOG:-/tmp/dockerd.log}' 2>&1 &"
  for _ in $(seq 1 60); do
    daemon_up && break
    sleep 1
  done
  if ! daemon_up; then
    echo "error: dockerd did not come up within 60s; last log lines:" >&2
    tail -n 20 "${DOCKERD_LOG:-/tmp/dockerd.log}" >&2 || true
    exit 1
  fi
fi
echo "==> docker daemon $(docker version --format '{{.Server.Version}}') is up"

export EXPAGENT_SANDBOX_ASSETS="$here"
echo "==> sandbox images (built only when the hash-tagged image is missing)"
"$python" -m expagent sandbox build --offline
