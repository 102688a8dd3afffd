from pocketlib import largest

print("largest([3, 9, 4]) =", largest([3, 9, 4]), "(expected 9)")
