// Runs js/audit_verify.js on the vectors test_audit_verify_js.py made with the privacy service's own code.
//   node audit_verify_runner.mjs <audit_verify.js> <vectors.json>
// Prints one JSON array: per case {name, result} (verifyLog's or fetchAndVerify's answer) or {name, error}.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [moduleFile, vectorsFile] = process.argv.slice(2);
const verify = await import(pathToFileURL(moduleFile).href);
const cases = JSON.parse(readFileSync(vectorsFile, "utf-8"));
const out = [];
for (const item of cases) {
  try {
    let result;
    if (item.responses) {
      // the API door as a dictionary of paths: what the page's fetchAndVerify asks for
      const asked = [];
      const get = async (path) => {
        asked.push(path);
        if (!(path in item.responses)) throw new Error(`no answer for ${path}`);
        return item.responses[path];
      };
      result = await verify.fetchAndVerify(get, { seq: item.seq ?? null, record: item.record ?? null, previous: item.previous ?? null });
      result.asked = asked;
    } else {
      result = await verify.verifyLog({ checkpoint: item.checkpoint, publicKey: item.public_key, proof: item.proof, record: item.record,
        previous: item.previous ?? null, consistency: item.consistency ?? null });
    }
    if (item.record) result.canonical = verify.canonicalJson(item.record);
    out.push({ name: item.name, result });
  } catch (error) {
    out.push({ name: item.name, error: `${error.name}: ${error.message}` });
  }
}
process.stdout.write(JSON.stringify(out));
