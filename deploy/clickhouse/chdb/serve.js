// Serves one chDB session (the ClickHouse engine in-process) over stdin and
// stdout for make test's modern-ClickHouse check: each input line is a JSON
// object {"sql": "...", "format": "JSONCompact"}; each output line answers
// it with {"out": "..."} or {"error": "..."}, in order.
//
//   node serve.js <data dir>
"use strict";
const readline = require("readline");
const { Session } = require("chdb");

const dir = process.argv[2];
if (!dir) {
  process.stderr.write("usage: node serve.js <data dir>\n");
  process.exit(2);
}
const session = new Session(dir);
const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on("line", (line) => {
  let answer;
  try {
    const req = JSON.parse(line);
    answer = { out: session.query(req.sql, req.format || "TabSeparated") };
  } catch (e) {
    answer = { error: String(e && e.message ? e.message : e) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
});
lines.on("close", () => session.close());
