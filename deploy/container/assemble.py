#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Assembles a minimal container root file system from a Debian tree.

mmdebstrap --variant=extract unpacks the requested packages and all their hard
dependencies (maintainer scripts are not run). Library packages drag in
dependencies that only matter on a full system (tpm-udev -> udev, adduser,
passwd, PAM). This program keeps only what the image runs:

  * the roots: the agent (from a `meson install --destdir` tree or from the
    project's own packages) or swtpm, and modules loaded with dlopen();
  * every package that owns a file in the shared-library closure of the roots
    (DT_NEEDED, resolved through RUNPATH, the multiarch directories and
    symbolic links), copied whole except documentation, manual pages,
    translations and init-system integration;
  * the copyright file of each kept package.

It writes /var/lib/dpkg/status for the kept packages (so that image scanners
know their versions), the user database (root, keylime, tss), nsswitch.conf,
the dynamic linker cache, and the role's configuration and directories. It
prints the kept and dropped packages and the sizes.

usage: assemble.py --extract DIR --out DIR --role agent|swtpm
                   [--payload DESTDIR] [--project-packages a,b,...]
"""

import argparse
import glob
import os
import shutil
import stat
import subprocess
import sys

# user database of the image (fixed ids: files on the node's /var/lib/keylime
# keep their meaning across image versions)
UID_KEYLIME = 999
GID_KEYLIME = 999
GID_TSS = 998
UID_TSS = 998

LIBDIRS = [
    "/usr/lib/x86_64-linux-gnu",
    "/lib/x86_64-linux-gnu",
    "/usr/lib",
    "/lib",
]

# path prefixes never copied into the image
EXCLUDE_PREFIXES = [
    "/usr/share/man/",
    "/usr/share/info/",
    "/usr/share/locale/",
    "/usr/share/lintian/",
    "/usr/share/bug/",
    "/usr/share/doc-base/",
    "/usr/share/bash-completion/",
    "/usr/share/zsh/",
    "/usr/share/fish/",
    "/usr/share/menu/",
    "/usr/share/pkgconfig/",
    "/usr/share/common-licenses/",
    "/usr/include/",
    "/usr/lib/x86_64-linux-gnu/gconv/",
    "/usr/lib/x86_64-linux-gnu/pkgconfig/",
    "/usr/lib/systemd/",
    "/usr/lib/sysusers.d/",
    "/usr/lib/tmpfiles.d/",
    "/lib/systemd/",
    "/usr/lib/udev/",
    "/lib/udev/",
    "/etc/init.d/",
    "/usr/share/keylime-agent/",
]

# (role, glob) of files that are loaded with dlopen(), so not found by DT_NEEDED
DLOPEN_ROOTS = {
    "agent": [
        "/usr/lib/x86_64-linux-gnu/libtss2-tcti-device.so.0",
        "/usr/lib/x86_64-linux-gnu/libtss2-tcti-swtpm.so.0",
        # glibc loads it for thread cancellation and pthread_exit()
        "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1",
    ],
    "swtpm": [
        "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1",
        # tpm2_shutdown (the pod's preStop hook) reaches swtpm through it
        "/usr/lib/x86_64-linux-gnu/libtss2-tcti-swtpm.so.0",
    ],
}

EXEC_ROOTS = {
    "agent": [
        "/usr/bin/keylime_push_model_agent",
        "/usr/sbin/keylime_push_model_agent",
        "/usr/lib/x86_64-linux-gnu/keylime-agent/plugins/*.so",
    ],
    "swtpm": [
        "/usr/bin/swtpm",
        "/usr/bin/swtpm_setup",
        "/usr/bin/swtpm_localca",
        "/usr/bin/swtpm_ioctl",
        # swtpm_localca signs the EK and platform certificates with it
        "/usr/bin/certtool",
        # an orderly TPM2_Shutdown before swtpm stops (swtpm 0.7 sends none on
        # SIGTERM, and the next quotes would report an unsafe clock)
        "/usr/bin/tpm2_shutdown",
    ],
}

# packages kept whatever the closure says
ALWAYS_KEEP = {"base-files"}

AGENT_CONF = """\
# Defaults of the keylime-agent-c container image.
# Site settings (verifier_url, registrar_ip, ...) belong in a drop-in in
# /etc/keylime/agent.conf.d/ (in Kubernetes: a ConfigMap mounted there),
# which overrides this file.
[agent]
# one stable identity per TPM: the agent id survives pod restarts and
# reinstallations of the image as long as the TPM keeps its EK
uuid = "hash_ek"
# on the node (hostPath) so that agent_data.json, the AK, outlives the pod
keylime_dir = "/var/lib/keylime"
# the agent opens the TPM and the logs as root, then runs as this user
run_as = "keylime:tss"
tcti = "device:/dev/tpmrm0"
# the verifier's (and the registrar's, with TLS) CA: a Secret mounted there
verifier_tls_ca_cert = "/etc/keylime/ca/cacert.crt"
registrar_tls_ca_cert = "/etc/keylime/ca/cacert.crt"
# read by `keylime_push_model_agent --status` (the Kubernetes probes); on a
# tmpfs the agent can still write after dropping root (the node's
# /var/lib/keylime is root's)
status_file = "/run/keylime/agent_status.json"
"""


def die(msg):
    print("assemble: error: " + msg, file=sys.stderr)
    sys.exit(1)


class Tree:
    """A view of a root file system made of layered directories (first wins)."""

    def __init__(self, layers):
        self.layers = layers

    def host(self, path):
        for layer in self.layers:
            p = layer + path
            if os.path.lexists(p):
                return p
        return None

    def resolve(self, path, depth=0):
        """Resolves symbolic links inside the tree; returns the final path."""
        if depth > 40:
            return None
        parts = [p for p in path.split("/") if p]
        cur = ""
        for i, part in enumerate(parts):
            nxt = cur + "/" + part
            h = self.host(nxt)
            if h is None:
                return None
            if os.path.islink(h):
                target = os.readlink(h)
                base = target if target.startswith("/") else os.path.normpath(cur + "/" + target)
                rest = "/".join(parts[i + 1 :])
                return self.resolve(os.path.normpath(base + ("/" + rest if rest else "")), depth + 1)
            cur = nxt
        return cur or "/"

    def glob(self, pattern):
        found = set()
        for layer in self.layers:
            for h in glob.glob(layer + pattern):
                found.add(h[len(layer) :])
        return sorted(found)


def elf_info(host_path):
    """(needed, runpath dirs, interpreter) of an ELF file, None if not ELF."""
    with open(host_path, "rb") as f:
        if f.read(4) != b"\x7fELF":
            return None
    out = subprocess.run(
        ["objdump", "-p", host_path], check=True, capture_output=True, text=True
    ).stdout
    needed, runpath = [], []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0] == "NEEDED":
            needed.append(fields[1])
        elif len(fields) == 2 and fields[0] in ("RUNPATH", "RPATH"):
            runpath.extend(fields[1].split(":"))
    interp = None
    hdr = subprocess.run(
        ["readelf", "-l", host_path], check=True, capture_output=True, text=True
    ).stdout
    for line in hdr.splitlines():
        if "Requesting program interpreter:" in line:
            interp = line.split(":", 1)[1].strip().rstrip("]").strip()
    return needed, runpath, interp


def closure(tree, roots):
    """All tree paths (links and targets) needed to load the roots."""
    needed_paths = set()
    todo = list(roots)
    seen = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        real = tree.resolve(path)
        if real is None:
            die("%s is needed but not in the image tree" % path)
        needed_paths.add(path)
        needed_paths.add(real)
        # every link on the way (e.g. libfoo.so.1 -> libfoo.so.1.2.3)
        p = path
        for _ in range(40):
            h = tree.host(p)
            if h is None or not os.path.islink(h):
                break
            t = os.readlink(h)
            p = t if t.startswith("/") else os.path.normpath(os.path.dirname(p) + "/" + t)
            needed_paths.add(p)
        info = elf_info(tree.host(real))
        if info is None:
            continue
        needed, runpath, interp = info
        if interp:
            todo.append(interp)
        origin = os.path.dirname(real)
        dirs = [d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) for d in runpath]
        for name in needed:
            for d in dirs + LIBDIRS:
                cand = os.path.normpath(d + "/" + name)
                if tree.host(cand) is not None and tree.resolve(cand) is not None:
                    todo.append(cand)
                    break
            else:
                die("%s needs %s, which no package in the tree provides" % (real, name))
    return needed_paths


def deb_contents(deb):
    """(control paragraph, [(type, path, link target)]) of a .deb."""
    control = subprocess.run(
        ["dpkg-deb", "-f", deb], check=True, capture_output=True, text=True
    ).stdout.rstrip("\n")
    listing = subprocess.run(
        ["dpkg-deb", "-c", deb], check=True, capture_output=True, text=True
    ).stdout
    entries = []
    for line in listing.splitlines():
        fields = line.split(None, 5)
        if len(fields) < 6:
            continue
        mode, name = fields[0], fields[5]
        target = None
        if mode.startswith("l") and " -> " in name:
            name, target = name.split(" -> ", 1)
        if name.startswith("./"):
            name = name[1:]
        name = name.rstrip("/") or "/"
        entries.append((mode[0], name, target))
    return control, entries


def control_field(control, field):
    for line in control.splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    return None


def excluded(path):
    if path.startswith("/usr/share/doc/"):
        return not path.endswith("/copyright") and path.count("/") > 4
    return any(path.startswith(p) or path + "/" == p for p in EXCLUDE_PREFIXES)


def copy_entry(tree, path, out):
    src = tree.host(path)
    if src is None:
        return
    dst = out + path
    st = os.lstat(src)
    parent = os.path.dirname(dst)
    if not os.path.isdir(parent):
        os.makedirs(parent, exist_ok=True)
    if stat.S_ISDIR(st.st_mode):
        if os.path.islink(dst):
            return
        os.makedirs(dst, exist_ok=True)
        os.chmod(dst, stat.S_IMODE(st.st_mode))
        return
    if os.path.lexists(dst):
        if os.path.isdir(dst) and not os.path.islink(dst):
            return
        os.unlink(dst)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
    else:
        shutil.copy2(src, dst)
    os.lchown(dst, st.st_uid, st.st_gid)


def write(out, path, text, mode=0o644):
    dst = out + path
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(dst, "w") as f:
        f.write(text)
    os.chmod(dst, mode)


def tree_size(path):
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                total += os.lstat(p).st_size
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--extract", required=True, help="mmdebstrap --variant=extract tree")
    ap.add_argument("--out", required=True, help="new, empty directory for the image root")
    ap.add_argument("--role", required=True, choices=["agent", "swtpm"])
    ap.add_argument("--payload", help="a `meson install --destdir` tree of the agent")
    ap.add_argument(
        "--project-packages",
        default="",
        help="comma-separated names of the project's own packages (kept whole; roots)",
    )
    args = ap.parse_args()

    extract = os.path.abspath(args.extract)
    out = os.path.abspath(args.out)
    if os.path.exists(out) and os.listdir(out):
        die("%s is not empty" % out)
    os.makedirs(out, exist_ok=True)
    layers = [os.path.abspath(args.payload)] if args.payload else []
    tree = Tree(layers + [extract])

    debs = sorted(glob.glob(extract + "/var/cache/apt/archives/*.deb"))
    if not debs:
        die("no packages in %s/var/cache/apt/archives (mmdebstrap --skip=cleanup/apt)" % extract)
    packages = {}
    owner = {}
    for deb in debs:
        control, entries = deb_contents(deb)
        name = control_field(control, "Package")
        packages[name] = (control, entries)
        for kind, path, _target in entries:
            if kind == "d":
                continue
            real_dir = tree.resolve(os.path.dirname(path)) or os.path.dirname(path)
            owner.setdefault(os.path.normpath(real_dir + "/" + os.path.basename(path)), name)

    # roots
    roots = []
    for pattern in EXEC_ROOTS[args.role] + DLOPEN_ROOTS[args.role]:
        roots.extend(tree.glob(pattern))
    project = sorted(p for p in args.project_packages.split(",") if p)
    for p in project:
        if p not in packages:
            die("package %s was not unpacked" % p)
    if args.role == "agent":
        for p in project:
            for kind, path, _t in packages[p][1]:
                if kind == "-" and not excluded(path):
                    h = tree.host(path)
                    if h and os.access(h, os.X_OK) or path.endswith(".so") or ".so." in path:
                        roots.append(path)
        if not any(r.endswith("/keylime_push_model_agent") for r in roots):
            die("the agent binary is neither in --payload nor in --project-packages")
    elif not roots:
        die("no swtpm binaries in the tree")
    for r in DLOPEN_ROOTS[args.role]:
        if tree.host(r) is None:
            die("%s (loaded with dlopen) is missing: add its package" % r)

    needed = closure(tree, roots)
    keep = set(ALWAYS_KEEP) | set(project)
    for path in needed:
        real_dir = tree.resolve(os.path.dirname(path)) or os.path.dirname(path)
        pkg = owner.get(os.path.normpath(real_dir + "/" + os.path.basename(path)))
        if pkg:
            keep.add(pkg)
    keep &= set(packages)
    dropped = sorted(set(packages) - keep)

    # the merged-/usr links of the extract tree
    for link in ("/bin", "/sbin", "/lib", "/lib64"):
        h = extract + link
        if os.path.islink(h):
            target = os.readlink(h)
            os.makedirs(os.path.normpath(out + "/" + target), exist_ok=True)
            os.symlink(target, out + link)

    for name in sorted(keep):
        for _kind, path, _t in packages[name][1]:
            if path == "/" or excluded(path):
                continue
            copy_entry(tree, path, out)
    if args.payload:
        payload = os.path.abspath(args.payload)
        for dirpath, dirs, files in os.walk(payload):
            for n in sorted(dirs) + sorted(files):
                path = os.path.join(dirpath, n)[len(payload) :]
                if not excluded(path):
                    copy_entry(tree, path, out)

    # dpkg database: what a scanner needs to know the versions
    status = []
    for name in sorted(keep):
        control = packages[name][0]
        lines = [l for l in control.splitlines() if not l.startswith("Status:")]
        lines.insert(1, "Status: install ok installed")
        status.append("\n".join(lines))
    write(out, "/var/lib/dpkg/status", "\n\n".join(status) + "\n")

    write(
        out,
        "/etc/passwd",
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        "keylime:x:%d:%d:Keylime agent:/var/lib/keylime:/usr/sbin/nologin\n"
        "tss:x:%d:%d:TPM software stack:/var/lib/tpm:/usr/sbin/nologin\n"
        % (UID_KEYLIME, GID_KEYLIME, UID_TSS, GID_TSS),
    )
    write(
        out,
        "/etc/group",
        "root:x:0:\nkeylime:x:%d:\ntss:x:%d:keylime\n" % (GID_KEYLIME, GID_TSS),
    )
    write(out, "/etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n")
    for f in ("/etc/hostname", "/etc/resolv.conf", "/etc/fstab"):
        if os.path.lexists(out + f):
            os.unlink(out + f)
    os.makedirs(out + "/tmp", exist_ok=True)
    os.chmod(out + "/tmp", 0o1777)
    os.makedirs(out + "/root", mode=0o700, exist_ok=True)
    if not os.path.exists(out + "/etc/ld.so.conf"):
        write(out, "/etc/ld.so.conf", "include /etc/ld.so.conf.d/*.conf\n")
    subprocess.run(["ldconfig", "-r", out], check=True)

    if args.role == "agent":
        # the vendor layer: /etc/keylime/agent.conf and agent.conf.d/ override it
        write(out, "/usr/etc/keylime/agent.conf.d/50-container.conf", AGENT_CONF)
        os.makedirs(out + "/etc/keylime/agent.conf.d", exist_ok=True)
        os.makedirs(out + "/etc/keylime/ca", exist_ok=True)
        os.makedirs(out + "/var/lib/keylime", mode=0o700, exist_ok=True)
        os.chmod(out + "/var/lib/keylime", 0o700)
        os.makedirs(out + "/run/keylime", exist_ok=True)
        os.chmod(out + "/run/keylime", 0o755)
        os.chown(out + "/run/keylime", UID_KEYLIME, GID_TSS)
    else:
        for d in ("/var/lib/swtpm", "/var/lib/swtpm-localca"):
            os.makedirs(out + d, mode=0o750, exist_ok=True)

    print("kept %d packages: %s" % (len(keep), " ".join(sorted(keep))))
    print("dropped %d packages: %s" % (len(dropped), " ".join(dropped)))
    print("image root: %.1f MiB in files" % (tree_size(out) / 1048576.0))


if __name__ == "__main__":
    main()
