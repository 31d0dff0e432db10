// SPDX-License-Identifier: Apache-2.0
//
// Turns a DaemonSet manifest into what `podman kube play` (4.3) can run: the
// ConfigMaps of the file and one Pod made of the DaemonSet's pod template.
//
//   node extract-pod.mjs MANIFEST.yaml OVERRIDES.json > pod.yaml
//
// podman 4.3 plays kind: Pod but not DaemonSet, and predates two Kubernetes
// features the manifests use, so the template is adapted as a kubelet would
// run it on one node:
//  * a sidecar (init container with restartPolicy: Always) becomes an
//    ordinary container, listed before the others;
//  * podman 4.3 applies the pod's restartPolicy to init containers too (an
//    init container that ended is started again, beside the running
//    sidecar): the Pod is played with restartPolicy: OnFailure;
//  * podman 4.3 runs no lifecycle hooks: the preStop commands are written
//    to the overrides' preStopFile (container -> command), for the test to
//    run them as a kubelet would before it stops each container;
//  * podman 4.3 runs liveness probes only through systemd timers (there are
//    none here) and has no readiness probes: the exec probes are written to
//    the overrides' probesFile (container -> {livenessProbe, readinessProbe})
//    and removed, for the test to run them as a kubelet would;
//  * a Secret volume becomes a hostPath of the file given in the overrides
//    (podman 4.3 writes a Secret's data still base64-encoded).
// The overrides (JSON) place the pod on this machine's test peers:
//   { "name": "pod name",
//     "hostNetwork": true,                       // the peers listen on 127.0.0.1
//     "hostPathRoot": "/tmp/dir",                // hostPath P becomes /tmp/dir/P
//     "secrets": { "secretName": { "key": "/file" } },
//     "configMaps": { "name": { "key": "new content" } },
//     "replace": { "2321": "3021" },             // strings replaced in args and probes
//     "preStopFile": "/tmp/dir/prestop.json",
//     "probesFile": "/tmp/dir/probes.json" }
import { createRequire } from "node:module";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "package.json"));
const YAML = require("yaml");

function fail(msg) {
  console.error(`extract-pod: ${msg}`);
  process.exit(1);
}

const [manifest, overridesFile] = process.argv.slice(2);
if (!manifest || !overridesFile) fail("usage: node extract-pod.mjs MANIFEST.yaml OVERRIDES.json");
const o = JSON.parse(readFileSync(overridesFile, "utf8"));
const docs = YAML.parseAllDocuments(readFileSync(manifest, "utf8")).map((d) => d.toJS()).filter(Boolean);
const ds = docs.filter((d) => d.kind === "DaemonSet");
if (ds.length !== 1) fail(`${manifest}: expected one DaemonSet, found ${ds.length}`);
const tpl = ds[0].spec.template;
const spec = JSON.parse(JSON.stringify(tpl.spec));

const replaceAll = (s) => {
  for (const [from, to] of Object.entries(o.replace || {})) s = s.split(from).join(to);
  return s;
};
const rewriteStrings = (x) =>
  typeof x === "string" ? replaceAll(x) : Array.isArray(x) ? x.map(rewriteStrings) : x;

const sidecars = (spec.initContainers || []).filter((c) => c.restartPolicy === "Always");
spec.initContainers = (spec.initContainers || []).filter((c) => c.restartPolicy !== "Always");
if (!spec.initContainers.length) delete spec.initContainers;
spec.containers = [
  ...sidecars.map((c) => {
    const copy = { ...c };
    delete copy.restartPolicy;
    return copy;
  }),
  ...spec.containers,
];
for (const c of [...(spec.initContainers || []), ...spec.containers]) {
  if (c.args) c.args = rewriteStrings(c.args);
  if (c.command) c.command = rewriteStrings(c.command);
  for (const p of ["livenessProbe", "readinessProbe", "startupProbe"]) {
    if (c[p]?.exec?.command) c[p].exec.command = rewriteStrings(c[p].exec.command);
  }
}

spec.volumes = (spec.volumes || []).map((v) => {
  if (v.hostPath && o.hostPathRoot && !v.hostPath.path.startsWith("/dev/"))
    return { ...v, hostPath: { ...v.hostPath, path: join(o.hostPathRoot, v.hostPath.path) } };
  if (v.secret) {
    const files = (o.secrets || {})[v.secret.secretName];
    if (!files) fail(`no file given for Secret ${v.secret.secretName}`);
    const items = v.secret.items || Object.keys(files).map((key) => ({ key, path: key }));
    if (items.length !== 1) fail(`Secret ${v.secret.secretName}: one item expected`);
    // the directory of the one file stands in for the Secret's directory
    const [{ key, path }] = items;
    if (!files[key]) fail(`Secret ${v.secret.secretName}: no file for key ${key}`);
    if (!files[key].endsWith("/" + path)) fail(`Secret ${v.secret.secretName}: the file must be named ${path}`);
    return { name: v.name, hostPath: { path: dirname(files[key]), type: "Directory" } };
  }
  return v;
});
if (o.hostNetwork) spec.hostNetwork = true;
spec.restartPolicy = "OnFailure";
const podName = o.name || ds[0].metadata.name;
const preStop = {};
for (const c of spec.containers) {
  if (c.lifecycle?.preStop?.exec?.command) preStop[`${podName}-${c.name}`] = rewriteStrings(c.lifecycle.preStop.exec.command);
}
if (o.preStopFile) writeFileSync(o.preStopFile, JSON.stringify(preStop));
const probes = {};
for (const c of spec.containers) {
  for (const p of ["livenessProbe", "readinessProbe"]) {
    if (!c[p]) continue;
    if (c[p].exec?.command) (probes[`${podName}-${c.name}`] ||= {})[p] = rewriteStrings(c[p].exec.command);
    delete c[p];
  }
}
if (o.probesFile) writeFileSync(o.probesFile, JSON.stringify(probes));

const out = [];
for (const cm of docs.filter((d) => d.kind === "ConfigMap")) {
  const copy = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: cm.metadata.name }, data: { ...cm.data } };
  Object.assign(copy.data, (o.configMaps || {})[cm.metadata.name] || {});
  out.push(copy);
}
out.push({
  apiVersion: "v1",
  kind: "Pod",
  metadata: {
    name: podName,
    labels: tpl.metadata?.labels || {},
  },
  spec,
});
process.stdout.write(out.map((d) => YAML.stringify(d)).join("---\n"));
