from pocketlib import count_vowels

print("count_vowels('Lulu') =", count_vowels("Lulu"), "(expected 2)")
print("count_vowels('AEIOU') =", count_vowels("AEIOU"), "(expected 5)")
