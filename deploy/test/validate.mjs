// SPDX-License-Identifier: Apache-2.0
//
// Validates Kubernetes manifests offline against the Kubernetes OpenAPI
// schemas, as packaged (and pinned in package-lock.json) by kubernetes-models:
//
//   node validate.mjs FILE.yaml...     validate every document of every file
//   node validate.mjs --self-test F    also prove that broken copies of F's
//                                      documents are rejected
//
// Three layers, each of which the API server would enforce at `kubectl apply`:
//  1. the schema (types, enums, required fields) with kubernetes-models' validate();
//  2. strict field names: the OpenAPI schemas accept unknown fields, the API
//     server drops them (or refuses them with --validate=strict), so a typo such
//     as `volumeMount` would silently lose the mount; every field is checked
//     against the model's declared properties;
//  3. the cross-field rules the schemas cannot say: a workload's selector must
//     match its template's labels, every volumeMount must name a volume of the
//     pod, names of containers and volumes are unique.
// Prints one TAP line per document and exits 1 on any failure.
import { createRequire } from "node:module";
import { readFileSync, existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "package.json"));
const YAML = require("yaml");
const modelsDir = dirname(require.resolve("kubernetes-models/package.json"));
const modelsVersion = JSON.parse(readFileSync(join(modelsDir, "package.json"), "utf8")).version;

// ---------------------------------------------------------------- models
function modelFor(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string") return null;
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : [null, apiVersion];
  const dir = group ? join(modelsDir, group, version) : join(modelsDir, version);
  const file = join(dir, kind + ".js");
  if (!/^[A-Za-z0-9.]+$/.test(kind) || !existsSync(file)) return null;
  const mod = require(file);
  return { Model: mod[kind], dts: join(dir, kind + ".d.ts") };
}

// ---------------------------------------------------------------- strict fields
// The models' TypeScript declarations list every property of every type;
// they are parsed once per file: interface name -> { prop -> type text }.
const dtsCache = new Map();

function parseDts(path) {
  if (dtsCache.has(path)) return dtsCache.get(path);
  const text = readFileSync(path, "utf8").replace(/\/\*\*[\s\S]*?\*\//g, "");
  const imports = new Map();
  for (const m of text.matchAll(/import \{ ([^}]+) \} from "([^"]+)";/g)) {
    for (const name of m[1].split(",").map((s) => s.trim())) imports.set(name, m[2]);
  }
  const interfaces = new Map();
  for (const m of text.matchAll(/export interface (\w+)(?: extends [\w, ]+)? \{/g)) {
    let i = m.index + m[0].length;
    let depth = 1;
    const start = i;
    while (depth > 0 && i < text.length) {
      if (text[i] === "{") depth++;
      else if (text[i] === "}") depth--;
      i++;
    }
    interfaces.set(m[1], parseProps(text.slice(start, i - 1)));
  }
  const aliases = new Map();
  for (const m of text.matchAll(/export \{ ([^}]+) \};/g)) {
    for (const part of m[1].split(",")) {
      const [from, to] = part.trim().split(/\s+as\s+/);
      if (to) aliases.set(to.trim(), from.trim());
    }
  }
  const parsed = { path, imports, interfaces, aliases };
  dtsCache.set(path, parsed);
  return parsed;
}

function parseProps(body) {
  const props = new Map();
  let i = 0;
  while (i < body.length) {
    const m = /"([^"]+)"\??:\s*/y;
    m.lastIndex = i;
    const hit = m.exec(body);
    if (!hit) {
      i++;
      continue;
    }
    let j = m.lastIndex;
    let depth = 0;
    while (j < body.length && !(depth === 0 && body[j] === ";")) {
      if ("{<(".includes(body[j])) depth++;
      else if ("}>)".includes(body[j])) depth--;
      j++;
    }
    props.set(hit[1], body.slice(m.lastIndex, j).replace(/\s+/g, " ").trim());
    i = j + 1;
  }
  return props;
}

// a type reference inside `file` -> { file, iface } or null for scalars
function resolveType(file, name) {
  const d = parseDts(file);
  const local = d.aliases.get(name) || name;
  if (d.interfaces.has(local)) return { file, iface: local };
  const from = d.imports.get(name);
  if (!from) return null;
  const target = from.startsWith(".")
    ? resolve(dirname(file), from + ".d.ts")
    : require.resolve(from).replace(/\.js$/, ".d.ts");
  if (!existsSync(target)) return null;
  return resolveType(target, name);
}

function checkStrict(value, file, iface, path, errors) {
  const d = parseDts(file);
  const props = d.interfaces.get(iface);
  if (!props || value === null || typeof value !== "object" || Array.isArray(value)) return;
  for (const [key, v] of Object.entries(value)) {
    if (!props.has(key)) {
      errors.push(`${path}/${key}: unknown field (${iface.replace(/^I/, "")} has no "${key}")`);
      continue;
    }
    checkType(v, file, props.get(key), `${path}/${key}`, errors);
  }
}

function checkType(v, file, type, path, errors) {
  let m;
  if ((m = /^Array<(.+)>$/.exec(type))) {
    if (Array.isArray(v)) v.forEach((item, n) => checkType(item, file, m[1], `${path}/${n}`, errors));
  } else if ((m = /^\{ \[key: string\]: (.+); \}$/.exec(type))) {
    if (v && typeof v === "object") {
      for (const [k, item] of Object.entries(v)) checkType(item, file, m[1], `${path}/${k}`, errors);
    }
  } else if (/^\w+$/.test(type)) {
    const t = resolveType(file, type);
    if (t) checkStrict(v, t.file, t.iface, path, errors);
  }
}

// ---------------------------------------------------------------- cross-field rules
function podTemplateOf(doc) {
  if (doc.kind === "Pod") return { spec: doc.spec, labels: doc.metadata?.labels, path: "" };
  if (["DaemonSet", "Deployment", "StatefulSet", "ReplicaSet", "Job"].includes(doc.kind))
    return {
      spec: doc.spec?.template?.spec,
      labels: doc.spec?.template?.metadata?.labels,
      selector: doc.spec?.selector,
      path: "/spec/template",
    };
  return null;
}

function checkSemantics(doc, errors) {
  const t = podTemplateOf(doc);
  if (!t || !t.spec) return;
  if (t.selector) {
    for (const [k, v] of Object.entries(t.selector.matchLabels || {})) {
      if ((t.labels || {})[k] !== v)
        errors.push(`/spec/selector/matchLabels/${k}: "${v}" does not match the template's labels`);
    }
  }
  const volumes = new Set();
  for (const v of t.spec.volumes || []) {
    if (volumes.has(v.name)) errors.push(`${t.path}/spec/volumes: duplicate volume "${v.name}"`);
    volumes.add(v.name);
  }
  const names = new Set();
  for (const group of ["initContainers", "containers"]) {
    (t.spec[group] || []).forEach((c, n) => {
      if (names.has(c.name)) errors.push(`${t.path}/spec/${group}/${n}: duplicate container name "${c.name}"`);
      names.add(c.name);
      (c.volumeMounts || []).forEach((vm, k) => {
        if (!volumes.has(vm.name))
          errors.push(`${t.path}/spec/${group}/${n}/volumeMounts/${k}: no volume named "${vm.name}"`);
      });
    });
  }
}

// ---------------------------------------------------------------- driver
export function validateDoc(doc) {
  const errors = [];
  if (!doc || typeof doc !== "object") return ["not a Kubernetes object"];
  const m = modelFor(doc.apiVersion, doc.kind);
  if (!m || !m.Model) return [`unknown apiVersion/kind ${doc.apiVersion}/${doc.kind}`];
  try {
    new m.Model(doc).validate();
  } catch (e) {
    const details = (e.errors || []).map((x) => `${x.instancePath || "/"}: ${x.message}`);
    errors.push(...(details.length ? details : [String(e.message || e)]));
  }
  const d = parseDts(m.dts);
  checkStrict(doc, m.dts, "I" + doc.kind, "", errors);
  if (!d.interfaces.has("I" + doc.kind)) errors.push(`no declaration of ${doc.kind} to check fields`);
  if (!doc.metadata?.name) errors.push("/metadata/name: required");
  checkSemantics(doc, errors);
  return errors;
}

function loadDocs(file) {
  return YAML.parseAllDocuments(readFileSync(file, "utf8"))
    .map((d) => {
      if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
      return d.toJS();
    })
    .filter((d) => d !== null);
}

const clone = (x) => JSON.parse(JSON.stringify(x));

// broken copies of a workload that a validator worth the name must refuse
function mutations(doc) {
  const t = podTemplateOf(doc);
  if (!t) return [];
  const c0 = (d) => podTemplateOf(d).spec.containers[0];
  return [
    ["misspelt field (volumeMount)", (d) => { const c = c0(d); c.volumeMount = c.volumeMounts; delete c.volumeMounts; }],
    ["wrong type (privileged: \"yes\")", (d) => { c0(d).securityContext = { privileged: "yes" }; }],
    ["bad enum (hostPath type Chardevice)", (d) => { podTemplateOf(d).spec.volumes = [{ name: "x", hostPath: { path: "/dev/x", type: "Chardevice" } }]; }],
    ["missing required field (container name)", (d) => { delete c0(d).name; }],
    ["mount of an undeclared volume", (d) => { c0(d).volumeMounts = [{ name: "nosuch", mountPath: "/x" }]; }],
    ...(t.selector ? [["selector not matching the template", (d) => { d.spec.selector.matchLabels = { app: "other" }; }]] : []),
  ];
}

function main(argv) {
  let selfTest = false;
  const files = [];
  for (const a of argv) {
    if (a === "--self-test") selfTest = true;
    else files.push(a);
  }
  if (!files.length) {
    console.error("usage: node validate.mjs [--self-test] FILE.yaml...");
    return 2;
  }
  console.log(`# kubernetes-models ${modelsVersion} (Kubernetes OpenAPI schemas), strict fields`);
  let n = 0;
  let failed = 0;
  const tap = (ok, what, errors = []) => {
    n++;
    if (!ok) failed++;
    console.log(`${ok ? "ok" : "not ok"} ${n} - ${what}`);
    for (const e of errors) console.log(`#   ${e}`);
  };
  for (const file of files) {
    let docs;
    try {
      docs = loadDocs(file);
    } catch (e) {
      tap(false, `${file}: YAML`, [e.message]);
      continue;
    }
    for (const doc of docs) {
      const what = `${file}: ${doc.kind} ${doc.metadata?.namespace ? doc.metadata.namespace + "/" : ""}${doc.metadata?.name}`;
      const errors = validateDoc(doc);
      tap(errors.length === 0, what, errors);
      if (!selfTest) continue;
      for (const [name, mutate] of mutations(doc)) {
        const bad = clone(doc);
        mutate(bad);
        const errs = validateDoc(bad);
        tap(errs.length > 0, `${what}: refuses a ${name}`, errs.length ? [errs[0]] : ["accepted"]);
      }
    }
  }
  console.log(`1..${n}`);
  console.log(`${n - failed} passed, ${failed} failed`);
  return failed ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
