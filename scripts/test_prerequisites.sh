#!/usr/bin/env bash
# The system packages the test suite needs: installed with apt when run as root, else named with the command to run.
# `npm test` runs this first, so a missing package stops the suite at once instead of failing (or hanging) midway.
set -euo pipefail

missing=()
# python3: the old bridge's client and its rebuild; curl: old clients; mkfifo (coreutils): listen --pipe.
command -v python3 >/dev/null || missing+=(python3)
command -v curl >/dev/null || missing+=(curl)
command -v mkfifo >/dev/null || missing+=(coreutils)
# The benchmark's peers (its smoke mode runs in the suite): nginx with the nchan module.
{ command -v nginx >/dev/null && [ -e /usr/lib/nginx/modules/ngx_nchan_module.so ]; } || missing+=(nginx libnginx-mod-nchan)
# The dashboard's browser test drives Debian's Chromium (never a downloaded browser); systemd-analyze checks the unit.
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v systemd-analyze >/dev/null || missing+=(systemd)
# interop completion's scripts are loaded and run by the real shells.
command -v zsh >/dev/null || missing+=(zsh)
command -v fish >/dev/null || missing+=(fish)
# A disk failing under the broker: an ext4 image of its own on a loop device, repaired with e2fsck.
{ command -v mkfs.ext4 >/dev/null && command -v e2fsck >/dev/null; } || missing+=(e2fsprogs)
# The PostgreSQL store's tests start their own server from Debian's package (initdb and pg_ctl, any version).
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0

install="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$EUID" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "test prerequisites: installing ${missing[*]}" >&2
  if apt-get update && DEBIAN_FRONTEND=noninteractive $install; then exit 0; fi
  echo "error: apt-get could not install the tests' system packages (${missing[*]}); install them, then run npm test again" >&2
  exit 1
fi
echo "error: the tests need system packages missing here: ${missing[*]}; install them with: sudo $install" >&2
exit 1
