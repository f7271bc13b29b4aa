// Composes subgraph sets with The Guild's MIT composer (@theguild/federation-composition).
// stdin: [{"name": CASE, "subgraphs": [{"name", "url", "sdl"}]}]
// stdout: {CASE: {"supergraph": SDL} | {"errors": [{code, message}]}}
const { parse } = require("graphql");
const { composeServices, compositionHasErrors } = require("@theguild/federation-composition");

function composeOne(subgraphs) {
  let result;
  try {
    result = composeServices(subgraphs.map((s) => ({ name: s.name, url: s.url, typeDefs: parse(s.sdl) })));
  } catch (e) {
    return { errors: [{ code: "INVALID_GRAPHQL", message: String(e && e.message) }] };
  }
  if (compositionHasErrors(result)) {
    return {
      errors: result.errors.map((e) => ({ code: (e.extensions && e.extensions.code) || "UNKNOWN", message: e.message })),
    };
  }
  return { supergraph: result.supergraphSdl };
}

let input = "";
process.stdin.on("data", (c) => (input += c));
process.stdin.on("end", () => {
  const out = {};
  for (const c of JSON.parse(input)) out[c.name] = composeOne(c.subgraphs);
  process.stdout.write(JSON.stringify(out));
});
