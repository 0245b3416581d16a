// audit_verify.js: checks the audit log in the browser, trusting nothing the server says about itself.
// No DOM here (tests/web/test_audit_verify_js.py runs it under node with vectors made by the Python code).
//
// What is checked, exactly as the privacy service builds it:
// - the signed checkpoint (services/privacy/src/upgestao_privacy/domain/checkpoints.py): Ed25519 over the
//   ASCII text "upgestao.audit/v1\n<tree_size>\n<root hash, standard base64>\n<signed_at>\n", by the key whose
//   id is the first 16 hex digits of SHA-256 of the raw 32-byte public key;
// - an inclusion proof (domain/merkle.py, RFC 6962 / RFC 9162 §2.1.3.2): leaf hash SHA-256(0x00 || leaf),
//   node hash SHA-256(0x01 || left || right), the audit path folded from the leaf up, compared with the
//   checkpoint's root;
// - the record itself (domain/leaves.py): its leaf is its canonical JSON (keys sorted, no white space,
//   UTF-8, non-ASCII kept as is) with its "seq", so SHA-256(0x00 || that) must be the proof's leaf hash.
// - that the log only grew since a checkpoint verified earlier (RFC 9162 §2.1.4.2 consistency proof).
// Signatures use WebCrypto's Ed25519 (Chromium 137+, Firefox 129+, Safari 17+, node 20): no library.

export const ORIGIN = "upgestao.audit/v1";
export const HASH_SIZE = 32;
export const PUBLIC_KEY_SIZE = 32;
export const SIGNATURE_SIZE = 64;

// signed_at as the privacy service writes it (UTC, microseconds): the signed text holds this very string
const SIGNED_AT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** A check that failed; `code` says which: malformed, unsupported, signature, consistency, proof, leaf. */
export class VerifyError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function subtleCrypto() {
  const subtle = globalThis.crypto && globalThis.crypto.subtle;
  if (!subtle) throw new VerifyError("unsupported", "WebCrypto is not available (a secure context is needed)");
  return subtle;
}

/** Strict standard base64 (with padding) to bytes; VerifyError("malformed") naming `what` otherwise. */
export function b64decode(text, what = "value") {
  if (typeof text !== "string" || !BASE64.test(text)) throw new VerifyError("malformed", `${what} is not base64`);
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

export function b64encode(bytes) {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of parts) { out.set(part, offset); offset += part.length; }
  return out;
}

export async function sha256(bytes) {
  return new Uint8Array(await subtleCrypto().digest("SHA-256", bytes));
}

const LEAF_PREFIX = Uint8Array.of(0);
const NODE_PREFIX = Uint8Array.of(1);

/** RFC 6962 leaf hash: SHA-256(0x00 || leaf). */
export function leafHash(leaf) {
  return sha256(concat(LEAF_PREFIX, leaf));
}

/** RFC 6962 interior node hash: SHA-256(0x01 || left || right). */
export function nodeHash(left, right) {
  return sha256(concat(NODE_PREFIX, left, right));
}

/** Python's json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False) for JSON data. */
export function canonicalJson(value) {
  if (value === null || typeof value === "boolean" || typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number") {
    // (a record holds integers only: a float would be written differently by Python, 1.0 vs 1)
    if (!Number.isSafeInteger(value)) throw new VerifyError("malformed", "the record holds a number that is not an integer");
    return String(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object") {
    const keys = Object.keys(value).sort(compareCodePoints);
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(value[key])}`).join(",")}}`;
  }
  throw new VerifyError("malformed", `the record holds a ${typeof value}`);
}

function compareCodePoints(a, b) {  // Python sorts str by code point, JS by UTF-16 unit: same for the BMP
  const x = Array.from(a, (c) => c.codePointAt(0));
  const y = Array.from(b, (c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

/** The leaf hash of an audit record as the search returns it (with its seq). */
export function recordLeafHash(record) {
  return leafHash(new TextEncoder().encode(canonicalJson(record)));
}

function checkInteger(value, what, min) {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
    throw new VerifyError("malformed", `${what} must be an integer >= ${min}`);
  }
  return value;
}

function checkHash(bytes, what) {
  if (bytes.length !== HASH_SIZE) throw new VerifyError("malformed", `${what} is ${bytes.length} bytes, not ${HASH_SIZE}`);
  return bytes;
}

/** The checkpoint's parts, checked for shape: {treeSize, root, signature, body} (body: the signed bytes). */
export function parseCheckpoint(checkpoint) {
  if (!checkpoint || typeof checkpoint !== "object") throw new VerifyError("malformed", "the checkpoint is not an object");
  if (checkpoint.origin !== ORIGIN) throw new VerifyError("malformed", `the checkpoint's origin is not ${ORIGIN}`);
  const treeSize = checkInteger(checkpoint.tree_size, "the checkpoint's tree size", 0);
  const root = checkHash(b64decode(checkpoint.root_hash, "the checkpoint's root hash"), "the checkpoint's root hash");
  const signature = b64decode(checkpoint.signature, "the checkpoint's signature");
  if (signature.length !== SIGNATURE_SIZE) throw new VerifyError("malformed", `the checkpoint's signature is not ${SIGNATURE_SIZE} bytes`);
  if (typeof checkpoint.signed_at !== "string" || !SIGNED_AT.test(checkpoint.signed_at)) {
    throw new VerifyError("malformed", "the checkpoint's signed_at is not the UTC time the log signs");
  }
  if (typeof checkpoint.key_id !== "string" || !checkpoint.key_id) throw new VerifyError("malformed", "the checkpoint names no key");
  const body = new TextEncoder().encode(`${ORIGIN}\n${treeSize}\n${b64encode(root)}\n${checkpoint.signed_at}\n`);
  return { treeSize, root, signature, body, keyId: checkpoint.key_id };
}

/** First 16 hex digits of SHA-256 of the raw public key. */
export async function keyIdOf(publicKey) {
  const digest = await sha256(publicKey);
  return Array.from(digest.slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The raw 32-byte key of GET /v1/audit/public-key ({algorithm, key_id, public_key}). */
export function parsePublicKey(answer) {
  if (!answer || typeof answer !== "object") throw new VerifyError("malformed", "the public key is not an object");
  if (answer.algorithm !== "Ed25519") throw new VerifyError("malformed", "the public key is not an Ed25519 key");
  const key = b64decode(answer.public_key, "the public key");
  if (key.length !== PUBLIC_KEY_SIZE) throw new VerifyError("malformed", `the public key is not ${PUBLIC_KEY_SIZE} bytes`);
  return key;
}

/** Throws VerifyError("signature") unless the checkpoint is signed by `publicKey` (raw bytes). */
export async function verifyCheckpointSignature(checkpoint, publicKey) {
  const parsed = parseCheckpoint(checkpoint);
  const keyId = await keyIdOf(publicKey);
  if (parsed.keyId !== keyId) throw new VerifyError("signature", `the checkpoint names key ${parsed.keyId}, not the public key ${keyId}`);
  const subtle = subtleCrypto();
  let key;
  try {
    key = await subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
  } catch (error) {
    if (error && error.name === "NotSupportedError") throw new VerifyError("unsupported", "this browser cannot check Ed25519 signatures");
    throw new VerifyError("malformed", "the public key is not a valid Ed25519 key");
  }
  const valid = await subtle.verify({ name: "Ed25519" }, key, parsed.signature, parsed.body);
  if (!valid) throw new VerifyError("signature", "the checkpoint's signature does not verify with the public key");
  return parsed;
}

/** The root an inclusion proof leads to (RFC 9162 §2.1.3.2, as merkle.verify_inclusion folds it). */
export async function rootFromInclusion(leaf, index, size, path) {
  if (!(index >= 0 && index < size)) throw new VerifyError("proof", `leaf ${index} is not in a tree of size ${size}`);
  checkHash(leaf, "the leaf hash");
  let fn = BigInt(index);
  let sn = BigInt(size) - 1n;
  let current = leaf;
  for (let position = 0; position < path.length; position++) {
    const sibling = checkHash(path[position], `proof element ${position}`);
    if (sn === 0n) throw new VerifyError("proof", `the proof for leaf ${index} of ${size} is too long (${path.length} hashes)`);
    if ((fn & 1n) === 1n || fn === sn) {
      current = await nodeHash(sibling, current);
      while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      current = await nodeHash(current, sibling);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new VerifyError("proof", `the proof for leaf ${index} of ${size} is too short (${path.length} hashes)`);
  return current;
}

/** Throws VerifyError("proof") unless `proof` (GET /v1/audit/proof/inclusion) leads to the checkpoint's root. */
export async function verifyInclusionProof(proof, checkpoint, seq) {
  const parsed = parseCheckpoint(checkpoint);
  if (!proof || typeof proof !== "object") throw new VerifyError("malformed", "the proof is not an object");
  checkInteger(proof.seq, "the proof's seq", 0);
  checkInteger(proof.tree_size, "the proof's tree size", 1);
  if (seq !== undefined && proof.seq !== seq) throw new VerifyError("proof", `the proof is for record ${proof.seq}, not ${seq}`);
  if (proof.tree_size !== parsed.treeSize) {
    throw new VerifyError("proof", `the proof is for a tree of ${proof.tree_size} records, the checkpoint has ${parsed.treeSize}`);
  }
  if (!Array.isArray(proof.audit_path)) throw new VerifyError("malformed", "the proof has no audit path");
  const leaf = checkHash(b64decode(proof.leaf_hash, "the proof's leaf hash"), "the proof's leaf hash");
  const path = proof.audit_path.map((element, i) => b64decode(element, `proof element ${i}`));
  const root = await rootFromInclusion(leaf, proof.seq, proof.tree_size, path);
  if (!equalBytes(root, parsed.root)) throw new VerifyError("proof", "the proof does not reproduce the checkpoint's root");
  return leaf;
}

/** Throws VerifyError("leaf") unless `record` (an item of GET /v1/audit) hashes to the proof's leaf. */
export async function verifyRecord(record, proof) {
  if (!record || typeof record !== "object") throw new VerifyError("malformed", "the record is not an object");
  if (record.seq !== proof.seq) throw new VerifyError("leaf", `the record is #${record.seq}, the proof is for #${proof.seq}`);
  const expected = b64decode(proof.leaf_hash, "the proof's leaf hash");
  if (!equalBytes(await recordLeafHash(record), expected)) throw new VerifyError("leaf", "the record is not the leaf the log holds");
}

/** RFC 9162 §2.1.4.2, as merkle.verify_consistency: the tree of `first` leaves is a prefix of the one of `second`. */
export async function checkConsistency(first, second, firstRoot, secondRoot, proof) {
  if (!(first >= 0 && second >= first)) throw new VerifyError("consistency", `a tree of ${second} records cannot extend one of ${first}`);
  checkHash(firstRoot, "the first root");
  checkHash(secondRoot, "the second root");
  proof.forEach((element, i) => checkHash(element, `consistency proof element ${i}`));
  if (first === second) {
    if (proof.length) throw new VerifyError("consistency", "a consistency proof between equal tree sizes must be empty");
    if (!equalBytes(firstRoot, secondRoot)) throw new VerifyError("consistency", `two different roots for a tree of ${first} records`);
    return;
  }
  if (first === 0) {
    if (proof.length) throw new VerifyError("consistency", "a consistency proof from the empty tree must be empty");
    if (!equalBytes(firstRoot, await sha256(new Uint8Array(0)))) throw new VerifyError("consistency", "the empty tree's root is not SHA-256 of nothing");
    return;
  }
  if (!proof.length) throw new VerifyError("consistency", `empty consistency proof from ${first} to ${second} records`);
  const path = [...proof];
  if (isPowerOfTwo(BigInt(first))) path.unshift(firstRoot);
  let fn = BigInt(first) - 1n;
  let sn = BigInt(second) - 1n;
  while ((fn & 1n) === 1n) { fn >>= 1n; sn >>= 1n; }
  let fr = path[0];
  let sr = path[0];
  for (const element of path.slice(1)) {
    if (sn === 0n) throw new VerifyError("consistency", `the consistency proof from ${first} to ${second} is too long`);
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(element, fr);
      sr = await nodeHash(element, sr);
      while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      sr = await nodeHash(sr, element);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new VerifyError("consistency", `the consistency proof from ${first} to ${second} is too short`);
  if (!equalBytes(fr, firstRoot)) throw new VerifyError("consistency", "the consistency proof does not reproduce the earlier root");
  if (!equalBytes(sr, secondRoot)) throw new VerifyError("consistency", "the consistency proof does not reproduce the current root");
}

function isPowerOfTwo(n) {
  return n > 0n && (n & (n - 1n)) === 0n;
}

/**
 * Throws VerifyError("consistency") unless `checkpoint` extends `previous` (a checkpoint verified earlier):
 * `answer` is GET /v1/audit/proof/consistency?first=<previous size>&second=<current size>.
 */
export async function verifyConsistencyProof(previous, checkpoint, answer) {
  const before = parseCheckpoint(previous);
  const now = parseCheckpoint(checkpoint);
  if (before.treeSize > now.treeSize) {
    throw new VerifyError("consistency", `the log has ${now.treeSize} records, fewer than the ${before.treeSize} verified before`);
  }
  if (!answer || typeof answer !== "object" || !Array.isArray(answer.proof)) throw new VerifyError("malformed", "the consistency proof is not an object");
  if (answer.first !== before.treeSize || answer.second !== now.treeSize) {
    throw new VerifyError("consistency", `the consistency proof is from ${answer.first} to ${answer.second}, not ${before.treeSize} to ${now.treeSize}`);
  }
  const proof = answer.proof.map((element, i) => b64decode(element, `consistency proof element ${i}`));
  await checkConsistency(before.treeSize, now.treeSize, before.root, now.root, proof);
}

async function step(name, check) {
  try {
    await check();
    return { step: name, ok: true };
  } catch (error) {
    if (!(error instanceof VerifyError)) throw error;
    return { step: name, ok: false, code: error.code, message: error.message };
  }
}

/**
 * Every check, each reported on its own: {ok, steps: [{step, ok, code?, message?}]}.
 *   checkpoint: GET /v1/audit/checkpoint; publicKey: GET /v1/audit/public-key;
 *   proof: GET /v1/audit/proof/inclusion (null: no record to prove, the log is empty);
 *   record: the item of GET /v1/audit the proof is for (optional); seq: the record asked for (optional);
 *   previous: a checkpoint verified earlier, with consistency: GET /v1/audit/proof/consistency from it (optional).
 * Steps: "signature", "consistency" (when previous is given), "proof" (when a proof is given), "leaf" (when a
 * record is given).
 */
export async function verifyLog({ checkpoint, publicKey, proof = null, record = null, seq = undefined, previous = null,
  consistency = null }) {
  const steps = [];
  steps.push(await step("signature", async () => verifyCheckpointSignature(checkpoint, parsePublicKey(publicKey))));
  if (previous) steps.push(await step("consistency", () => verifyConsistencyProof(previous, checkpoint, consistency)));
  if (proof) {
    steps.push(await step("proof", () => verifyInclusionProof(proof, checkpoint, seq)));
    if (record) steps.push(await step("leaf", () => verifyRecord(record, proof)));
  }
  return { ok: steps.every((s) => s.ok), steps };
}

/**
 * Fetch what verifyLog needs through `get(path)` (the page passes the API door) and check it.
 * `seq`: the record to prove (default: the newest one the checkpoint covers); `record`: that record, when known;
 * `previous`: a checkpoint this browser verified before (kept by the page): the current one must extend it (a
 * consistency proof), so a log rolled back or rewritten since is caught even when freshly signed.
 * Returns verifyLog's answer plus {treeSize, seq, keyId, previous, checkpoint} (the checkpoint as served: to show,
 * and for the page to keep once it verified).
 */
export async function fetchAndVerify(get, { seq = null, record = null, previous = null } = {}) {
  const [checkpoint, publicKey] = await Promise.all([get("/v1/audit/checkpoint"), get("/v1/audit/public-key")]);
  const size = checkpoint && Number.isSafeInteger(checkpoint.tree_size) ? checkpoint.tree_size : 0;
  // a checkpoint verified before counts only if it is signed by this very key (a new key: a new log to this browser)
  let earlier = null;
  if (previous && publicKey && previous.key_id === publicKey.key_id) {
    try {
      await verifyCheckpointSignature(previous, parsePublicKey(publicKey));
      earlier = previous;
    } catch { /* not signed by this key: forgotten */ }
  }
  let consistency = null;
  let consistencyRefused = null;
  if (earlier && earlier.tree_size <= size && size >= 1) {
    try {
      consistency = await get(`/v1/audit/proof/consistency?first=${encodeURIComponent(earlier.tree_size)}&second=${encodeURIComponent(size)}`);
    } catch (error) {
      consistencyRefused = { step: "consistency", ok: false, code: "consistency",
        message: `the log gives no consistency proof from ${earlier.tree_size} to ${size} records: ${error.message}` };
    }
  }
  let chosen = seq === null || seq === undefined ? size - 1 : seq;
  if (chosen >= size) chosen = size - 1;   // a record newer than the checkpoint: prove the newest it covers
  const proved = record && record.seq === chosen ? record : null;
  let proof = null;
  let refused = null;
  if (chosen >= 0) {
    try {
      proof = await get(`/v1/audit/proof/inclusion?seq=${encodeURIComponent(chosen)}&tree_size=${encodeURIComponent(size)}`);
    } catch (error) {   // (a checkpoint claiming more records than the log holds gets no proof)
      refused = { step: "proof", ok: false, code: "proof", message: `the log gives no proof for record ${chosen} of ${size}: ${error.message}` };
    }
  }
  const result = await verifyLog({ checkpoint, publicKey, proof, record: proved, seq: chosen,
    previous: consistencyRefused ? null : earlier, consistency });
  for (const failed of [consistencyRefused, refused]) if (failed) { result.steps.push(failed); result.ok = false; }
  const served = checkpoint && typeof checkpoint === "object" ? checkpoint : {};
  return { ...result, treeSize: size, seq: chosen >= 0 ? chosen : null, keyId: served.key_id ?? null, previous: earlier,
    checkpoint: served };
}
