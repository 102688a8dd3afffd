from pocketlib import to_fahrenheit

print("to_fahrenheit(100) =", to_fahrenheit(100), "(expected 212.0)")
print("to_fahrenheit(0) =", to_fahrenheit(0), "(expected 32.0)")
