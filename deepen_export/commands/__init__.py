"""Subcommands of ``deepen-export``: each module here defines ``register(group: click.Group)``.

Modules import heavy dependencies inside their commands, so that ``deepen-export --help`` stays fast.
"""
