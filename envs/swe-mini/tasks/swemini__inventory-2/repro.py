from inventory import Order

a = Order("SO-1").add_line("BOLT-M6", 5)
b = Order("SO-2").add_line("NUT-M6", 2)
print("SO-1 lines:", a.lines)
print("SO-2 lines:", b.lines)
print("SO-3 lines:", Order("SO-3").lines, "(expected [])")
