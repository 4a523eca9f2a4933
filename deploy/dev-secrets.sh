#!/usr/bin/env bash
# Development secrets for the production stack (docker-compose.yml), written into secrets/.
#
#   deploy/dev-secrets.sh [--force] [--dir DIR] [--grafana-san DNS:name|IP:addr]...
#                         [--hasher bcrypt|htpasswd|crypt|mkpasswd]
#
# Writes, each file only when it is missing (all of them again with --force):
#   ca.crt ca.key                      a development CA (ca.key never leaves this folder)
#   kafka-1.keystore.pem ... kafka-3.keystore.pem
#                                      each Kafka node's key and certificate chain (CN and SAN
#                                      kafka-N, and localhost)
#   worker.crt worker.key              the workers' HTTPS certificate (SAN worker-1, worker-2, localhost)
#   prometheus.crt prometheus.key      Prometheus's HTTPS certificate (SAN prometheus, localhost)
#   alertmanager.crt alertmanager.key  Alertmanager's (SAN alertmanager, localhost)
#   grafana.crt grafana.key            Grafana's (SAN grafana, localhost, and every --grafana-san)
#   kafka_admin_password               SCRAM-SHA-512 user cover2-admin (super user: the Kafka
#                                      nodes, kafka-init)
#   kafka_worker_password              SCRAM-SHA-512 user cover2-worker (the workers)
#   kafka_feed_password                SCRAM-SHA-512 user cover2-feed (the demo feed)
#   prometheus_scrape_password         basic auth user prometheus (workers, Prometheus, Alertmanager)
#   grafana_datasource_password        basic auth user grafana (Grafana's Prometheus data source)
#   alertmanager_healthcheck_password  basic auth user healthcheck (Alertmanager's own healthcheck)
#   grafana_admin_password             Grafana's admin
#   web-config.yml                     the workers' web config (exporter-toolkit format)
#   prometheus-web.yml                 Prometheus's web config
#   alertmanager-web.yml               Alertmanager's web config
# A web config is rewritten when a password it hashes was (re)generated; a certificate when the
# CA was. Passwords are 64 hex characters without a trailing newline. docker compose mounts
# the files as secrets in /run/secrets, where the web configs find the certificates beside them.
#
# Tools: openssl, and for the bcrypt hashes of the web configs the first of (or --hasher):
# bcrypt, python3 with the bcrypt package; htpasswd (apache2-utils); crypt, python3's crypt
# module (glibc's libxcrypt, Python <= 3.12); mkpasswd (whois). Set PYTHON to choose the
# interpreter. No secret is ever put on a command line: openssl writes the passwords itself
# and the hashers read them on stdin.
#
# Non-swarm docker compose bind-mounts secret files with their permissions on the host and
# cannot change their owner: each image runs as its own user, so the files are world-readable
# (0644) inside a folder only you can enter (0700); ca.key stays 0600.
set -euo pipefail

usage() {
    sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'
}

force=0
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out="$here/../secrets"
grafana_sans=()
hasher=""
while (($#)); do
    case "$1" in
        --force) force=1 ;;
        --dir) out=${2:?--dir needs a folder}; shift ;;
        --dir=*) out=${1#*=} ;;
        --grafana-san) grafana_sans+=("${2:?--grafana-san needs DNS:name or IP:address}"); shift ;;
        --grafana-san=*) grafana_sans+=("${1#*=}") ;;
        --hasher) hasher=${2:?--hasher needs bcrypt, htpasswd, crypt or mkpasswd}; shift ;;
        --hasher=*) hasher=${1#*=} ;;
        -h | --help) usage; exit 0 ;;
        *) echo "dev-secrets.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
for san in ${grafana_sans[@]+"${grafana_sans[@]}"}; do
    [[ $san =~ ^(DNS:[A-Za-z0-9.*-]+|IP:[0-9A-Fa-f:.]+)$ ]] || {
        echo "dev-secrets.sh: --grafana-san $san: give DNS:name or IP:address" >&2; exit 2; }
done

command -v openssl >/dev/null || { echo "dev-secrets.sh: openssl is missing" >&2; exit 1; }
PYTHON=${PYTHON:-python3}
# Whether HASHER works here. ("$2" below is a bcrypt prefix in Python, not a shell expansion.)
# shellcheck disable=SC2016
hasher_works() {
    case "$1" in
        bcrypt) "$PYTHON" -c 'import bcrypt' 2>/dev/null ;;
        htpasswd) command -v htpasswd >/dev/null ;;
        crypt) "$PYTHON" -W ignore -c 'import crypt, sys
sys.exit(not crypt.crypt("x", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1024)).startswith("$2"))' \
            2>/dev/null ;;
        mkpasswd) command -v mkpasswd >/dev/null ;;
        *) return 1 ;;
    esac
}
if [[ -n $hasher ]]; then
    hasher_works "$hasher" || {
        echo "dev-secrets.sh: --hasher $hasher does not work here" >&2; exit 2; }
else
    for candidate in bcrypt htpasswd crypt mkpasswd; do
        if hasher_works "$candidate"; then
            hasher=$candidate
            break
        fi
    done
    [[ -n $hasher ]] || {
        echo "dev-secrets.sh: no bcrypt hasher: install python3-bcrypt or apache2-utils" >&2
        exit 1; }
fi

umask 077
mkdir -p "$out"
chmod 0700 "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

declare -A changed=()
CA_DAYS=3650
LEAF_DAYS=825

say() { printf 'dev-secrets: %s\n' "$*"; }

# Whether FILE... must be written: --force, or one of them is missing.
needed() {
    local file
    ((force)) && return 0
    for file in "$@"; do
        [[ -s $out/$file ]] || return 0
    done
    return 1
}

# Whether one of FILE... was written by this run.
any_changed() {
    local file
    for file in "$@"; do
        [[ -n ${changed[$file]-} ]] && return 0
    done
    return 1
}

# Move the files made in $work into $out, world-readable for the containers.
publish() {
    local file
    for file in "$@"; do
        chmod 0644 "$work/$file"
        mv -f "$work/$file" "$out/$file"
        changed[$file]=1
        say "wrote $out/$file"
    done
}

keep() {
    local file
    for file in "$@"; do
        say "kept  $out/$file"
    done
}

new_key() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

# --- the CA ------------------------------------------------------------------------------
if needed ca.crt ca.key; then
    new_key "$work/ca.key"
    cat >"$work/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = cover2 development CA
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
    openssl req -new -x509 -sha256 -days "$CA_DAYS" -key "$work/ca.key" -config "$work/ca.cnf" \
        -extensions ca -set_serial "0x$(openssl rand -hex 16)" -out "$work/ca.crt"
    publish ca.crt
    mv -f "$work/ca.key" "$out/ca.key"  # 0600: it signs, it is never mounted
    changed[ca.key]=1
    say "wrote $out/ca.key"
else
    keep ca.crt ca.key
fi

# leaf NAME SAN... : NAME.crt and NAME.key, signed by the CA.
leaf() {
    local name=$1 sans
    shift
    sans=$(IFS=,; echo "$*")
    new_key "$work/$name.key"
    cat >"$work/$name.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = ${name}
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = ${sans}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF
    openssl req -new -key "$work/$name.key" -config "$work/$name.cnf" -out "$work/$name.csr"
    openssl x509 -req -sha256 -days "$LEAF_DAYS" -in "$work/$name.csr" -CA "$out/ca.crt" \
        -CAkey "$out/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
        -extfile "$work/$name.cnf" -extensions leaf -out "$work/$name.crt" 2>/dev/null
}

# --- the certificates -----------------------------------------------------------------------
# Kafka takes its key and chain in one PEM file (ssl.keystore.type=PEM): no keystore password,
# an unencrypted PKCS#8 key, the certificate, then the CA. Each node has its own: clients verify
# the name it advertises (kafka-N:9093), the other nodes the name of its controller listener
# (kafka-N:9094), and on that listener, which asks for a client certificate, its subject CN=kafka-N
# is its principal (a super user in docker-compose.yml).
KAFKA_NODES=(kafka-1 kafka-2 kafka-3)
for node in "${KAFKA_NODES[@]}"; do
    if needed "$node.keystore.pem" || any_changed ca.crt; then
        leaf "$node" "DNS:$node" DNS:localhost
        cat "$work/$node.key" "$work/$node.crt" "$out/ca.crt" >"$work/$node.keystore.pem"
        publish "$node.keystore.pem"
    else
        keep "$node.keystore.pem"
    fi
done

# certificate NAME SAN...: NAME.crt and NAME.key for an HTTPS server.
certificate() {
    local name=$1
    if needed "$name.crt" "$name.key" || any_changed ca.crt; then
        leaf "$@"
        publish "$name.crt" "$name.key"
    else
        keep "$name.crt" "$name.key"
    fi
}

certificate worker DNS:worker-1 DNS:worker-2 DNS:localhost
certificate prometheus DNS:prometheus DNS:localhost
certificate alertmanager DNS:alertmanager DNS:localhost
certificate grafana DNS:grafana DNS:localhost ${grafana_sans[@]+"${grafana_sans[@]}"}

# --- the passwords -------------------------------------------------------------------------
PASSWORDS=(kafka_admin_password kafka_worker_password kafka_feed_password
    prometheus_scrape_password grafana_datasource_password alertmanager_healthcheck_password
    grafana_admin_password)
for name in "${PASSWORDS[@]}"; do
    if needed "$name"; then
        # 256 random bits as hex: safe in SCRAM arguments, JAAS, properties and YAML alike.
        openssl rand -hex 32 | tr -d '\n' >"$work/$name"
        publish "$name"
    else
        keep "$name"
    fi
done

# --- the web configs (bcrypt hashes of the passwords) ------------------------------------------
# bcrypt FILE: the bcrypt hash (cost 10) of the password in FILE, read on stdin.
bcrypt() {
    local hash
    case "$hasher" in
        bcrypt)
            hash=$("$PYTHON" -c 'import sys, bcrypt
print(bcrypt.hashpw(sys.stdin.buffer.read(), bcrypt.gensalt(10)).decode())' <"$1") ;;
        htpasswd)
            hash=$(htpasswd -niBC 10 user <"$1" | tr -d '\n') && hash=${hash#user:} ;;
        crypt)
            hash=$("$PYTHON" -W ignore -c 'import sys, crypt
print(crypt.crypt(sys.stdin.read(), crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1024)))' <"$1") ;;
        mkpasswd)
            hash=$(mkpasswd --method=bcrypt --rounds=10 --stdin <"$1") ;;
        *) return 1 ;;
    esac
    [[ $hash =~ ^\$2[aby]\$10\$[./A-Za-z0-9]{53}$ ]] || {
        echo "dev-secrets.sh: $hasher did not produce a bcrypt hash" >&2; return 1; }
    printf '%s' "$hash"
}

# web_config FILE CERT "user:password_file"...: an exporter-toolkit web config. The certificate
# and key are named relative to the file: they are mounted beside it in /run/secrets.
web_config() {
    local file=$1 cert=$2 entry sources=()
    shift 2
    for entry in "$@"; do
        sources+=("${entry#*:}")
    done
    if ! needed "$file" && ! any_changed "${sources[@]}"; then
        keep "$file"
        return
    fi
    local users=() hash
    for entry in "$@"; do
        hash=$(bcrypt "$out/${entry#*:}")  # a failure stops the script here
        users+=("  ${entry%%:*}: '$hash'")
    done
    {
        echo "# Written by deploy/dev-secrets.sh: TLS and basic auth of this server (exporter-toolkit"
        echo "# web config). Paths are relative to this file; every user's password is a secret file."
        echo "tls_server_config:"
        echo "  cert_file: $cert.crt"
        echo "  key_file: $cert.key"
        echo "basic_auth_users:"
        printf '%s\n' "${users[@]}"
    } >"$work/$file"
    publish "$file"
}

web_config web-config.yml worker prometheus:prometheus_scrape_password
web_config prometheus-web.yml prometheus prometheus:prometheus_scrape_password \
    grafana:grafana_datasource_password
web_config alertmanager-web.yml alertmanager prometheus:prometheus_scrape_password \
    healthcheck:alertmanager_healthcheck_password
if any_changed web-config.yml prometheus-web.yml alertmanager-web.yml; then
    say "bcrypt hashes by $hasher ($(case $hasher in bcrypt | crypt) echo "$PYTHON" ;; *) command -v "$hasher" ;; esac))"
fi
say "done: $out"
