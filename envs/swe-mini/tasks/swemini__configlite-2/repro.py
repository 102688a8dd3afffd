from configlite import Config, InterpolationError

cfg = Config.from_string("""
[paths]
root = /srv/app
logs = ${root}/logs

[server]
log_file = ${paths:logs}/server.log

[worker]
root = /tmp/worker
log_file = ${paths:logs}/worker.log
""")
for section in ("server", "worker"):
    try:
        print(section, "->", cfg.get(section, "log_file"))
    except InterpolationError as exc:
        print(section, "-> InterpolationError:", exc)
print("expected: /srv/app/logs/server.log and /srv/app/logs/worker.log")
