"""Everything that measures: latency in the live loop (``edgelstm profile``), accuracy (``edgelstm eval``),
soak runs and PyTorch eager baselines. It may import the runtime, data, devices and spec, and torch lazily
inside functions; the runtime never imports it.
"""
