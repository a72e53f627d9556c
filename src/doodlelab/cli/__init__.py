"""The top of the tree: ``doodlelab <subcommand>``.

- :mod:`~doodlelab.cli.commands`: the command table (subcommand -> the module that parses and runs it)
  and :func:`~doodlelab.cli.commands.main`, which turns a ``UserError`` into one line and exit status 2;
- :mod:`~doodlelab.cli.parser`: the argparse parser whose usage errors are one line;
- :mod:`~doodlelab.cli.heap`: process setup (freed large arrays go back to the system).
"""
