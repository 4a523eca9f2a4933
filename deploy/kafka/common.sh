# Sourced by start.sh and init.sh: failing with the script's own name ($me), and reading
# a password file.

fail() {
    echo "$me: $*" >&2
    exit 1
}

# A password that can go in a SCRAM argument, a JAAS option and a properties file unquoted.
read_password() {
    [[ -s $1 ]] || fail "$1 is missing or empty: run deploy/dev-secrets.sh"
    local password
    password=$(<"$1")
    [[ $password =~ ^[A-Za-z0-9._~+/=-]{16,}$ ]] ||
        fail "$1: use at least 16 of A-Z a-z 0-9 . _ ~ + / = - (no space, quote, comma or bracket)"
    printf '%s' "$password"
}
