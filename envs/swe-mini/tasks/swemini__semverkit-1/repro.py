from semverkit import max_satisfying, parse, sort_versions

print("beta.2 < beta.11:", parse("1.0.0-beta.2") < parse("1.0.0-beta.11"), "(expected True)")
candidates = ["1.0.0-rc.2", "1.0.0-rc.10", "1.0.0-rc.9"]
print("sorted:", sort_versions(candidates))
print("max_satisfying:", max_satisfying(candidates, ">=1.0.0-rc.1"), "(expected 1.0.0-rc.10)")
