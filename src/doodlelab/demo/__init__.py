"""The browser demo: a page where a person draws a doodle and every trained model answers.

``doodlelab demo RUN_DIR [RUN_DIR ...]`` serves it (see :mod:`doodlelab.demo.server`);
the page itself is ``static/index.html``, plain HTML, CSS and JS with no outside files.
"""
