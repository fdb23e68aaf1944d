"""The scenario runner: ``python -m quicreality.scenarios run|list|clean``.

A scenario is data (``scenarios/*.toml``, loaded by :mod:`.catalog`): a link model per direction
(:mod:`.model`), workloads, peers, repetitions and a seed.  :mod:`.runner` builds one
network-namespace topology per run (:mod:`.topology`, with the userspace :mod:`.emulator` or
:mod:`.netem`), checks the link (:mod:`.linkcheck`), runs every repetition of every workload
(:mod:`.workloads`, driving the real peers of :mod:`.peers`), captures both sides
(:mod:`.capture`) and takes verdicts from the wire (:mod:`.wire`, :mod:`.qlogsum`).  Results go
to ``results/runs/<UTC time>-<git sha>/`` (:mod:`.results`); :mod:`.cleanup` removes what a
crashed run left.  See docs/scenarios.md.
"""
