#!/usr/bin/env python3
"""Medians of benches/commit_cost.sh output: per commit kind and binary, wall time, bytes
written and CPU, with ratios to the first binary.  Usage: commit_cost_summary.py RAW.txt"""
import sys, re, statistics as st, collections
d=collections.defaultdict(list)
for l in open(sys.argv[1]):
    m=re.match(r'(\S+) round \d+ commit (\w+): wall_ms ([\d.]+) write_bytes (\d+) wchar (\d+) rchar (\d+) user_ms ([\d.]+) sys_ms ([\d.]+)',l)
    if m: d[(m[2],m[1])].append(tuple(float(x) for x in m.groups()[2:]))
bins=[]
for (w,b) in d:
    if b not in bins: bins.append(b)
for w in ['first','middle','last']:
    base=None
    for b in bins:
        v=d.get((w,b))
        if not v: continue
        wall=st.median(x[0] for x in v); wb=st.median(x[1] for x in v); cpu=st.median(x[4]+x[5] for x in v); usr=st.median(x[4] for x in v)
        if base is None: base=(wall,wb,cpu)
        print(f"{w:7} {b:12} n={len(v)} wall_ms {wall:8.1f} ({[round(x[0]) for x in v]}) write_MB {wb/1e6:8.1f} cpu_ms {cpu:7.0f} user_ms {usr:5.0f}  ratio wall {wall/base[0]:.2f} bytes {wb/base[1] if base[1] else 0:.3f} cpu {cpu/base[2] if base[2] else 0:.2f}")
