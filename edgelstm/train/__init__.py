"""edgelstm.train"""
