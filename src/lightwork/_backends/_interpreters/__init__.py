"""The interpreters backend (Python 3.14+): worker threads, each owning a subinterpreter with
its own GIL, in the caller's process. ``_backend`` is the caller's side, ``_guest`` what runs
inside each subinterpreter."""
