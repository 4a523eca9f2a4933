#!/usr/bin/env bash
# The command of docker-compose.yml's kafka-init service: runs once, as the super user
# cover2-admin (admin.properties), after the three Kafka nodes are healthy and before any
# worker or feed. BOOTSTRAP_SERVER lists the three nodes; users and ACLs are cluster
# metadata, so what is set through one node holds on all.
#
#   1. the SCRAM-SHA-512 credential of each service user, from its password file
#      (SCRAM_USERS="user:secret-file ..."): created, or replaced by the file's password, so
#      that a new password takes effect at the next `docker compose up`. The password goes
#      to kafka-configs.sh in a file (--add-config-file) in a tmpfs ($TMPDIR), never on a
#      command line;
#   2. every ACL of acls.txt (kafka-acls.sh --add is idempotent);
#   3. the resulting ACLs, listed in the log.
set -euo pipefail
umask 077

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${BIN_DIR:-/opt/kafka/bin}
secrets=${SECRETS_DIR:-/run/secrets}
bootstrap=${BOOTSTRAP_SERVER:-kafka-1:9093,kafka-2:9093,kafka-3:9093}
admin_config=${ADMIN_CONFIG:-$here/admin.properties}
acls=${ACL_FILE:-$here/acls.txt}
users=${SCRAM_USERS:?SCRAM_USERS lists the service users as user:password-file}
work=$(mktemp -d)  # in $TMPDIR: a tmpfs in docker-compose.yml
trap 'rm -rf "$work"' EXIT

me="kafka-init"
# shellcheck source=deploy/kafka/common.sh
source "$here/common.sh"

admin() {
    "$bin/$1" --bootstrap-server "$bootstrap" --command-config "$admin_config" "${@:2}"
}

# 1. SCRAM credentials.
for entry in $users; do
    user=${entry%%:*}
    file=$secrets/${entry#*:}
    [[ $entry == *:* && -n $user ]] || fail "SCRAM_USERS: $entry is not user:password-file"
    password=$(read_password "$file")
    printf 'SCRAM-SHA-512=iterations=8192,password=%s\n' "$password" >"$work/scram.properties"
    unset password
    admin kafka-configs.sh --alter --entity-type users --entity-name "$user" \
        --add-config-file "$work/scram.properties"
    rm -f "$work/scram.properties"
    echo "kafka-init: SCRAM-SHA-512 credential of $user set from $file"
done

# 2. ACLs.
declare -A resource_flag=([topic]=--topic [group]=--group)
count=0
# The table is read on descriptor 3: the tools inside the loop cannot swallow its lines.
while read -r -u 3 principal operations resource pattern names; do
    [[ -z $principal || $principal == \#* ]] && continue
    [[ $principal == User:?* ]] || fail "$acls: principal $principal is not User:NAME"
    [[ -n ${resource_flag[$resource]-} ]] || fail "$acls: resource $resource is not topic or group"
    [[ $pattern == literal || $pattern == prefixed ]] ||
        fail "$acls: pattern $pattern is not literal or prefixed"
    [[ -n $names ]] || fail "$acls: a $resource line for $principal names nothing"
    arguments=(--add --allow-principal "$principal" --resource-pattern-type "$pattern")
    IFS=, read -r -a ops <<<"$operations"
    for operation in "${ops[@]}"; do
        arguments+=(--operation "$operation")
    done
    for name in $names; do
        arguments+=("${resource_flag[$resource]}" "$name")
    done
    admin kafka-acls.sh "${arguments[@]}" >/dev/null
    count=$((count + 1))
done 3<"$acls"
((count)) || fail "$acls grants nothing"
echo "kafka-init: applied the $count grants of $acls"

# 3. What the cluster now holds.
admin kafka-acls.sh --list
