#!/usr/bin/env bash
# Fetch the control-room page's chart library again from the npm registry and check it is the one committed.
# The page serves it from cloud/web/static/vendor/ so that it works on a site without internet.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=4.6.1
SHA256=87364cc2b2a76a6684929e7d6b80b18a897794db38400caff1fcf1791c6925d2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "chart.js@$VERSION" >/dev/null && tar xzf "chart.js-$VERSION.tgz")
echo "$SHA256  $tmp/package/dist/chart.umd.min.js" | sha256sum -c --quiet
cp "$tmp/package/dist/chart.umd.min.js" "cloud/web/static/vendor/chart-$VERSION.umd.min.js"
cp "$tmp/package/LICENSE.md" cloud/web/static/vendor/chart-LICENSE.md
echo "vendor-web: Chart.js $VERSION in cloud/web/static/vendor/"
