#!/usr/bin/env bash
# Builds target/debian/sipbridge_<version>_<arch>.deb with dpkg-deb from a
# built binary (default target/release/sipbridge; `make deb` builds it):
# the binary, the systemd unit, the sample configuration as a conffile,
# the presets, the softphone page and the docs. Prints the .deb's path.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
binary="${1:-$here/target/release/sipbridge}"
[ -x "$binary" ] || { echo "build-deb: $binary is missing (cargo build --release -p sipbridge)" >&2; exit 1; }
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/Cargo.toml" | head -1)"
arch="$(dpkg --print-architecture)"
out="$here/target/debian"
root="$out/root"
rm -rf "$root"
install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/sipbridge" \
    "$root/usr/share/sipbridge/presets" "$root/usr/share/sipbridge/web" "$root/usr/share/doc/sipbridge"
# Debug symbols stay out of the package.
objcopy --strip-debug "$binary" "$root/usr/bin/sipbridge"
chmod 0755 "$root/usr/bin/sipbridge"
install -m 0644 "$here/packaging/sipbridge.service" "$root/lib/systemd/system/"
install -m 0644 "$here/examples/sipbridge.toml" "$root/etc/sipbridge/sipbridge.toml"
install -m 0644 "$here"/pipelines/presets/*.toml "$root/usr/share/sipbridge/presets/"
install -m 0644 "$here"/examples/web/* "$root/usr/share/sipbridge/web/"
install -m 0644 "$here/README.md" "$here"/docs/*.md "$root/usr/share/doc/sipbridge/"
install -m 0644 "$here/packaging/debian/conffiles" "$root/DEBIAN/"
install -m 0755 "$here"/packaging/debian/{postinst,prerm,postrm} "$root/DEBIAN/"
size="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
    "$here/packaging/debian/control.in" > "$root/DEBIAN/control"
deb="$out/sipbridge_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
rm -rf "$root"
echo "$deb"
