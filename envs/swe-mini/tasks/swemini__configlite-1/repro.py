from configlite import Config, parse_duration

cfg = Config.from_string("[http]\ntimeout = 250ms\nretry_delay = 1m500ms\n")
print("timeout     =", cfg.get_duration("http", "timeout"), "(expected 0.25)")
print("retry_delay =", cfg.get_duration("http", "retry_delay"), "(expected 60.5)")
print("1500ms      =", parse_duration("1500ms"), "(expected 1.5)")
