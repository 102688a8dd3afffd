from pocketlib import mean

print("mean([1, 2, 3]) =", mean([1, 2, 3]), "(expected 2.0)")
print("mean([5]) =", mean([5]), "(expected 5.0)")
