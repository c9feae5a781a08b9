# Shared by build/test-packages and build/test-images (sourced, not run):
# a private server/client pair of network namespaces on 192.0.2.0/24 (the
# subnet of the example configurations), perfdhcp as the DHCP clients, and
# DNS checks with kdig. Traffic never leaves the namespaces.

E2E_ZONE=lan.example.
E2E_REVERSE=2.0.192.in-addr.arpa.
E2E_KEY=leasedns-key.

e2e_say() { printf '%s: %s\n' "${E2E_NAME:-e2e}" "$*"; }
e2e_die() { printf '%s: FAILED: %s\n' "${E2E_NAME:-e2e}" "$*" >&2; exit 1; }

# e2e_netns_up TAG: namespaces $TAG-srv and $TAG-cli joined by a veth,
# 192.0.2.1/24 on the server end (Kea's interface: $E2E_SRV_IF), 192.0.2.2/24
# on the client end (perfdhcp acts as a relay and needs an address).
e2e_netns_up() {
  local tag=$1
  E2E_SRV_NS=$tag-srv
  E2E_CLI_NS=$tag-cli
  E2E_SRV_IF=${tag:0:10}s
  E2E_CLI_IF=${tag:0:10}c
  e2e_netns_down
  ip netns add "$E2E_SRV_NS"
  ip netns add "$E2E_CLI_NS"
  ip link add "$E2E_SRV_IF" type veth peer name "$E2E_CLI_IF"
  ip link set "$E2E_SRV_IF" netns "$E2E_SRV_NS"
  ip link set "$E2E_CLI_IF" netns "$E2E_CLI_NS"
  ip -n "$E2E_SRV_NS" addr add 192.0.2.1/24 dev "$E2E_SRV_IF"
  ip -n "$E2E_CLI_NS" addr add 192.0.2.2/24 dev "$E2E_CLI_IF"
  ip -n "$E2E_SRV_NS" link set "$E2E_SRV_IF" up
  ip -n "$E2E_CLI_NS" link set "$E2E_CLI_IF" up
  ip -n "$E2E_SRV_NS" link set lo up
  ip -n "$E2E_CLI_NS" link set lo up
}

# Kills what still runs in the namespaces and deletes them.
e2e_netns_down() {
  local ns pid
  for ns in "${E2E_CLI_NS:-}" "${E2E_SRV_NS:-}"; do
    [[ -n "$ns" && -e "/run/netns/$ns" ]] || continue
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
}

# e2e_tsig_key FILE: writes Knot's key section for $E2E_KEY (hmac-sha256)
# to FILE, as `keymgr -t` does, and sets E2E_SECRET to its secret. Knot 3.5
# (forky) moved keymgr into knot-keymgr, which knot only recommends: without
# it, the same section is written here.
e2e_tsig_key() {
  local file=$1
  if command -v keymgr >/dev/null; then
    keymgr -t "$E2E_KEY" hmac-sha256 > "$file"
  else
    printf 'key:\n  - id: %s\n    algorithm: hmac-sha256\n    secret: %s\n' \
      "$E2E_KEY" "$(head -c 32 /dev/urandom | base64)" > "$file"
  fi
  E2E_SECRET=$(sed -n 's/^ *secret: *//p' "$file")
  [[ -n "$E2E_SECRET" ]] || e2e_die "no secret in $file"
}

# e2e_wait SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s.
e2e_wait() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { e2e_say "timed out after ${seconds}s waiting for $what"; return 1; }
    sleep 0.2
  done
}

# e2e_perfdhcp CLIENTS [HOSTNAME [MAC]]: CLIENTS simulated clients each do a
# full DORA from the client namespace; with HOSTNAME they send option 12.
e2e_perfdhcp() {
  local clients=$1 hostname=${2:-} mac=${3:-} args=()
  if [[ -n "$hostname" ]]; then
    args+=(-o "12,$(printf '%s' "$hostname" | od -An -tx1 | tr -d ' \n')")
  fi
  [[ -z "$mac" ]] || args+=(-b "mac=$mac")
  # Two exchanges per client at most; -n counts initiated exchanges, so
  # ask for one more than the clients to let the last DORA complete.
  ip netns exec "$E2E_CLI_NS" perfdhcp -4 -l "$E2E_CLI_IF" -r 20 -R "$clients" \
    -n "$((clients + 1))" -p 30 -W 2000000 "${args[@]}" >"$E2E_DIR/perfdhcp.out" 2>&1 || true
  local acks
  acks=$(awk '/Statistics for: REQUEST-ACK/ {f=1} f && /received packets:/ {print $3; exit}' "$E2E_DIR/perfdhcp.out")
  e2e_say "perfdhcp: $clients client(s)${hostname:+ named $hostname}, ${acks:-0} ACK(s)"
  ((${acks:-0} >= 1)) || { cat "$E2E_DIR/perfdhcp.out" >&2; e2e_die "perfdhcp got no lease"; }
}

# e2e_kdig ARGS...: kdig from the server namespace to Knot on 127.0.0.1:53,
# signed with the test's key ($E2E_SECRET).
e2e_kdig() {
  ip netns exec "$E2E_SRV_NS" kdig @127.0.0.1 -p 53 +retry=0 +timeout=2 \
    -y "hmac-sha256:$E2E_KEY:$E2E_SECRET" "$@"
}

# Number of records of TYPE in ZONE (by AXFR) whose owner starts with PREFIX.
e2e_count() {
  local zone=$1 type=$2 prefix=${3:-}
  e2e_kdig AXFR "$zone" +noall +answer 2>/dev/null |
    awk -v t="$type" -v p="$prefix" '$4 == t && index($1, p) == 1 {n++} END {print n + 0}'
}

e2e_count_is() { [[ "$(e2e_count "$1" "$2" "${3:-}")" == "$4" ]]; }

# The answer of NAME TYPE, one rdata per line (unsigned: with a key kdig
# prints the TSIG record even with +short).
e2e_query() {
  ip netns exec "$E2E_SRV_NS" kdig @127.0.0.1 -p 53 +retry=0 +timeout=2 "$1" "$2" +short 2>/dev/null
}

e2e_answer_is() { [[ "$(e2e_query "$1" "$2")" == "$3" ]]; }

# Reads Kea's memfile lease CSV on stdin and prints the number of active
# leases (last row per address, valid lifetime not 0) with a generated name.
e2e_generated_leases() {
  awk -F, 'NR > 1 && $1 != "" {row[$1] = $0} END {
      for (a in row) { split(row[a], f, ","); if (f[4] != "0" && index(f[9], "host-") == 1) n++ }
      print n + 0 }'
}

# e2e_check_published CLIENTS: the named client "laptop" and CLIENTS
# generated names (host-192-0-2-N, one per lease in Kea's lease file) each
# have A, PTR and DHCID records, and nothing more.
e2e_check_published() {
  local clients=$1 addr
  e2e_wait 30 "laptop.$E2E_ZONE A" e2e_answer_nonempty "laptop.$E2E_ZONE" A ||
    e2e_die "laptop.$E2E_ZONE has no A record"
  addr=$(e2e_query "laptop.$E2E_ZONE" A)
  e2e_say "laptop.$E2E_ZONE A $addr"
  local ptr_name
  ptr_name=$(awk -F. '{print $4"."$3"."$2"."$1".in-addr.arpa."}' <<<"$addr")
  e2e_wait 30 "$ptr_name PTR" e2e_answer_is "$ptr_name" PTR "laptop.$E2E_ZONE" ||
    e2e_die "$ptr_name PTR is '$(e2e_query "$ptr_name" PTR)', not laptop.$E2E_ZONE"
  [[ -n "$(e2e_query "laptop.$E2E_ZONE" DHCID)" ]] || e2e_die "laptop.$E2E_ZONE has no DHCID"
  e2e_wait 60 "$clients generated A records" e2e_count_is "$E2E_ZONE" A host- "$clients" ||
    e2e_die "$(e2e_count "$E2E_ZONE" A host-) generated A records, expected $clients"
  e2e_wait 30 "$((clients + 1)) leased PTR records" e2e_count_is "$E2E_REVERSE" PTR "" "$((clients + 2))" ||
    e2e_die "$(e2e_count "$E2E_REVERSE" PTR) PTR records, expected $((clients + 2)) (ns + laptop + $clients)"
  e2e_say "DNS has laptop and $clients generated names with A, PTR and DHCID"
}

e2e_answer_nonempty() { [[ -n "$(e2e_query "$1" "$2")" ]]; }

# DHCPv6 on the same pair (build/test-packages, build/test-images): the
# example kea-dhcp6.conf's subnet 2001:db8:1::/64, the server end
# 2001:db8:1::1, the client end 2001:db8:1::2.
E2E_ZONE6_REVERSE=0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.

# e2e_netns_v6_up: IPv6 on the pair made by e2e_netns_up. kea-dhcp6 binds
# only once its interface's link-local address has passed duplicate address
# detection, so this waits for both ends' link-local addresses.
e2e_netns_v6_up() {
  local ns
  for ns in "$E2E_SRV_NS" "$E2E_CLI_NS"; do
    ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0
  done
  ip -n "$E2E_SRV_NS" -6 addr add 2001:db8:1::1/64 dev "$E2E_SRV_IF" nodad
  ip -n "$E2E_CLI_NS" -6 addr add 2001:db8:1::2/64 dev "$E2E_CLI_IF" nodad
  e2e_wait 10 "the server end's link-local address" e2e_link_local_ready "$E2E_SRV_NS" "$E2E_SRV_IF" ||
    e2e_die "no usable link-local address on $E2E_SRV_IF"
  e2e_wait 10 "the client end's link-local address" e2e_link_local_ready "$E2E_CLI_NS" "$E2E_CLI_IF" ||
    e2e_die "no usable link-local address on $E2E_CLI_IF"
}

e2e_link_local_ready() {
  ip -n "$1" -6 addr show dev "$2" scope link | grep 'inet6 fe80:' | grep -qv -e tentative -e dadfailed
}

# e2e_dhclient6 NAME: a dhclient -6 in the client namespace sending NAME
# (partial, with the S flag: the server updates DNS) in option 39; waits for
# its lease and sets E2E_LEASE6 to the leased address. It stays in the
# background to renew; e2e_netns_down ends it.
e2e_dhclient6() {
  local name=$1 dir=$E2E_DIR/dhclient6-$1 hex
  mkdir -p "$dir"
  # flags 0x01 (S), then the name in wire format without the root label.
  hex=$(printf '%02x' "${#name}"; printf '%s' "$name" | od -An -tx1 | tr -d ' \n')
  hex=$(sed 's/../&:/g; s/:$//' <<<"01$hex")
  printf 'timeout 20;\nretry 1;\ninitial-interval 1;\nsend dhcp6.fqdn %s;\n' "$hex" > "$dir/dhclient6.conf"
  printf '#!/bin/sh\necho "reason=$reason ip6=$new_ip6_address" >> "%s/script.log"\n' "$dir" > "$dir/script"
  chmod 0755 "$dir/script"
  ip netns exec "$E2E_CLI_NS" timeout 30 dhclient -6 -1 -v -cf "$dir/dhclient6.conf" -lf "$dir/leases" \
    -pf "$dir/pid" -sf "$dir/script" "$E2E_CLI_IF" >"$dir/out" 2>&1 ||
    { cat "$dir/out" >&2; e2e_die "dhclient -6 ($name) got no lease"; }
  local addr
  addr=$(sed -n 's/^reason=\(BOUND6\|REBOOT6\) ip6=//p' "$dir/script.log" | tail -n1)
  [[ -n "$addr" ]] || { cat "$dir/out" "$dir/script.log" >&2; e2e_die "dhclient -6 ($name) reported no address"; }
  e2e_say "dhclient -6 sending $name: leased $addr"
  E2E_LEASE6=$addr
}

# e2e_check_published6 NAME ADDRESS: NAME.$E2E_ZONE has AAAA ADDRESS and a
# DHCID, the address's ip6.arpa name a PTR to it and a DHCID.
e2e_check_published6() {
  local fqdn=$1.$E2E_ZONE addr=$2 ptr_name
  e2e_wait 30 "$fqdn AAAA" e2e_answer_is "$fqdn" AAAA "$addr" ||
    e2e_die "$fqdn AAAA is '$(e2e_query "$fqdn" AAAA)', not $addr"
  ptr_name=$(e2e_reverse6 "$addr")
  [[ "$ptr_name" == *".$E2E_ZONE6_REVERSE" ]] || e2e_die "$addr ($ptr_name) is not in $E2E_ZONE6_REVERSE"
  e2e_wait 30 "$ptr_name PTR" e2e_answer_is "$ptr_name" PTR "$fqdn" ||
    e2e_die "$ptr_name PTR is '$(e2e_query "$ptr_name" PTR)', not $fqdn"
  [[ -n "$(e2e_query "$fqdn" DHCID)" ]] || e2e_die "$fqdn has no DHCID"
  [[ -n "$(e2e_query "$ptr_name" DHCID)" ]] || e2e_die "$ptr_name has no DHCID"
  e2e_say "$fqdn AAAA $addr, $ptr_name PTR $fqdn, DHCID at both"
}

# e2e_reverse6 ADDRESS: its ip6.arpa name (32 nibbles).
e2e_reverse6() {
  local addr=$1 head tail h=() t=() groups=() g i full="" name=""
  if [[ "$addr" == *::* ]]; then
    head=${addr%%::*} tail=${addr#*::}
    [[ -z "$head" ]] || IFS=: read -ra h <<<"$head"
    [[ -z "$tail" ]] || IFS=: read -ra t <<<"$tail"
    groups=("${h[@]}")
    for ((i = ${#h[@]} + ${#t[@]}; i < 8; i++)); do groups+=(0); done
    groups+=("${t[@]}")
  else
    IFS=: read -ra groups <<<"$addr"
  fi
  for g in "${groups[@]}"; do full+=$(printf '%04x' "0x$g"); done
  for ((i = ${#full} - 1; i >= 0; i--)); do name+="${full:i:1}."; done
  printf '%sip6.arpa.\n' "$name"
}
