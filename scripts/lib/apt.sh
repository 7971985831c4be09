# shellcheck shell=bash
# Sourced by the project's scripts (Debian/Ubuntu, root).

# apt_install PACKAGE...: installs the packages, refreshing the package lists
# first only when apt does not know one of them yet.
apt_install() {
  local package
  export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
  for package in "$@"; do
    if ! apt-cache show "$package" >/dev/null 2>&1; then
      apt-get update -qq
      break
    fi
  done
  apt-get install -y -qq "$@" >/dev/null
}
