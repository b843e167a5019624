"""edgelstm.data"""
