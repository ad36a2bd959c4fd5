#!/usr/bin/env bash
# The Python package's tests: a fresh virtualenv, the wheel built into it (build-wheel.sh),
# then pytest on python/tests. fairlearn and tensorboard are installed when the package
# index has them (the tests comparing with them are skipped, and say so, when not).
#   python/test.sh          (PROFILE=dev for the quicker unoptimised build; VENV=DIR)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
venv="${VENV:-$root/target/python-venv}"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check maturin pytest pandas
for optional in fairlearn tensorboard; do
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$optional" \
    || echo "SKIPPED: $optional is not installable here; the tests that compare with it are skipped"
done
PATH="$venv/bin:$PATH" "$here/build-wheel.sh" "$root/target/wheels"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --force-reinstall "$root"/target/wheels/fairrec-*.whl
cd "$here/tests"
PATH="$venv/bin:$PATH" "$venv/bin/python" -m pytest -q -rs "$@"
