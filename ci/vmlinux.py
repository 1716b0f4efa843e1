#!/usr/bin/env python3
"""Extracts the uncompressed kernel (an ELF vmlinux) from a bzImage, like
the kernel's scripts/extract-vmlinux: QEMU boots such an ELF through its PVH
entry point, without firmware real-mode setup or in-guest decompression
(1-2 s of a TCG boot). Writes nothing, exit 1, if the image holds no ELF
with a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY).

    ci/vmlinux.py BZIMAGE OUT
"""
import gzip
import lzma
import struct
import subprocess
import sys

src, out = sys.argv[1:3]
image = open(src, "rb").read()
# (magic, how to decompress from there); the first that yields an ELF wins.
methods = [
    (b"\x28\xb5\x2f\xfd", lambda d: subprocess.run(["zstd", "-qdc"], input=d, capture_output=True).stdout),
    (b"\x02\x21\x4c\x18", lambda d: subprocess.run(["lz4", "-qdc"], input=d, capture_output=True).stdout),
    (b"\xfd7zXZ\x00", lambda d: lzma.LZMADecompressor().decompress(d)),
    (b"\x1f\x8b\x08", lambda d: gzip.GzipFile(fileobj=__import__("io").BytesIO(d)).read1(1 << 30)),
]


def has_pvh_note(elf):
    """Whether the ELF64 has a PT_NOTE with name "Xen" and type 18."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        return False
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
        if p_type != 4:
            continue
        at, end = p_offset, p_offset + p_filesz
        while at + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, at)
            name = elf[at + 12:at + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == 18:
                return True
            at += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


for magic, decompress in methods:
    at = image.find(magic)
    while at >= 0:
        try:
            elf = decompress(image[at:])
        except Exception:
            elf = b""
        if elf[:4] == b"\x7fELF":
            if has_pvh_note(elf):
                open(out, "wb").write(elf)
                sys.exit(0)
            sys.exit(1)
        at = image.find(magic, at + 1)
sys.exit(1)
