#!/usr/bin/env python3
# Pastes the output of each README "Questions" command into README.md (run from
# the repository root after `cargo build`, or with SOCKSPEC=path/to/sockspec);
# harness/tests/questions.rs runs them.
import os, subprocess, re, sys
qs = [
 ("Can a restarted server bind its port while old connections sit in TIME_WAIT?",
  "explain time_wait::rebind --where side=server --where addr=any4 --check rebind --os linux,macos,windows,freebsd,openbsd,wine",
  "Linux wants SO_REUSEADDR on both the old and the new socket; the BSDs and macOS on the new one; Windows needs nothing. `explain restart::recipes` gives the portable recipes' verdicts."),
 ("Can another process hijack my port on Windows?",
  "explain actors::takeover --os windows,wine,linux,macos",
  "Documented for Windows: a thief with SO_REUSEADDR binds a more specific address over a plain server, and any address over a server that set SO_REUSEADDR itself; SO_EXCLUSIVEADDRUSE stops it (WSAEACCES). Wine refuses every theft."),
 ("Can two listeners share one port, and who gets the connections?",
  "explain reuseport::spread --os linux,macos,freebsd,openbsd,windows",
  "Linux spreads connections over SO_REUSEPORT listeners; FreeBSD only with SO_REUSEPORT_LB."),
 ("Do two multicast receivers on one port both get the datagrams on Windows?",
  "explain multicast::group_binds --where bind_to=any --os windows,wine,linux,macos",
  "With SO_REUSEADDR on both, Windows documents that both receive every datagram; without it the second bind fails."),
 ("Do an IPv4 and an IPv6 wildcard conflict on one port?",
  "explain dual_stack::wildcards --where proto=tcp --check bind_v4,bind_v6,v4_traffic_to --os linux,macos,windows,freebsd",
  "They conflict unless IPV6_V6ONLY is on, on Linux and Windows; on macOS and FreeBSD only in one order."),
 ("What does SO_LINGER {1, 0} do?",
  "explain linger::abort --os linux,macos,windows,freebsd,wine",
  "A reset instead of the FIN handshake: no TIME_WAIT, the port rebinds at once (Wine's peer sees an end of stream)."),
]
out = ["## Questions", "",
 "Each question is one command (on a fresh clone) and the table it prints: one",
 "row per parameter combination, one column per OS, each cell the checked",
 "outcomes with how they are known (`[o]` observed, `[d]` documented, `[?]`",
 "unknown, `[!]` sources disagree). `--os` picks the columns, `--where` the",
 "rows, `--check` the steps; `sockspec search WORDS` finds the case for a",
 "question. A test runs every command below.", ""]
for q, cmd, answer in qs:
    r = subprocess.run([os.environ.get("SOCKSPEC", "./target/debug/sockspec")] + cmd.split(), capture_output=True, text=True, check=True)
    text = r.stdout.rstrip("\n")
    out += [f"### {q}", "", "```", f"$ cargo run --release -- {cmd}", text, "```", "", answer, ""]
sec = "\n".join(out)
readme = open("README.md").read()
start = readme.find("## Questions\n")
if start >= 0:
    end = readme.find("\n## ", start + 5)
    readme = readme[:start] + sec + readme[end+1:]
else:
    i = readme.find("## Reading a mismatch")
    readme = readme[:i] + sec + "\n" + readme[i:]
open("README.md", "w").write(readme)
