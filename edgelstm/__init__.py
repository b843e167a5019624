"""edgelstm: take an LSTM video model from PyTorch training to a camera on an edge device."""
__version__ = "0.1.0"
