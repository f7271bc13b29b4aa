#!/usr/bin/env bash
# Composes schema/demo/*.graphql with Apollo's own composition library (npm @apollo/composition)
# and diffs the result against the hand-composed schema/demo/supergraph.graphql.
#
# The subgraphs link federation v2.5 (what async-graphql emits), for which Apollo writes join v0.3;
# the committed supergraph uses join v0.5 (same semantics plus @join__directive, overrideLabel and
# contextArguments definitions). The diff therefore lifts Apollo's output to v0.5 before comparing.
# Usage: scripts/check-supergraph.sh   Env: COMPOSITION_VERSION (2.9.3), CACHE (~/.cache/switchyard-composition)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VERSION=${COMPOSITION_VERSION:-2.9.3}
CACHE=${CACHE:-$HOME/.cache/switchyard-composition}/$VERSION
if [ ! -d "$CACHE/node_modules/@apollo/composition" ]; then
  mkdir -p "$CACHE"
  (cd "$CACHE" && npm init -y >/dev/null && npm install --silent "@apollo/composition@$VERSION" >/dev/null)
fi
cat >"$CACHE/compose.js" <<'JS'
// Composes the demo subgraphs in name order, routed to their default ports, and prints the SDL.
const fs = require('fs');
const { composeServices } = require('@apollo/composition');
const { parse } = require('graphql');
const dir = process.argv[2];
const ports = { accounts: 4001, products: 4002, inventory: 4003, reviews: 4004 };
const services = Object.keys(ports).sort().map((name) => ({
  name,
  url: `http://127.0.0.1:${ports[name]}/graphql`,
  typeDefs: parse(fs.readFileSync(`${dir}/${name}.graphql`, 'utf8')),
}));
const result = composeServices(services);
if (result.errors) {
  for (const e of result.errors) console.error(e.toString());
  process.exit(1);
}
process.stdout.write(result.supergraphSdl + '\n');
JS
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
(cd "$CACHE" && node compose.js "$ROOT/schema/demo") | python3 -c '
import sys
sdl = sys.stdin.read()
v3_field = "overrideLabel: String, contextArguments: [join__ContextArgument!]"
sdl = sdl.replace("https://specs.apollo.dev/join/v0.3", "https://specs.apollo.dev/join/v0.5")
sdl = sdl.replace("directive @join__enumValue", "directive @join__directive(graphs: [join__Graph!], name: String!, args: join__DirectiveArguments) repeatable on SCHEMA | OBJECT | INTERFACE | FIELD_DEFINITION\n\ndirective @join__enumValue", 1)
sdl = sdl.replace("usedOverridden: Boolean) repeatable", "usedOverridden: Boolean, " + v3_field + ") repeatable", 1)
sdl = sdl.replace("scalar join__FieldSet\n", "input join__ContextArgument {\n  name: String!\n  type: String!\n  context: String!\n  selection: join__FieldValue!\n}\n\nscalar join__DirectiveArguments\n\nscalar join__FieldSet\n\nscalar join__FieldValue\n", 1)
sys.stdout.write(sdl)' >"$OUT"
if diff -u "$OUT" "$ROOT/schema/demo/supergraph.graphql"; then
  echo "schema/demo/supergraph.graphql matches Apollo composition $VERSION (lifted to join v0.5)"
else
  echo "schema/demo/supergraph.graphql differs from Apollo composition $VERSION (diff above: - apollo, + committed)"
  exit 1
fi
