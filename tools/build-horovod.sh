#!/usr/bin/env bash
# Opt-in: build Horovod with PyTorch + Gloo support into the venv of PIP (`make horovod`).
#
# The only release on PyPI (0.28.1, source only) does not build against current torch as shipped: its
# CMake files pin C++14 while torch's headers need C++17 (horovod#3996, fixed upstream after the release),
# and pip's isolated build cannot see the venv's torch. So: download the sdist, raise the standard to 17,
# and install without build isolation. About 8 minutes on 2 cores; the wheel links against this torch,
# so rebuild after changing torch. Needs cmake and a C++17 compiler.
set -euo pipefail
PIP=${1:?usage: build-horovod.sh PIP [VERSION]}
VERSION=${2:-0.28.1}
BIN=$(dirname "$PIP")
if "$BIN/python" -c "import horovod.torch" 2>/dev/null; then
  echo "Horovod with PyTorch support is already built for this venv's torch"
  exit 0
fi
command -v cmake >/dev/null || "$PIP" install --quiet cmake  # PyPI's cmake when the system has none
export PATH="$BIN:$PATH"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PIP" download --quiet --no-deps --no-binary :all: "horovod==$VERSION" -d "$work"
tar -xzf "$work/horovod-$VERSION.tar.gz" -C "$work"
src="$work/horovod-$VERSION"
sed -i 's/set(CMAKE_CXX_STANDARD 14)/set(CMAKE_CXX_STANDARD 17)/' "$src/CMakeLists.txt" "$src/horovod/torch/CMakeLists.txt"
grep -q "CMAKE_CXX_STANDARD 17" "$src/horovod/torch/CMakeLists.txt" || { echo "the C++ standard patch did not apply" >&2; exit 1; }
HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_WITHOUT_TENSORFLOW=1 \
HOROVOD_WITHOUT_MXNET=1 MAKEFLAGS="-j$(nproc)" "$PIP" install --no-build-isolation "$src"
