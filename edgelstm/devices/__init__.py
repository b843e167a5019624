"""edgelstm.devices"""
