from semverkit import Range, max_satisfying

rng = Range("^0.0.3")
print("^0.0.3 ->", rng, "(expected >=0.0.3 <0.0.4)")
print("satisfies 0.0.4:", rng.satisfies("0.0.4"), "(expected False)")
print("max_satisfying:", max_satisfying(["0.0.3", "0.0.4", "0.0.9"], "^0.0.3"), "(expected 0.0.3)")
