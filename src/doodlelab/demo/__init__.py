"""The browser demo: a page where a person draws a doodle and every trained model answers, and shows why.

``doodlelab demo RUN_DIR [RUN_DIR ...]`` serves it (:mod:`doodlelab.demo.serve`, uvicorn)
as a FastAPI app (:mod:`doodlelab.demo.app`); the runs are loaded by
:mod:`doodlelab.demo.models` and answer through :mod:`doodlelab.demo.predict`. The page
itself is ``static/index.html``, plain HTML, CSS and JS with no outside files.
"""
