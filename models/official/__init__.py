"""Networks in the papers' official layouts, so the authors' released checkpoints load as they are.

One module per official layout (``mgmatting``, ``instmatt``), plus ``contract``: the input
pre- and post-processing those codebases share. ``models/checkpoint_import.py`` maps the
authors' files onto these modules.
"""
