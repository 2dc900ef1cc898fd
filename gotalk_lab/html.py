def message_html(m): return repr(m)
