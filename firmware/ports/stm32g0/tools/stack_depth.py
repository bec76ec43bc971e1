#!/usr/bin/env python3
"""Worst-case stack depth of the firmware image from GCC's -fcallgraph-info=su output (.ci files).

Static analysis: for every entry point (reset path and interrupt handlers) the deepest call chain, summing
each function's own frame. Indirect (virtual) calls are resolved to every function that overrides one of
the interfaces' methods (by name), which over-approximates. Recursion is reported and cut. Library
routines without frame information (memcpy, __aeabi_*) count as LIBRARY_FRAME bytes.

usage: stack_depth.py [-v] BUILD_DIR IMAGE_TARGET STACK_BYTES   (exit 1 if the estimate exceeds STACK_BYTES)
"""
import pathlib
import re
import sys

VERBOSE = False

LIBRARY_FRAME = 64  # generous for libgcc/newlib leaf routines (division, memcpy, memset)
EXCEPTION_FRAME = 32  # hardware-stacked r0-r3, r12, lr, pc, xpsr
# Methods reached through interfaces: every name declared virtual or override in the firmware sources.
VIRTUAL_DECL = re.compile(r"virtual\s[^;{}()]*?\b(\w+)\s*\(|\b(\w+)\s*\([^;{}]*\)\s*(?:const\s*)?override\b")
ENTRIES = ["Reset_Handler"]
HANDLERS = ["SysTick_Handler", "USART1_IRQHandler", "USART2_IRQHandler"]  # same priority: never nest
NMI = "NMI_Handler"  # can preempt any handler

node_re = re.compile(r'node: \{ title: "([^"]+)" label: "([^"]*)"')
edge_re = re.compile(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"(?: label: "([^"]+)")?')
call_re = re.compile(r"(\w+)\s*$")


def short(title):
    return title.split(":")[-1]


def virtual_methods(roots):
    names = set()
    for root in roots:
        for f in list(root.rglob("*.hpp")) + list(root.rglob("*.cpp")):
            if "/tests/" in str(f):
                continue
            for a, b in VIRTUAL_DECL.findall(f.read_text()):
                names.add(a or b)
    return names


def main():
    global VERBOSE
    args = [a for a in sys.argv[1:] if a != "-v"]
    VERBOSE = len(args) != len(sys.argv) - 1
    build, image, budget = pathlib.Path(args[0]), args[1], int(args[2])
    here = pathlib.Path(__file__).resolve().parent.parent
    VIRTUAL_METHODS = virtual_methods([here, here.parent.parent / "core"])
    frames, labels, edges = {}, {}, {}
    files = [p for p in build.rglob("*.ci") if f"/{image}.dir/" in str(p) or "/pbfw_core_m0.dir/" in str(p)]
    if not files:
        sys.exit(f"stack_depth: no .ci files for {image} under {build}")
    for ci in files:
        text = ci.read_text()
        for title, label in node_re.findall(text):
            name = short(title)
            m = re.search(r"\\n(\d+) bytes \((static|dynamic|dynamic,bounded)\)", label)
            if m:
                frames[name] = max(frames.get(name, 0), int(m.group(1)))
                labels[name] = label.split("\\n")[0]
                if m.group(2) == "dynamic":
                    print(f"stack_depth: warning: dynamic frame in {labels[name]}")
        for src, dst, where in edge_re.findall(text):
            if dst == "__indirect_call":
                dst = "__indirect_call@" + where  # resolved per call site below
            edges.setdefault(short(src) if not src.startswith("__indirect") else src, set()).add(
                dst if dst.startswith("__indirect") else short(dst))

    overrides = {}  # method name -> functions with that name that implement an interface method
    for n, lab in labels.items():
        m = re.search(r"::(\w+)\(", lab)
        if m and m.group(1) in VIRTUAL_METHODS:
            overrides.setdefault(m.group(1), set()).add(n)
    sources = {}

    static_ctors = {n for n in frames if n.startswith("_GLOBAL__sub_I")}
    notes = []

    def note(msg):
        if msg not in notes:
            notes.append(msg)
            if VERBOSE:
                print("  note: " + msg)

    def indirect_targets(site):
        # site = "FILE:LINE:COL": COL is the call's opening parenthesis; the method name precedes it.
        file, line, col = site.rsplit(":", 2)
        if file not in sources:
            try:
                sources[file] = pathlib.Path(file).read_text().splitlines()
            except OSError:
                sources[file] = []
        if file.endswith("startup.cpp"):  # the init_array loop: static constructors
            return static_ctors
        lines = sources[file]
        text = lines[int(line) - 1][: int(col) - 1] if int(line) <= len(lines) else ""
        m = call_re.search(text)
        targets = overrides.get(m.group(1), set()) if m else set()
        if not targets:  # unknown: assume any interface method
            note(f"indirect call at {site} not matched to a method name (inlined?): any interface method assumed")
            targets = set().union(*overrides.values())
        return targets
    memo = {}

    warned = set()

    def depth(fn, path):
        if fn in path:
            if fn not in warned:
                warned.add(fn)
                note(f"recursion through {labels.get(fn, fn)} (cut)")
            return 0, [fn]
        if fn in memo:
            return memo[fn]
        if fn.startswith("__indirect_call@"):
            callees = indirect_targets(fn.split("@", 1)[1])
            own = 0
        else:
            callees = edges.get(fn, set())
            own = frames.get(fn, LIBRARY_FRAME)
        best, best_chain = 0, []
        inner = path | {fn}
        for c in sorted(callees):
            d, chain = depth(c, inner)
            if d > best:
                best, best_chain = d, chain
        result = (own + best, [fn] + best_chain)
        if not path & set(result[1]):
            memo[fn] = result
        return result

    def report(name, fn):
        d, chain = depth(fn, frozenset())
        pretty = " -> ".join(labels[f].split("(")[0].split(" ")[-1] for f in chain if f in labels)
        print(f"  {name}: {d} B  ({pretty})")
        return d

    print(f"== stack estimate for {image} (static call graph)")
    main_d = report("main path", ENTRIES[0])
    isr_d = max(report(h, h) for h in HANDLERS if h in frames) + EXCEPTION_FRAME
    nmi_d = (report(NMI, NMI) + EXCEPTION_FRAME) if NMI in frames else 0
    total = main_d + isr_d + nmi_d
    print(f"  worst case: {total} B (main + one handler + NMI, with {EXCEPTION_FRAME} B per exception entry)"
          f" of {budget} B reserved")
    if notes:
        print(f"  ({len(notes)} over-approximations: recursion cuts / unmatched indirect calls; -v lists them)")
    if total > budget:
        sys.exit(f"stack_depth: {image}: estimated stack {total} B exceeds the {budget} B reserved")


if __name__ == "__main__":
    main()
