"""edgelstm.runtime"""
