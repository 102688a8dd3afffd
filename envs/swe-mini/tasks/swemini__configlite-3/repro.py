from configlite import Config

defaults = Config.from_string("[server]\nport = 8080\nhost = localhost\n")
tenant_a = defaults.merged(Config.from_string("[server]\nport = 9001\n"))
print("tenant_a port:", tenant_a.get("server", "port"), "(expected 9001)")
print("defaults port:", defaults.get("server", "port"), "(expected 8080)")

copy = defaults.merged()
copy.set("server", "host", "example.org")
print("defaults host:", defaults.get("server", "host"), "(expected localhost)")
