# Sourced by build/package, build/images, build/test-packages and
# build/test-images (after build/podman.bash): which Debian release a script
# works for, and where that release's build lives.
#
# Releases other than the host's build and run in their own container
# (build/in-distro), which sets LEASEDNS_IN_CONTAINER=<release> and
# CARGO_TARGET_DIR=<tree>/target/distro/<release>.

DISTRO_RELEASES=(bookworm trixie forky)

# distro_parse SCRIPT ARGS...: sets DISTRO from `--distro R` (or
# `--distro=R`), else to DISTRO_DEFAULT if set, else to the release this
# runs on (the container's inside build/in-distro, the host's otherwise).
# Any other argument is an error.
distro_parse() {
  local script=$1
  shift
  DISTRO=""
  while (($#)); do
    case "$1" in
      --distro)
        (($# >= 2)) || { printf '%s: ERROR: --distro needs a release\n' "$script" >&2; return 1; }
        DISTRO=$2
        shift 2
        ;;
      --distro=*) DISTRO=${1#--distro=}; shift ;;
      *) printf '%s: ERROR: usage: %s [--distro %s]\n' "$script" "$script" "${DISTRO_RELEASES[*]// /|}" >&2; return 1 ;;
    esac
  done
  if [[ -z "$DISTRO" ]]; then
    DISTRO=${DISTRO_DEFAULT:-$(distro_here)}
  fi
  if [[ " ${DISTRO_RELEASES[*]} " != *" $DISTRO "* ]]; then
    printf '%s: ERROR: unsupported release "%s" (supported: %s)\n' "$script" "$DISTRO" "${DISTRO_RELEASES[*]}" >&2
    return 1
  fi
  if [[ -n "${LEASEDNS_IN_CONTAINER:-}" && "$DISTRO" != "$LEASEDNS_IN_CONTAINER" ]]; then
    printf '%s: ERROR: running inside the %s container, cannot work for %s\n' "$script" "$LEASEDNS_IN_CONTAINER" "$DISTRO" >&2
    return 1
  fi
}

# The release this runs on: the container's, or the host's.
distro_here() {
  if [[ -n "${LEASEDNS_IN_CONTAINER:-}" ]]; then
    printf '%s\n' "$LEASEDNS_IN_CONTAINER"
  else
    host_release
  fi
}

# True when RELEASE must be built in its container (it is not where this runs).
distro_is_foreign() {
  [[ "$1" != "$(distro_here)" ]]
}

# distro_target_dir ROOT RELEASE: the cargo target directory of RELEASE's
# build, as seen from here: CARGO_TARGET_DIR (or ROOT/target) for the
# release this runs on, ROOT/target/distro/RELEASE (build/in-distro's) for
# another.
distro_target_dir() {
  local root=$1 release=$2
  if distro_is_foreign "$release"; then
    printf '%s/target/distro/%s\n' "$root" "$release"
  else
    printf '%s\n' "${CARGO_TARGET_DIR:-$root/target}"
  fi
}

# The Debian version of the packages built for RELEASE: the workspace's
# version with the release's number (0.1.0+deb13), so that the builds for
# two releases never share a version and a distribution upgrade upgrades
# the plugin with its daemon (0.1.0+deb12 < 0.1.0+deb13).
distro_deb_version() {
  local root=$1 release=$2 version number
  version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$root/Cargo.toml" | head -n1)
  case "$release" in
    bookworm) number=12 ;;
    trixie) number=13 ;;
    forky) number=14 ;;
    *) return 1 ;;
  esac
  printf '%s+deb%s\n' "$version" "$number"
}

# Prints "<label> <seconds> s" for the step that began at START ($SECONDS).
distro_took() {
  printf '%s: %-34s %4d s\n' "$1" "$2" $((SECONDS - $3))
}
