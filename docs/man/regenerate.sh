#!/usr/bin/env bash
# Regenerates docs/man/ferryctl.1 and docs/man/ferry-bench.1 from the tools' argument parsers, with
# swift-argument-parser's generate-manual plugin (it builds the package in release mode and runs
# offline). Pages are dated by the last commit, so regenerating unchanged help changes nothing.
# ferryd.8 is written by hand: ferryd parses its own options without ArgumentParser.
set -euo pipefail
cd "$(dirname "$0")/../.."
date=$(git log -1 --format=%cs 2>/dev/null || date +%F)
swift package --allow-writing-to-package-directory generate-manual --date "$date"
for page in .build/plugins/GenerateManual/outputs/*/*.1; do
  # An empty line in mdoc is a paragraph break that man warns about; .Pp is the same without the warning.
  sed 's/^$/.Pp/' "$page" > "docs/man/$(basename "$page")"
  echo "docs/man/$(basename "$page")"
done
