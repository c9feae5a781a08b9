# Sourced by the scripts that run podman (images, test-images, dev-image,
# in-distro): the project's podman settings plus this machine's open-files
# hard limit, written to TARGET_DIR/images/containers.conf and exported as
# CONTAINERS_CONF. See container/containers.conf for why.
#   podman_conf TARGET_DIR
podman_conf() {
  local dir=$1/images
  mkdir -p "$dir"
  export CONTAINERS_CONF=$dir/containers.conf
  { cat container/containers.conf
    printf 'default_ulimits = ["nofile=%s:%s", "nproc=4096:4096"]\n' "$(ulimit -Hn)" "$(ulimit -Hn)"
  } > "$CONTAINERS_CONF.$$"
  # Renamed into place: scripts running side by side may rewrite it.
  mv "$CONTAINERS_CONF.$$" "$CONTAINERS_CONF"
}

# The Debian release this machine runs (bookworm here): its suites run on
# the host, every other release's in a container (build/in-distro).
host_release() {
  sed -n 's/^VERSION_CODENAME=//p' /etc/os-release
}
