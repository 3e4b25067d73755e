#!/usr/bin/env bash
# Puts CIFAR-10 where pconv looks for it, exactly as src/data/cifar10_source.cpp does on first use:
#   1. <cache>/cifar10-jpeg or <cache>/cifar-10-batches-bin already there: nothing to do;
#   2. else cifar10-jpeg.tar.gz from $PCONV_SHARED_DIR/datasets or <repo>/../shared/datasets:
#      sha256 checked, extracted to a temporary folder, counts checked, renamed into place;
#   3. else the official binary release is downloaded (curl or wget), md5 and sizes checked, extracted.
# Usage: datasets/prepare_cifar10.sh [cache_dir]   (default: $PCONV_CACHE_DIR, else <repo>/.cache)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${1:-${PCONV_CACHE_DIR:-$repo/.cache}}"
sha256="efac85c8ed52f4ead1e1f1b670d8dcf435d551fccebdd8b6365e0a01a504f3a4"
url="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
classes=(airplane automobile bird cat deer dog frog horse ship truck)

die() { echo "prepare_cifar10: $*" >&2; exit 1; }

if [[ -d "$cache/cifar10-jpeg/train" && -d "$cache/cifar10-jpeg/test" ]]; then
  echo "CIFAR-10 (JPEG folders) already in $cache/cifar10-jpeg"; exit 0
fi
if [[ -f "$cache/cifar-10-batches-bin/data_batch_1.bin" && -f "$cache/cifar-10-batches-bin/test_batch.bin" ]]; then
  echo "CIFAR-10 (binary release) already in $cache/cifar-10-batches-bin"; exit 0
fi

mkdir -p "$cache"
tmp="$cache/.extract-$$"
trap 'rm -rf "$tmp"' EXIT

# Extracts $1 into $tmp; the caller checks $tmp/<top> and renames it into place.
extract() { rm -rf "$tmp"; mkdir -p "$tmp"; tar -xzf "$1" -C "$tmp" || die "$1: tar -xzf failed"; }

candidates=()
[[ -n "${PCONV_SHARED_DIR:-}" ]] && candidates+=("$PCONV_SHARED_DIR/datasets/cifar10-jpeg.tar.gz")
candidates+=("$repo/../shared/datasets/cifar10-jpeg.tar.gz")
for tarball in "${candidates[@]}"; do
  [[ -f "$tarball" ]] || continue
  sum="$(sha256sum "$tarball" | cut -c1-64)"
  [[ "$sum" == "$sha256" ]] || die "$tarball: sha256 is $sum, expected $sha256"
  echo "extracting $tarball into $cache/cifar10-jpeg"
  extract "$tarball"
  for split in train:5000 test:1000; do
    name="${split%%:*}" want="${split##*:}"
    for c in "${classes[@]}"; do
      n="$(find "$tmp/cifar10-jpeg/$name/$c" -maxdepth 1 -type f 2>/dev/null | wc -l)"
      [[ "$n" -eq "$want" ]] || die "$tarball: $name/$c holds $n images, expected $want"
    done
  done
  mv -T "$tmp/cifar10-jpeg" "$cache/cifar10-jpeg" 2>/dev/null || [[ -d "$cache/cifar10-jpeg/train" ]] ||
    die "cannot move the extracted data to $cache/cifar10-jpeg"
  echo "CIFAR-10 ready: $cache/cifar10-jpeg"; exit 0
done

echo "no cifar10-jpeg.tar.gz in: ${candidates[*]}; downloading $url"
archive="$cache/cifar-10-binary.tar.gz"
if command -v curl >/dev/null; then
  curl -fsSL --connect-timeout 20 -o "$archive.part" "$url" || die "download of $url failed"
elif command -v wget >/dev/null; then
  wget -q --timeout=20 -O "$archive.part" "$url" || die "download of $url failed"
else
  die "neither curl nor wget is installed"
fi
md5="$(md5sum "$archive.part" | cut -c1-32)"
[[ "$md5" == "c32a1d4ab5d03f1284b67883e8d87530" ]] || { rm -f "$archive.part"; die "$url: md5 is $md5, expected c32a1d4ab5d03f1284b67883e8d87530"; }
mv "$archive.part" "$archive"
extract "$archive"
for f in data_batch_1 data_batch_2 data_batch_3 data_batch_4 data_batch_5 test_batch; do
  size="$(stat -c %s "$tmp/cifar-10-batches-bin/$f.bin" 2>/dev/null || echo 0)"
  [[ "$size" -eq 30730000 ]] || die "$archive: $f.bin is $size bytes, expected 30730000"
done
mv -T "$tmp/cifar-10-batches-bin" "$cache/cifar-10-batches-bin" 2>/dev/null ||
  [[ -f "$cache/cifar-10-batches-bin/test_batch.bin" ]] || die "cannot move the extracted data into $cache"
echo "CIFAR-10 ready: $cache/cifar-10-batches-bin"
