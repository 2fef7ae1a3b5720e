"""IPython kernel configuration that `make setup` installs into .venv/etc/ipython/ (every kernel of the venv reads it).

It drops one known-harmless log line. ipykernel 7 warns "Kernel is running over TCP without encryption" whenever a
kernel manager starts it over TCP without CurveZMQ keys, as papermill, nbval and jupyter-cache (the book) all do.
The kernels run on this machine and talk over the loopback interface only, so the line tells a student nothing
but appeared once per notebook in `make run` and `make test`. Everything else the kernel logs is kept.
"""
import logging


class _NoLoopbackTCPWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Kernel is running over TCP without encryption" not in record.getMessage()


logging.getLogger("IPKernelApp").addFilter(_NoLoopbackTCPWarning())
