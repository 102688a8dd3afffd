from pocketlib import is_even

print("is_even(4) =", is_even(4), "(expected True)")
print("is_even(3) =", is_even(3), "(expected False)")
