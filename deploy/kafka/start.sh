#!/usr/bin/env bash
# The command of each Kafka node of docker-compose.yml, kafka-1, kafka-2 and kafka-3
# (apache/kafka image, mounted read-only).
#
# KRaft keeps SCRAM credentials in the cluster metadata, so the first user can only be made
# when the storage is formatted (`kafka-storage.sh format --add-scram`, KIP-900): there is no
# broker yet to talk to. The image's own start (/etc/kafka/docker/run) formats without
# --add-scram and offers no way to pass it, and its SSL helper wants JKS keystores and their
# passwords under /etc/kafka/secrets. So this script does what the image's does, plus that:
#
#   1. server.properties from the KAFKA_* variables, named as the image names them
#      (KAFKA_ dropped, lower case, _ -> ., __ -> _, ___ -> -), in a tmpfs (/run/kafka);
#   2. format the storage once, with the admin's SCRAM-SHA-512 credential; the argument
#      carrying the password is read from a file (`@file`, which kafka-storage's argument
#      parser expands), so that no password ever appears on a command line;
#   3. exec kafka-server-start.sh.
#
# Three nodes, one cluster: every node runs this with the same CLUSTER_ID and the same admin
# and password, and its own KAFKA_NODE_ID. Formatting is local to a node: it writes
# meta.properties (cluster id, node id) and bootstrap.checkpoint (metadata.version and the
# admin's SCRAM record) into the node's own log directory, and talks to no other node. The
# bootstrap records are not applied at format time: the first controller the quorum elects
# finds the metadata log empty and appends its own bootstrap.checkpoint's records to it
# (ActivationRecordsGenerator.recordsForEmptyLog); the other nodes' copies are never read
# again, and every node learns the admin from the replicated log. Each format draws its own
# random salt, so the three copies differ byte for byte, but all are the admin's credential for
# the same password, so whichever is applied, the brokers' own logins (the same password,
# from the same secret file) succeed. With the static quorum of controller.quorum.voters
# (kraft.version 0), format needs no --standalone or --initial-controllers.
#
# Secrets are read where docker compose mounts them (/run/secrets). The broker reads the
# admin's password itself through a config provider (${dir:/run/secrets:...}), so that
# server.properties holds no secret either. The service users (cover2-worker, cover2-feed)
# and the ACLs are made by kafka-init (init.sh), as this admin.
set -euo pipefail
umask 077

bin=${BIN_DIR:-/opt/kafka/bin}
config_dir=${CONFIG_DIR:-/run/kafka}  # a tmpfs (docker-compose.yml)
secrets=${SECRETS_DIR:-/run/secrets}
admin=${SCRAM_ADMIN_USER:?SCRAM_ADMIN_USER names the SCRAM super user}
password_file=$secrets/kafka_admin_password
: "${CLUSTER_ID:?CLUSTER_ID is the cluster id to format the storage with}"
: "${KAFKA_NODE_ID:?KAFKA_NODE_ID is the id of this node in the cluster and the controller quorum}"

me="kafka start"
# shellcheck source=deploy/kafka/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# The image's variables that are not server properties (kafka.docker.KafkaDockerWrapper).
EXCLUDED=" KAFKA_VERSION KAFKA_HEAP_OPTS KAFKA_LOG4J_OPTS KAFKA_OPTS KAFKA_JMX_OPTS \
KAFKA_JVM_PERFORMANCE_OPTS KAFKA_GC_LOG_OPTS KAFKA_LOG4J_ROOT_LOGLEVEL KAFKA_LOG4J_LOGGERS \
KAFKA_TOOLS_LOG4J_LOGLEVEL KAFKA_JMX_HOSTNAME KAFKA_JMX_PORT KAFKA_HOME "

render() {
    local name key
    for name in $(compgen -e); do
        [[ $name == KAFKA_* && $EXCLUDED != *" $name "* ]] || continue
        key=${name#KAFKA_}
        key=${key,,}
        key=${key//_/.}
        key=${key//.../-}
        key=${key//../_}
        printf '%s=%s\n' "$key" "${!name}"
    done
}

mkdir -p "$config_dir"
config=$config_dir/server.properties
render >"$config"

password=$(read_password "$password_file")
arguments=$config_dir/format.args
trap 'rm -f "$arguments"' EXIT
# printf is a shell builtin: the password goes to the file without any process's argv.
printf -- '--add-scram\nSCRAM-SHA-512=[name=%s,iterations=8192,password=%s]\n' \
    "$admin" "$password" >"$arguments"
unset password
# --ignore-formatted: on every later start the storage is kept as it is, and so are the
# credentials in its metadata (kafka-configs.sh changes them from then on). A node whose
# volume was lost formats an empty one here and rejoins the static quorum as a voter that
# remembers nothing (KIP-853 is the cure, with a dynamic quorum): bring it back only while
# the other two nodes are up, so that it catches up from them before it can decide a vote.
"$bin/kafka-storage.sh" format --ignore-formatted --cluster-id "$CLUSTER_ID" \
    --config "$config" "@$arguments"
rm -f "$arguments"
trap - EXIT

exec "$bin/kafka-server-start.sh" "$config"
