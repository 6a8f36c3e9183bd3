#!/usr/bin/env bash
# Make sure what the test suite talks to is installed and running: MariaDB, PostgreSQL, OpenSSH,
# and Chromium for the UI screenshot test.
# Idempotent; safe to run on a machine where everything is already up.
set -euo pipefail

log() { echo "[prepare-services] $*"; }

if [ ! -x /usr/sbin/sshd ]; then
  log "installing openssh-server (real sshd for tunnel tests)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq openssh-server >/dev/null
fi

if ! command -v chromium >/dev/null 2>&1; then
  log "installing chromium (the UI test takes a screenshot of the asset graph)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

if ! mariadb-admin --protocol=tcp -h 127.0.0.1 -u root ping >/dev/null 2>&1; then
  log "starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  for _ in $(seq 1 60); do
    mariadb-admin --protocol=tcp -h 127.0.0.1 -u root ping >/dev/null 2>&1 && break
    sleep 1
  done
fi
mariadb-admin --protocol=tcp -h 127.0.0.1 -u root ping >/dev/null || { log "MariaDB did not start"; exit 1; }

if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  log "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  for _ in $(seq 1 60); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 -q || { log "PostgreSQL did not start"; exit 1; }
log "MariaDB, PostgreSQL and sshd are ready"
