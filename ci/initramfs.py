#!/usr/bin/env python3
"""Writes a newc cpio initramfs: /init (a static binary), /dev/console,
/proc, /etc/passwd and /etc/group (root and nobody: tests that drop to
another user look nobody up), a directory tree (the cases) under a given name, and kernel modules
(for that kernel) in /modules.

    ci/initramfs.py OUT INIT_BINARY TREE_DIR NAME_IN_IMAGE [MODULE.ko]...

Uncompressed: the kernel unpacks it faster than it would decompress it, and
QEMU loads it from the page cache.
"""
import os
import stat
import sys

out, init, tree, name = sys.argv[1:5]
modules = sys.argv[5:]
ino = [1000]


def entry(f, path, mode, data=b"", rdev=(0, 0)):
    ino[0] += 1
    name_b = path.encode() + b"\0"
    fields = [ino[0], mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0]
    f.write(b"070701" + b"".join(b"%08X" % v for v in fields))
    f.write(name_b)
    f.write(b"\0" * (-(110 + len(name_b)) % 4))
    f.write(data)
    f.write(b"\0" * (-len(data) % 4))


with open(out, "wb") as f:
    entry(f, "dev", stat.S_IFDIR | 0o755)
    entry(f, "dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
    entry(f, "proc", stat.S_IFDIR | 0o755)
    entry(f, "etc", stat.S_IFDIR | 0o755)
    entry(f, "etc/passwd", stat.S_IFREG | 0o644,
          b"root:x:0:0:root:/:/init\nnobody:x:65534:65534:nobody:/nonexistent:/init\n")
    entry(f, "etc/group", stat.S_IFREG | 0o644, b"root:x:0:\nnogroup:x:65534:\n")
    entry(f, "init", stat.S_IFREG | 0o755, open(init, "rb").read())
    entry(f, name, stat.S_IFDIR | 0o755)
    for root, dirs, files in os.walk(tree):
        dirs.sort()
        rel = os.path.relpath(root, tree)
        for d in dirs:
            entry(f, os.path.normpath(os.path.join(name, rel, d)), stat.S_IFDIR | 0o755)
        for fn in sorted(files):
            entry(f, os.path.normpath(os.path.join(name, rel, fn)), stat.S_IFREG | 0o644,
                  open(os.path.join(root, fn), "rb").read())
    if modules:
        entry(f, "modules", stat.S_IFDIR | 0o755)
    for m in modules:
        entry(f, "modules/" + os.path.basename(m), stat.S_IFREG | 0o644, open(m, "rb").read())
    entry(f, "TRAILER!!!", 0)
