#!/bin/sh
# retain-ci.sh: the checks of a pull request to a campaigns repository.
# Run it at the root of the repository (the folder holding campaigns/ and
# templates/) with retain on the PATH and the base branch fetched:
#
#   RETAIN_BASE=origin/main sh retain-ci.sh
#
# 1. retain lint --against the base: problems fail; renames without id:,
#    removed steps and campaigns are printed as warnings.
# 2. retain impact --against the base, on RETAIN_CUSTOMERS (a JSONL sample in
#    the import format) or, when it is unset and REDIS_URL is, read-only on
#    the customers in that Redis. It fails when a customer would get an email
#    again or lose a step, so that a reviewer looks.
# 3. retain preview --all --against the base into $RETAIN_CI_OUT/preview: every
#    changed or new email beside its previous version, to upload as an
#    artifact. It runs even when the checks before it failed.
#
# The reports land in $RETAIN_CI_OUT (default retain-ci/). Exit 0 when every
# check passed, 1 otherwise.
set -u
base=${RETAIN_BASE:-origin/main}
out=${RETAIN_CI_OUT:-retain-ci}
mkdir -p "$out"
status=0

echo "== retain lint --against $base"
retain lint --against "$base" || status=1

echo "== retain impact --against $base"
if [ -n "${RETAIN_CUSTOMERS:-}" ]; then
	retain impact --against "$base" --customers "$RETAIN_CUSTOMERS" >"$out/impact.txt" || status=1
	cat "$out/impact.txt"
elif [ -n "${REDIS_URL:-}" ]; then
	retain impact --against "$base" >"$out/impact.txt" || status=1
	cat "$out/impact.txt"
else
	echo "no RETAIN_CUSTOMERS file and no REDIS_URL: impact skipped"
fi

echo "== retain preview --all --against $base"
retain preview --all --against "$base" --out "$out/preview" || status=1

exit $status
