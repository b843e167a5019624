"""edgelstm.export"""
