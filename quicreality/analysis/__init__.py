"""Analysis of runs: qlog/pcap/iperf3 → pandas, derived metrics, plots, regression reports.

The only package of quicreality that imports pandas, matplotlib and scipy (the ``[lab]`` extra).
Import the submodules you need; nothing heavy is imported here:

* :mod:`.qlog`, :mod:`.pcap`, :mod:`.pcapfile`, :mod:`.iperf3`, :mod:`.results` — loaders;
* :mod:`.metrics` — goodput, RTT, cwnd, loss/retransmissions, handshake, link loss;
* :mod:`.plots` — matplotlib figures shared by notebooks and reports;
* :mod:`.sources`, :mod:`.regression`, :mod:`.report`, :mod:`.cli`, :mod:`.ci` — the regression
  verdict, baselines, ``report``/``baseline update`` and the CI gate;
* :mod:`.views`, :mod:`.dissect` — notebook helpers (lazy run/rep views, pyshark);
* :mod:`.inject`, :mod:`.falsealarm` — injected slowdowns and the false-alarm study.

See docs/analysis.md.
"""
