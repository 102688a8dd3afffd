from pocketlib import percent

print("percent(1, 2) =", percent(1, 2), "(expected 50.0)")
print("percent(1, 4) =", percent(1, 4), "(expected 25.0)")
